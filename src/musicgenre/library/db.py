"""The library database (SQLite): schema, migration, rows, reading back, Ray shard import.

The database is the source of truth and is only ever added to or updated row by row:
- WAL journal, rows committed in batches; a killed scan loses at most the batch in flight, which the
  next run redoes (``path`` is the primary key, so nothing is ever duplicated);
- ``tagged`` records the genre last written into (or found in) the file's own tags, ``tag_error`` why the
  last attempt to write them failed (NULL once they are written);
- ``content_hash`` is empty when the file could not be read whole and unchanged (it changed during the
  scan, or was unreadable): such a row is classified again by the next scan;
- ``path`` is the file's text when its name is valid UTF-8 (every normal name, and every database written
  before this rule) and its exact bytes (a BLOB) when not: SQLite text must be UTF-8, and a file name need
  not be. ``read_rows`` gives both back as a ``str`` (surrogate-escaped) that opens the file;
- ``features`` (the backbone's embeddings and tag logits, ``prediction.WindowFeatures``, float16 bytes) and
  ``file_tags`` (the file's own genre, artist, album and MusicBrainz tags, ``filetags.py``) hold one row per
  classified path each, written with its ``tracks`` row from the same prediction, and record the
  ``content_hash`` they were computed from: a side row whose hash is not the track's is stale, never read
  (``read_features``) and removed when the track's row is next written;
- ``meta`` holds the library's ``generation``, which triggers bump on every insert, update and delete in
  ``tracks``, ``features`` and ``file_tags`` (whichever module or tool writes), and a random ``instance`` id:
  (instance, generation) names one state of the library, so what is computed from it (the similarity index,
  ``similar.library_index``) can be kept until it changes (``generation``);
- the schema version is SQLite's ``PRAGMA user_version`` (``SCHEMA_VERSION``; 0: a database from before
  versions, the ``tracks`` table alone); ``connect`` upgrades an older database in place, keeping every row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MusicGenreError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    path          TEXT PRIMARY KEY,
    size          INTEGER NOT NULL,
    mtime         REAL NOT NULL,
    content_hash  TEXT NOT NULL,
    duration      REAL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    label         TEXT,
    score         REAL,
    scores        TEXT,   -- JSON {genre: probability}, all genres, highest first
    tags          TEXT,   -- JSON {tag: probability}, top 20
    error         TEXT,   -- NULL when classified; the reason when the file could not be
    scanned_at    TEXT NOT NULL,
    tagged        TEXT,   -- the genre our tags in the file hold; NULL when not (yet) tagged
    tag_error     TEXT,   -- why the last tag write failed (one line); NULL when none failed
    status        TEXT    -- "confident", "uncertain" or "unknown" (Prediction.status); NULL in rows of schema < 2
);
CREATE INDEX IF NOT EXISTS tracks_label ON tracks(label);
CREATE TABLE IF NOT EXISTS features (
    path             TEXT PRIMARY KEY,  -- as tracks.path
    content_hash     TEXT NOT NULL,     -- tracks.content_hash of the content these were computed from
    backbone         TEXT NOT NULL,     -- e.g. MSD_musicnn
    backbone_version TEXT NOT NULL,
    windows          INTEGER NOT NULL,  -- non-silent windows in the track: what the means cover
    idx              BLOB NOT NULL,     -- int32 (k,): the k <= 10 sampled windows (window i starts at i * 2.992 s)
    embedding        BLOB NOT NULL,     -- float16 (k, d): their penultimate embeddings (d = 200)
    tag_logits       BLOB,              -- float16 (k, t): their tag logits (t = 50); NULL: the backbone has none
    mean_embedding   BLOB NOT NULL,     -- float16 (d,): mean over every non-silent window
    mean_tag_logits  BLOB               -- float16 (t,)
);
CREATE TABLE IF NOT EXISTS file_tags (
    path         TEXT PRIMARY KEY,  -- as tracks.path
    content_hash TEXT NOT NULL,     -- as in features
    genres       TEXT,     -- JSON list: every genre value in the file's tags, numeric ID3 genres resolved
    genre_ours   INTEGER,  -- 1: the genres were written by musicgenre's tag writer (our predictions)
    artist       TEXT,
    album_artist TEXT,
    album        TEXT,
    mb_artist_id TEXT,     -- MusicBrainz artist, release and recording (track) ids
    mb_album_id  TEXT,
    mb_track_id  TEXT,
    tags_error   TEXT      -- why the tags could not be read (the other columns are then NULL)
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,  -- 'generation': bumped by every write to the tables above; 'instance': a random id
    value NOT NULL
);
INSERT OR IGNORE INTO meta VALUES ('generation', 0);
INSERT OR IGNORE INTO meta VALUES ('instance', lower(hex(randomblob(8))));
""" + "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_{event.lower()}_generation AFTER {event} ON {table} BEGIN "
    "UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;\n"
    for table in ("tracks", "features", "file_tags") for event in ("INSERT", "UPDATE", "DELETE"))
