"""``musicgenre similar``: the library files nearest a track in the backbone's embedding space.

Each classified file's ``mean_embedding`` (``library.db.read_features``: the backbone's penultimate layer averaged
over every non-silent window) is L2-normalised into one float32 matrix; a query is one matrix-vector product
(cosine similarity) and ``np.argpartition`` for the top k. Brute force in numpy is the right tool at library
size: 100,000 files x 200 dimensions is 80 MB and a few milliseconds of arithmetic per query, exact, with no
index to train or tune (an approximate-nearest-neighbour library would pay off from millions of files on).

**The index.** Reading the stored mean embeddings back (``read_features`` without the window arrays) costs
far more than a search, so a process keeps the index it built in memory, keyed by the database and its state
(``library.db.generation``: a counter the database's own triggers bump on every write to its tracks, features
and file tags, whoever writes): a long-lived process (the web app) reads the library once per change, and a
query after any change rebuilds. The generation and the rows are read in one transaction, so an index is never
filed under a state it does not show. A database of an older schema, not yet upgraded by a scan, has no
generation: each query then reads it.

**The query.** FILE is looked up by its resolved path (what ``scan`` stores) and, failing that, by its content
hash (the same bytes elsewhere: another mount, a copy outside the library). A library file whose content is the
scanned content uses its stored embedding (no model is loaded); any other file is embedded on the fly by one
pass of the model the library was scanned with (``tracks.model``, when it is a shipped model; else the default,
or ``-m``), refused with "rescan" when that model's backbone is not the one that computed the stored features.
FILE itself (that path, or for an outside file its byte-identical library copy) is never listed; other
duplicates are, first.

**Quality** (``precision_at_k``): genre precision at k with other artists only: for every library file with a
genre tag of its owner's, the share of its k nearest files *by other artists* that share one of its genres
(spellings compared by ``genres.values.canonical_key``); same-artist neighbours are skipped, since an artist's own
tracks are the easy, uninformative matches. Beside it, the share a random pick of other artists' files would
reach (``chance``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._names import printable_name
from ..errors import MusicGenreError, ParameterError
from ..genres.provenance import written_by_us
from ..genres.tracks import TrackTags, group_keys
from ..genres.values import genre_keys
from .db import file_hash, from_db, generation, read_features

__all__ = ["LibraryIndex", "Neighbour", "Precision", "Similar", "build_index", "library_index", "nearest",
           "precision_at_k", "similar"]

log = logging.getLogger(__name__)

DEFAULT_K = 10


def _scan_first(db: Path) -> str:
    return f"scan the library first: `musicgenre scan --db {printable_name(db)} DIR`"


def _rescan(db: Path) -> str:
    return f"rescan the library: `musicgenre scan --db {printable_name(db)} DIR`"


# ---- the index ------------------------------------------------------------------------------------------------

class _Strings:
    """Many strings in one NUL-separated byte blob, decoded one at a time (an index of 100,000 files loads
    without building 100,000 Python strings)."""

    def __init__(self, blob: bytes, starts: np.ndarray) -> None:
        self.blob, self.starts = blob, starts

    @classmethod
    def of(cls, items: Iterable[bytes]) -> _Strings:
        items = list(items)
        lengths = np.fromiter((len(b) + 1 for b in items), dtype=np.int64, count=len(items))
        starts = np.concatenate([[1], 1 + np.cumsum(lengths)[:-1]]).astype(np.int64) if items else np.zeros(0, np.int64)
        return cls(b"\0" + b"\0".join(items) + b"\0", starts)

    def __getitem__(self, i: int) -> bytes:
        start = int(self.starts[i])
        return self.blob[start:self.blob.index(b"\0", start)]

    def find(self, item: bytes) -> int | None:
        at = self.blob.find(b"\0" + item + b"\0")
        return None if at < 0 else int(np.searchsorted(self.starts, at + 1))


@dataclass(eq=False)
class LibraryIndex:
    """What a query needs of a library: ``matrix`` (n, d) float32, each file's L2-normalised mean embedding
    (a zero vector stays zero), ``hashes`` (n,) their content hashes, per file its path, own genre tags and
    artist (``path(i)``, ``genres(i)``, ``artist(i)``); the ``backbone`` (name, version) that computed them, the
    ``model`` (name, version) most of them were classified with, and ``other_backbones``: files left out
    because another backbone computed their features ("name version" -> count)."""

    matrix: np.ndarray
    hashes: np.ndarray
    paths: _Strings
    meta: _Strings
    backbone: tuple[str, str]
    model: tuple[str, str]
    other_backbones: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.matrix)

    def path(self, i: int) -> str:
        return os.fsdecode(self.paths[i])

    def genres(self, i: int) -> list[str]:
        return list(json.loads(self.meta[i])[0] or [])

    def artist(self, i: int) -> str | None:
        value = json.loads(self.meta[i])[1]
        return None if value is None else str(value)

    def find(self, path: str | os.PathLike) -> int | None:
        """The row of this exact path (as ``scan`` stores it: resolved), or None."""
        return self.paths.find(os.fsencode(path))

    def same_content(self, digest: str) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.hashes == digest.encode("ascii", "replace"))]


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def build_index(rows: Iterable[Any], hashes: Mapping[str, str] | None = None) -> LibraryIndex:
    """The index of every row (``library.db.FeatureRow``) of the most common backbone (name, version); rows of
    other backbones are counted in ``other_backbones``. Rows need ``path``, ``mean_embedding``, ``backbone``,
    ``backbone_version``, ``model``, ``model_version`` and ``tags`` (the file's own: ``genres``, ``artist``);
    ``hashes``: path -> content hash (``tracks.content_hash``, which current features share)."""
    hashes = hashes or {}
    # per backbone, only what the index keeps (library_index does not even read the rows' window arrays)
    by_backbone: dict[tuple[str, str], list[tuple[np.ndarray, bytes, bytes, bytes, tuple[str, str]]]] = {}
    for r in rows:
        by_backbone.setdefault((r.backbone, r.backbone_version), []).append((
            np.array(r.mean_embedding, dtype=np.float32), os.fsencode(r.path),
            hashes.get(r.path, "").encode("ascii", "replace"),
            json.dumps([r.tags.get("genres"), r.tags.get("artist")]).encode(), (r.model, r.model_version)))
    if not by_backbone:
        return LibraryIndex(np.zeros((0, 0), np.float32), np.zeros(0, "S32"), _Strings.of([]), _Strings.of([]),
                            ("", ""), ("", ""))
    backbone = max(by_backbone, key=lambda b: (len(by_backbone[b]), b))
    chosen = by_backbone.pop(backbone)
    model = Counter(c[4] for c in chosen).most_common(1)[0][0]
    matrix = _normalised(np.stack([c[0] for c in chosen]))
    return LibraryIndex(matrix, np.array([c[2] for c in chosen], dtype="S32"), _Strings.of(c[1] for c in chosen),
                        _Strings.of(c[3] for c in chosen), backbone, model,
                        {f"{n} {v}": len(rs) for (n, v), rs in sorted(by_backbone.items())})


class _Kept:
    """The indexes this process built, by (database, instance, generation): the few most recent, for threads."""

    def __init__(self, size: int = 4) -> None:
        self.size, self.lock, self.items = size, threading.Lock(), OrderedDict[Any, LibraryIndex]()

    def get(self, key: Any) -> LibraryIndex | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: Any, index: LibraryIndex) -> None:
        with self.lock:
            self.items[key] = index
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_KEPT = _Kept()  # the one per-process cache (docs/architecture.md lists it)


def library_index(db: str | os.PathLike, *, cache: bool = True) -> LibraryIndex:
    """The index of a library database: the one this process built for the database's current state
    (``library.db.generation``), else read (``read_features``) and, with ``cache``, kept for the next query.
    MusicGenreError, in one line: no database, not a library database, no classified file (scan first), no
    stored embeddings (rescan)."""
    db = Path(db)
    if not db.is_file():
        raise MusicGenreError(f"{printable_name(db)}: database not found; {_scan_first(db)}")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise MusicGenreError(f"{printable_name(db)}: cannot open the database ({e})") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "tracks" not in tables:
            raise MusicGenreError(f"{printable_name(db)}: not a musicgenre library database (no tracks table)")
        if not con.execute("SELECT 1 FROM tracks WHERE error IS NULL LIMIT 1").fetchone():
            raise MusicGenreError(f"{printable_name(db)}: no classified files; {_scan_first(db)}")
        if not {"features", "file_tags"} <= tables:
            raise MusicGenreError(f"{printable_name(db)}: no stored embeddings (scanned before musicgenre stored "
                                  f"them); {_rescan(db)}")
        con.execute("BEGIN")  # one snapshot: the generation and the rows it stands for
        state = generation(con)
        key = None if state is None or not cache else (str(db.resolve()), *state)
        index = _KEPT.get(key) if key else None
        if index is None:
            hashes = {from_db(p): h for p, h in con.execute("SELECT path, content_hash FROM tracks")}
            index = build_index(read_features(con, windows=False), hashes)
            if key and len(index):
                _KEPT.put(key, index)
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"{printable_name(db)}: not a musicgenre library database ({e})") from None
    finally:
        con.close()
    if not len(index):
        raise MusicGenreError(f"{printable_name(db)}: no stored embeddings (scanned before musicgenre stored them, "
                              f"or with a model that gives none); {_rescan(db)}")
    return index


# ---- the query ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Neighbour:
    """One result: a library file, its cosine similarity to the query (rounded to 4 decimals), its own genre
    tags and artist."""

    rank: int
    path: str
    similarity: float
    genres: list[str]
    artist: str | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON line: the path as printable text (undecodable bytes as \\xNN, as exports write it)."""
        return {"rank": self.rank, "path": printable_name(self.path), "similarity": self.similarity,
                "genres": self.genres, "artist": self.artist}


def nearest(index: LibraryIndex, query: np.ndarray, k: int, *, exclude: Iterable[int] = ()) -> list[Neighbour]:
    """The ``k`` rows of ``index`` most cosine-similar to ``query`` (any length-d vector), rows ``exclude``
    left out; highest first (ties: index order, i.e. path order)."""
    q = _normalised(np.asarray(query, dtype=np.float32).reshape(-1))
    if q.shape[0] != index.matrix.shape[1]:
        raise MusicGenreError(f"the query's embedding has {q.shape[0]} dimensions, the library's "
                              f"{index.matrix.shape[1]}")
    sims = index.matrix @ q
    drop = np.fromiter(exclude, dtype=np.int64)
    sims[drop] = -np.inf
    k = min(k, len(sims) - len(np.unique(drop)))
    if k <= 0:
        return []
    top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
    top = top[np.lexsort((top, -sims[top]))][:k]
    return [Neighbour(rank, index.path(int(i)), round(float(sims[i]), 4), index.genres(int(i)),
                      index.artist(int(i))) for rank, i in enumerate(top, 1)]


@dataclass(eq=False)
class Similar:
    """``similar``'s answer: the ``neighbours``; ``embedded`` the model that embedded FILE (None: its stored
    embedding was used); ``excluded`` the library paths left out as FILE itself; ``index`` what was searched."""

    neighbours: list[Neighbour]
    embedded: str | None
    excluded: list[str]
    index: LibraryIndex


def _file_error(file: Path, e: OSError) -> MusicGenreError:
    return MusicGenreError(f"{printable_name(file)}: {e.strerror or e}")


def similar(db: str | os.PathLike, file: str | os.PathLike, *, k: int = DEFAULT_K, model: str | Path | None = None,
            device: str = "auto", backend: str = "auto", cache: bool = True) -> Similar:
    """The ``k`` library files of ``db`` nearest ``file`` (module docstring). ``model``: what embeds a file
    whose stored embedding cannot be used (default: the model the library was scanned with when it is a
    shipped one, else the default model).
    MusicGenreError (one line): the database's problems (``library_index``), FILE unreadable or undecodable
    (named, with the reason), a model whose backbone is not the library's (rescan)."""
    if k < 1:
        raise ParameterError("-k must be at least 1")
    db, file = Path(db), Path(file)
    index = library_index(db, cache=cache)
    try:
        if file.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder, not an audio file")
        digest = file_hash(file)
        resolved = file.resolve()
    except OSError as e:
        raise _file_error(file, e) from None
    row = index.find(resolved)
    same = index.same_content(digest)
    if row is not None:
        itself = [row]
    else:  # not under this path in the library: the same bytes under another path are FILE itself
        itself = [i for i in same if _same_file(index.path(i), file)] or same
    stored = [i for i in ([row] if row is not None else []) + same if index.hashes[i].decode() == digest]
    if stored:
        query, embedded = index.matrix[stored[0]], None
    else:
        query, embedded = _embed(db, file, index, model, device, backend)
    return Similar(nearest(index, query, k, exclude=itself), embedded, [index.path(i) for i in itself], index)


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _embed(db: Path, file: Path, index: LibraryIndex, model: str | Path | None, device: str,
           backend: str) -> tuple[np.ndarray, str]:
    """FILE's mean embedding from one pass of the model (checked to give the library's backbone's features)."""
    from ..pipeline import load

    if model is None:
        from ..modeldir import list_shipped

        model = index.model[0] if index.model[0] in list_shipped() else None
    predictor = load(model, device=device, backend=backend)
    name = f"{getattr(predictor, 'name', model)} {getattr(predictor, 'version', '')}".strip()
    gives = getattr(predictor, "feature_backbone", None)
    have = " ".join(index.backbone)
    if gives is None:
        raise MusicGenreError(f"model {name} gives no embeddings; the library's come from {have}: embed FILE with "
                              f"the model the library was scanned with (-m)")
    if tuple(gives) != index.backbone:
        raise MusicGenreError(f"{printable_name(db)}: the library's embeddings come from {have}, model {name} "
                              f"gives {' '.join(gives)}'s; {_rescan(db)} (or pass the model it was scanned with, -m)")
    pred = predictor.predict(str(file))
    if pred.features is None:
        raise MusicGenreError(f"{printable_name(file)}: no embedding (no window above the silence threshold)")
    return np.asarray(pred.features.mean_embedding, dtype=np.float32), name


# ---- quality --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Precision:
    """Genre precision at k with other artists only (module docstring): ``precision`` the mean share over
    ``queries`` files (of ``files`` with an owner's genre tag; a sample when asked), ``chance`` the same share
    for a random pick of other artists' files."""

    k: int
    precision: float
    chance: float
    queries: int
    files: int

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "precision": round(self.precision, 4), "chance": round(self.chance, 4),
                "queries": self.queries, "files": self.files}


