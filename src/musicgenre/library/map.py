"""The library in two dimensions: every file's stored mean embedding projected onto its first two principal
components, for the web page's map.

PCA (the scatter matrix's eigenvectors) of the centred, L2-normalised mean embeddings (the vectors ``similar`` compares
by cosine): exact, deterministic (each axis's sign is fixed so that its largest loading is positive) and about 0.1 s for
10,000 files x 200 dimensions, where most of the time goes into reading the rows: one query over the columns the map
draws (``MAP_SQL``; ``benchmarks/bench_library_map.py``). UMAP or t-SNE would separate genres more, at seconds to
minutes per library and a result that changes from run to run. The map is cached in memory keyed on the library's
content (``content_key``: every path with its content hash and features' backbone), so it is rebuilt after any scan or
tag write and never otherwise.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MusicGenreError
from .db import from_db


@dataclass(frozen=True, eq=False)
class LibraryMap:
    """``xy`` (n, 2) float32 coordinates scaled into [-1, 1]; per file its path, its own genre tag ("; "-joined,
    None when untagged) and the scan's label; ``explained`` the share of variance of each axis."""

    paths: list[str]
    xy: np.ndarray
    genres: list[str | None]
    labels: list[str | None]
    explained: tuple[float, float]
    key: str


def content_key(con: sqlite3.Connection) -> str:
    """A digest of what the map is drawn from: each file's path, content hash and features' hash and backbone."""
    h = hashlib.blake2b(digest_size=16)
    for row in con.execute("SELECT t.path, t.content_hash, f.content_hash, f.backbone, f.backbone_version "
                           "FROM tracks t JOIN features f ON f.path = t.path ORDER BY t.path"):
        h.update(repr(row).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def project(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """(n, d) vectors -> (n, 2) coordinates on their first two principal components, scaled into [-1, 1], and the
    share of variance each explains. Fewer than 3 files or a constant library: what there is (zeros elsewhere).

    The axes are the top eigenvectors of the (d, d) scatter matrix (``eigh``), not an SVD of the (n, d) data: the
    same axes, a 200 x 200 problem instead of a 10,000 x 200 one. One BLAS thread: on a loaded machine OpenBLAS's
    threads wait on each other (a 10,000-file SVD took 0.8 to 13 s on two busy cores; this takes about 0.1 s)."""
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, np.float64)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), np.float32), (0.0, 0.0)
    with threadpool_limits(limits=1):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        x = x - x.mean(axis=0)
        values, vectors = np.linalg.eigh(x.T @ x)  # ascending
        keep = min(2, n - 1, x.shape[1]) if n > 1 else 0
        values, axes = np.maximum(values[::-1][:keep], 0.0), vectors[:, ::-1][:, :keep].T
        axes = axes * np.where(axes[np.arange(len(axes)), np.abs(axes).argmax(1)] < 0, -1.0, 1.0)[:, None]
        xy = np.zeros((n, 2))
        xy[:, :len(axes)] = x @ axes.T
    scale = np.abs(xy).max(axis=0)
    xy = np.divide(xy, scale, out=np.zeros_like(xy), where=scale > 0)
    total = float(np.einsum("ij,ij->", x, x))  # the scatter's trace: every axis's variance
    share = [float(v / total) if total > 0 else 0.0 for v in values] + [0.0, 0.0]
    return xy.astype(np.float32), (round(share[0], 4), round(share[1], 4))


# Only what the map draws, in one query: no window arrays, no scores, no artist or album columns. The row's mean
# embedding sits after its window arrays, so SQLite still walks each row's overflow pages to reach it; the rest of a
# read_features row (its arrays decoded, its JSON parsed) is left undone.
MAP_SQL = ("SELECT t.path, t.label, f.backbone, f.backbone_version, f.mean_embedding, ft.genres "
           "FROM tracks t JOIN features f ON f.path = t.path AND f.content_hash = t.content_hash "
           "LEFT JOIN file_tags ft ON ft.path = t.path AND ft.content_hash = t.content_hash "
           "ORDER BY CAST(t.path AS BLOB)")


def _genre(genres: str | None) -> str | None:
    """The file's genre tag as the page shows it ("; "-joined); None when untagged."""
    return "; ".join(json.loads(genres) or []) or None if genres else None


def build_map(con: sqlite3.Connection, key: str | None = None) -> LibraryMap:
    """The map of every file with current features of the library's most common backbone (one embedding space),
    read in one query (``MAP_SQL``). MusicGenreError: not a library database."""
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = con.execute(MAP_SQL).fetchall() if {"tracks", "features", "file_tags"} <= tables else []
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"not a musicgenre library database ({e})") from None
    counts = Counter((r[2], r[3]) for r in rows)
    if counts:
        backbone = max(counts, key=lambda b: (counts[b], b))
        rows = [r for r in rows if (r[2], r[3]) == backbone]
    if rows:
        x = np.frombuffer(b"".join(r[4] for r in rows), "<f2").reshape(len(rows), -1)
    else:
        x = np.zeros((0, 1), np.float32)
    xy, explained = project(x)
    return LibraryMap([from_db(r[0]) for r in rows], xy, [_genre(r[5]) for r in rows], [r[1] for r in rows],
                      explained, key if key is not None else content_key(con))


class MapCache:
    """One library's map, rebuilt only when ``content_key`` changes (thread-safe: the page's requests share it)."""

    def __init__(self) -> None:
        self._map: LibraryMap | None = None
        self._lock = threading.Lock()

    def get(self, db: Path) -> LibraryMap:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            with self._lock:
                key = content_key(con)
                if self._map is None or self._map.key != key:
                    self._map = build_map(con, key)
                return self._map
        finally:
            con.close()