# PRAGMA user_version; 0: tracks only (every release before features); 1: no tracks.status; 2: no meta (generation)
SCHEMA_VERSION = 3
COLUMNS = ("path", "size", "mtime", "content_hash", "duration", "model", "model_version", "label", "score",
           "scores", "tags", "error", "scanned_at", "tagged", "tag_error", "status")
# what a row from row_from_prediction carries beside COLUMNS (the Ray shards hold them too)
FEATURE_COLUMNS = ("backbone", "backbone_version", "windows", "idx", "embedding", "tag_logits", "mean_embedding",
                   "mean_tag_logits")
WINDOW_COLUMNS = ("embedding", "tag_logits")  # the per-window arrays: most of a features row's bytes
FILE_TAG_COLUMNS = ("genres", "genre_ours", "artist", "album_artist", "album", "mb_artist_id", "mb_album_id",
                    "mb_track_id", "tags_error")
ROW_COLUMNS = COLUMNS + FEATURE_COLUMNS + FILE_TAG_COLUMNS
COMMIT_EVERY = 16  # rows per transaction: small enough that a kill loses little


def connect(db: Path) -> sqlite3.Connection:
    """Open (or create) a library database; anything else at that path is refused, never touched."""
    try:
        con = sqlite3.connect(str(db), timeout=30)
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            con.close()
            raise MusicGenreError(f"{db}: written by a newer musicgenre (library schema {version}; this one reads "
                                  f"up to {SCHEMA_VERSION}); upgrade musicgenre")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(SCHEMA)
        _migrate(con)
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"{db}: not a musicgenre library database ({e})") from None
    return con


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a database written by an older version up to ``SCHEMA`` without touching its rows: the oldest
    lack ``tracks.tagged``/``tag_error``, versions below 2 ``tracks.status`` (NULL in their rows: read as
    confident or uncertain by the score, as they were written); version 0 lacks ``features`` and ``file_tags``
    (created by ``SCHEMA``, empty: the next scan fills them, ``scan.plan``); versions below 3 lack ``meta`` and
    its triggers (created by ``SCHEMA``). Then ``user_version`` records ``SCHEMA_VERSION``."""
    have = {r[1] for r in con.execute("PRAGMA table_info(tracks)")}
    if "tagged" not in have:
        con.execute("ALTER TABLE tracks ADD COLUMN tagged TEXT")
    if "tag_error" not in have:
        con.execute("ALTER TABLE tracks ADD COLUMN tag_error TEXT")
    if "status" not in have:
        con.execute("ALTER TABLE tracks ADD COLUMN status TEXT")
    if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    con.commit()


def generation(con: sqlite3.Connection) -> tuple[str, int] | None:
    """(instance, generation): one state of the library (module docstring), read in the caller's transaction;
    None for a database of schema < 3 not yet upgraded (no ``meta``)."""
    try:
        values = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('instance', 'generation')"))
    except sqlite3.OperationalError:  # no meta table
        return None
    return (str(values["instance"]), int(values["generation"])) if len(values) == 2 else None


def schema_version(con: sqlite3.Connection) -> int:
    """The library schema version of an open database (``PRAGMA user_version``)."""
    return int(con.execute("PRAGMA user_version").fetchone()[0])


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """True when nothing about a file's identity or content changed between two stats (ctime moves on every
    write, rename and chmod, and no program can set it back)."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def row_from_prediction(path: str | bytes | os.PathLike, stat: os.stat_result, digest: str, model: str, version: str,
                        pred: Any | None, error: str | None, file_tags: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    """One row: the ``tracks`` columns, the prediction's ``WindowFeatures`` as ``FEATURE_COLUMNS`` (NULLs when it
    has none) and ``file_tags`` (``filetags.read_file_tags``) as ``FILE_TAG_COLUMNS`` (NULLs without a
    prediction); shared by the local scan and the Ray job so both write the same thing (``upsert``)."""
    features = None if pred is None else getattr(pred, "features", None)
    return {
        "path": db_key(path), "size": stat.st_size, "mtime": stat.st_mtime, "content_hash": digest,
        "duration": None if pred is None else round(pred.duration, 3),
        "model": model, "model_version": version,
        "label": None if pred is None else pred.label,
        "score": None if pred is None else pred.scores[pred.label],
        "scores": None if pred is None else json.dumps(pred.scores),
        "tags": None if pred is None else json.dumps(dict(list(pred.tags.items())[:20])),
        "error": error, "scanned_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tagged": None, "tag_error": None, "status": None if pred is None else pred.status,
        **feature_columns(features),
        **file_tag_columns(None if pred is None else file_tags),
    }