def precision_at_k(rows: Iterable[Any], k: int = DEFAULT_K, *, queries: int | None = None, seed: int = 0,
                   block_bytes: int = 64 << 20) -> Precision:
    """Genre precision at ``k`` with other artists only over ``rows`` (``library.db.FeatureRow``s, one backbone):
    for each file with a genre tag of its owner's (our writer's genres never count, ``written_by_us``), the
    share of its ``k`` nearest files (cosine of the mean embeddings) among the other such files *by other
    artists* (``genres.tracks.group_keys``: MusicBrainz id, artist, album artist, else folder) that share one of
    its genres (``genres.values.genre_keys``); the mean over those files. ``queries``: a random sample
    of that many files asks (the neighbours still come from all), for large libraries; ``seed`` picks it."""
    if k < 1:
        raise ValueError("k must be at least 1")
    tracks: list[TrackTags] = []
    vectors: list[np.ndarray] = []
    for r in rows:  # kept: the tags and the mean (not the rows: their window arrays are ~5 KB each)
        tracks.append(TrackTags.from_row(r.path, r.tags, db_tagged=getattr(r, "tagged", None)))
        vectors.append(np.array(r.mean_embedding, dtype=np.float32))
    by_value: dict[str, frozenset[str]] = {}  # a library repeats its few genre spellings: each parsed once
    for value in {str(v) for t in tracks for v in t.genres}:
        by_value[value] = genre_keys(value)
    every = [frozenset().union(*(by_value[str(v)] for v in t.genres)) for t in tracks]
    pool = [i for i, t in enumerate(tracks) if every[i] and not written_by_us(t)]
    n = len(pool)
    if n == 0:
        return Precision(k, float("nan"), float("nan"), 0, 0)
    groups = group_keys(tracks[i] for i in pool)
    sets = [every[i] for i in pool]
    set_ids: dict[frozenset[str], int] = {}
    sid = np.array([set_ids.setdefault(s, len(set_ids)) for s in sets], dtype=np.int64)
    column = {key: j for j, key in enumerate(sorted({key for s in set_ids for key in s}))}
    member = np.zeros((len(set_ids), len(column)), dtype=np.float32)
    for s, i in set_ids.items():
        member[i, [column[key] for key in s]] = 1.0
    meets = (member @ member.T) > 0  # genre set x genre set: share a genre
    group_of: dict[str, int] = {}
    gid = np.array([group_of.setdefault(groups[tracks[i].path], len(group_of)) for i in pool], dtype=np.int64)
    order = np.argsort(gid, kind="stable")
    bounds = np.searchsorted(gid[order], np.arange(len(group_of) + 1))
    members = [order[bounds[g]:bounds[g + 1]] for g in range(len(group_of))]
    sharing = meets.astype(np.float64) @ np.bincount(sid, minlength=len(set_ids))  # per genre set: files sharing

    matrix = _normalised(np.stack([vectors[i] for i in pool]))
    del vectors
    asks = np.arange(n)
    if queries is not None and queries < n:
        asks = np.sort(np.random.default_rng(seed).choice(n, size=queries, replace=False))
    shares, chances = [], []
    step = max(1, block_bytes // (4 * n))
    for start in range(0, len(asks), step):
        block = asks[start:start + step]
        sims = matrix[block] @ matrix.T
        for row, q in enumerate(block):
            mine = members[gid[q]]
            sims[row, mine] = -np.inf  # the query and its artist's other files
            others = n - len(mine)
            if others == 0:
                continue
            same_artist_sharing = int(meets[sid[q], sid[mine]].sum())
            chances.append((sharing[sid[q]] - same_artist_sharing) / others)
        take = max(1, min(k, n - 1))
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        for row, q in enumerate(block):
            nb = top[row][np.isfinite(sims[row, top[row]])][:k]
            if len(nb):
                shares.append(float(meets[sid[q], sid[nb]].mean()))
    if not shares:
        return Precision(k, float("nan"), float("nan"), 0, n)
    return Precision(k, float(np.mean(shares)), float(np.mean(chances)), len(shares), n)