def file_tag_columns(tags: dict[str, Any] | None) -> dict[str, Any]:
    """``filetags.read_file_tags``'s dict as the ``file_tags`` table's values (genres as JSON, genre_ours 0/1)."""
    if tags is None:
        return dict.fromkeys(FILE_TAG_COLUMNS)
    out = {c: tags.get(c) for c in FILE_TAG_COLUMNS}
    out["genres"] = None if tags.get("genres") is None else json.dumps(list(tags["genres"]), ensure_ascii=False)
    out["genre_ours"] = None if tags.get("genre_ours") is None else int(bool(tags["genre_ours"]))
    return out


def feature_columns(features: Any | None) -> dict[str, Any]:
    """A ``prediction.WindowFeatures`` as the ``features`` table's values (arrays as little-endian bytes)."""
    if features is None:
        return dict.fromkeys(FEATURE_COLUMNS)

    def blob(x: Any, dtype: str) -> bytes | None:
        return None if x is None else np.ascontiguousarray(x, dtype=dtype).tobytes()

    return {"backbone": features.backbone, "backbone_version": features.backbone_version,
            "windows": int(features.windows), "idx": blob(features.index, "<i4"),
            "embedding": blob(features.embedding, "<f2"), "tag_logits": blob(features.tag_logits, "<f2"),
            "mean_embedding": blob(features.mean_embedding, "<f2"),
            "mean_tag_logits": blob(features.mean_tag_logits, "<f2")}


_FEATURES_SQL = (f"INSERT OR REPLACE INTO features (path, content_hash, {', '.join(FEATURE_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * (len(FEATURE_COLUMNS) + 2))})")
_FILE_TAGS_SQL = (f"INSERT OR REPLACE INTO file_tags (path, content_hash, {', '.join(FILE_TAG_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * (len(FILE_TAG_COLUMNS) + 2))})")


def upsert(con: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows (``row_from_prediction``) into ``tracks`` and, where the row carries them, ``features`` and
    ``file_tags``; a row without them removes side rows of other content (stale), keeping those of the same
    content (e.g. the features of a file a model without an embedding output classified again)."""
    rows = list(rows)
    con.executemany(
        f"INSERT OR REPLACE INTO tracks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [tuple(r.get(c) for c in COLUMNS) for r in rows],
    )
    for table, sql, columns in (("features", _FEATURES_SQL, FEATURE_COLUMNS),
                                ("file_tags", _FILE_TAGS_SQL, FILE_TAG_COLUMNS)):
        has = [any(r.get(c) is not None for c in columns) for r in rows]
        con.executemany(sql, [(r["path"], r["content_hash"], *(r.get(c) for c in columns))
                              for r, h in zip(rows, has) if h])
        con.executemany(f"DELETE FROM {table} WHERE path = ? AND content_hash != ?",
                        [(r["path"], r["content_hash"]) for r, h in zip(rows, has) if not h])


def delete_paths(con: sqlite3.Connection, paths: Iterable[str | bytes]) -> None:
    """Remove every row of these ``db_key`` paths (tracks, features, file_tags)."""
    keys = [(p,) for p in paths]
    for table in ("tracks", "features", "file_tags"):
        con.executemany(f"DELETE FROM {table} WHERE path = ?", keys)


def rehash(con: sqlite3.Connection, path: str | bytes, old: str, new: str, file_tags: dict[str, Any] | None) -> None:
    """After our own tag write changed a file's bytes but not its audio: its features (computed from ``old``)
    now belong to content ``new``; ``file_tags`` (read again after the write) replace the stored ones."""
    con.execute("UPDATE features SET content_hash = ? WHERE path = ? AND content_hash = ?", (new, path, old))
    if file_tags is not None:
        values = file_tag_columns(file_tags)
        con.execute(_FILE_TAGS_SQL, (path, new, *(values[c] for c in FILE_TAG_COLUMNS)))


def read_rows(source: Path) -> Iterator[dict[str, Any]]:
    """Every row of a library: a SQLite database, or a folder of Parquet shards from the Ray engine.
    JSON columns (scores, tags) are decoded."""
    source = Path(source)
    if source.is_dir():
        yield from _decode_json({c: r[c] for c in COLUMNS} for r in _read_shards(source))
        return
    if not source.is_file():
        raise MusicGenreError(f"{source}: database not found")
    con = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        con.row_factory = sqlite3.Row
        yield from _decode_json(dict(r) for r in con.execute("SELECT * FROM tracks ORDER BY CAST(path AS BLOB)"))
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"{source}: not a musicgenre library database ({e})") from None
    finally:
        con.close()


@dataclass(frozen=True, eq=False)
class FeatureRow:
    """One classified file's stored features (``read_features``): what the track's row says (label, all scores,
    model), what the file's own tags say, and the backbone's arrays (``prediction.WindowFeatures``, float16)."""

    path: str
    label: str | None
    scores: dict[str, float] | None
    model: str
    model_version: str
    duration: float | None
    tagged: str | None  # tracks.tagged: the genre scan --write-tags wrote into this file (NULL: none)
    tags: dict[str, Any]  # the file's own tags: genres (list), genre_ours (bool), artist, album_artist, album,
    #                        mb_artist_id, mb_album_id, mb_track_id, tags_error; {} when none were stored
    backbone: str
    backbone_version: str
    windows: int  # non-silent windows in the track (what the means cover)
    index: np.ndarray  # (k,) int32: the sampled windows' positions
    embedding: np.ndarray | None  # (k, d) float16; None when read with windows=False
    tag_logits: np.ndarray | None  # (k, t) float16
    mean_embedding: np.ndarray  # (d,) float16
    mean_tag_logits: np.ndarray | None  # (t,) float16


def read_features(source: Path | sqlite3.Connection, *, backbone: str | None = None,
                  backbone_version: str | None = None, windows: bool = True) -> Iterator[FeatureRow]:
    """Every file with current features (computed from the content its ``tracks`` row describes), in path order;
    only those of ``backbone`` (and ``backbone_version``) when given. ``source``: an open connection or a
    database file (opened read-only). What ``learn`` and ``similar`` read. ``windows=False`` leaves the per-window
    arrays unread (``embedding`` and ``tag_logits`` None): ``similar`` needs only the means, and the windows are
    most of a row's bytes."""
    con = source if isinstance(source, sqlite3.Connection) else _open_ro(Path(source))
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        if con is not source:
            con.close()
        raise MusicGenreError(f"{source}: not a musicgenre library database ({e})") from None
    if not {"tracks", "features"} <= tables:  # a database from before features (schema 0): none stored yet
        if con is not source:
            con.close()
        return
    where, args = ["f.content_hash = t.content_hash"], []
    for column, value in (("backbone", backbone), ("backbone_version", backbone_version)):
        if value is not None:
            where.append(f"f.{column} = ?")
            args.append(value)
    sql = (f"SELECT t.path, t.label, t.scores, t.model, t.model_version, t.duration, t.tagged, "
           f"{', '.join('f.' + c if windows or c not in WINDOW_COLUMNS else 'NULL' for c in FEATURE_COLUMNS)}, "
           "ft.content_hash IS NOT NULL, "
           f"{', '.join('ft.' + c for c in FILE_TAG_COLUMNS)} "
           "FROM tracks t JOIN features f ON f.path = t.path "
           "LEFT JOIN file_tags ft ON ft.path = t.path AND ft.content_hash = t.content_hash "
           f"WHERE {' AND '.join(where)} ORDER BY CAST(t.path AS BLOB)")
    try:
        for r in con.execute(sql, args):
            path, label, scores, model, version, duration, tagged = r[:7]
            feat = dict(zip(FEATURE_COLUMNS, r[7:7 + len(FEATURE_COLUMNS)]))
            has_tags, tag_values = r[7 + len(FEATURE_COLUMNS)], r[8 + len(FEATURE_COLUMNS):]
            tags = dict(zip(FILE_TAG_COLUMNS, tag_values)) if has_tags else {}
            if tags:
                tags["genres"] = None if tags["genres"] is None else json.loads(tags["genres"])
                tags["genre_ours"] = None if tags["genre_ours"] is None else bool(tags["genre_ours"])
            k = len(feat["idx"]) // 4
            yield FeatureRow(
                path=from_db(path), label=label, scores=json.loads(scores) if scores else None, model=model,
                model_version=version, duration=duration, tagged=tagged, tags=tags, backbone=feat["backbone"],
                backbone_version=feat["backbone_version"], windows=feat["windows"],
                index=np.frombuffer(feat["idx"], "<i4"), embedding=_array(feat["embedding"], k),
                tag_logits=_array(feat["tag_logits"], k), mean_embedding=np.frombuffer(feat["mean_embedding"], "<f2"),
                mean_tag_logits=None if feat["mean_tag_logits"] is None
                else np.frombuffer(feat["mean_tag_logits"], "<f2"),
            )
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"{source}: not a musicgenre library database ({e})") from None
    finally:
        if con is not source:
            con.close()


def _array(blob: bytes | None, k: int) -> Any:
    return None if blob is None else np.frombuffer(blob, "<f2").reshape(k, -1)


def _open_ro(db: Path) -> sqlite3.Connection:
    if not db.is_file():
        raise MusicGenreError(f"{db}: database not found")
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _decode_json(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in rows:
        d["path"] = from_db(d["path"])
        d.setdefault("tagged", None)
        d.setdefault("tag_error", None)
        for k in ("scores", "tags"):
            d[k] = json.loads(d[k]) if d[k] else None
        yield d


def _read_shards(folder: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MusicGenreError("reading Parquet shards needs pyarrow (pip install 'musicgenre[distributed]')") from None
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise MusicGenreError(f"{folder}: no Parquet shards found")
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    # shards hold every path as bytes (Arrow strings must be UTF-8); the database keys them by db_key
    out = [{**{c: r.get(c) for c in ROW_COLUMNS}, "path": db_key(from_db(r["path"]))} for r in rows]
    return sorted(out, key=lambda r: os.fsencode(from_db(r["path"])))


def import_shards(folder: Path, db: Path) -> int:
    """Upsert the rows of a folder of Parquet shards into a library database; returns the row count."""
    rows = _read_shards(folder)
    con = connect(db)
    try:
        for i in range(0, len(rows), 500):
            upsert(con, rows[i : i + 500])
            con.commit()
    finally:
        con.close()
    return len(rows)


def is_utf8(path: str | bytes | os.PathLike) -> bool:
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def db_key(path: str | bytes | os.PathLike) -> str | bytes:
    """The value stored in ``tracks.path``: text when valid UTF-8, else the file system's exact bytes."""
    s = os.fsdecode(path)
    return s if is_utf8(s) else os.fsencode(s)


def from_db(value: str | bytes) -> str:
    """``tracks.path`` -> a path string that opens the same file (surrogate-escaped where needed)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value
