"""The library in two dimensions: every file's stored mean embedding projected onto its first two principal
components, for the web page's map.

PCA through numpy's SVD of the centred, L2-normalised mean embeddings (the vectors ``similar`` compares by
cosine): exact, deterministic (each axis's sign is fixed so that its largest loading is positive) and about
0.1 s for 10,000 files x 200 dimensions, where most of the time goes into reading the rows
(``benchmarks/bench_library_map.py``). UMAP or t-SNE would separate genres more, at seconds to minutes per
library and a result that changes from run to run. The map is cached in memory keyed on the library's content
(``content_key``: every path with its content hash and features' backbone), so it is rebuilt after any scan or
tag write and never otherwise.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .db import read_features


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
    share of variance each explains. Fewer than 3 files or a constant library: what there is (zeros elsewhere)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), np.float32), (0.0, 0.0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]
    axes = axes * np.where(axes[np.arange(len(axes)), np.abs(axes).argmax(1)] < 0, -1.0, 1.0)[:, None]
    xy = np.zeros((n, 2))
    xy[:, :len(axes)] = x @ axes.T
    scale = np.abs(xy).max(axis=0)
    xy = np.divide(xy, scale, out=np.zeros_like(xy), where=scale > 0)
    total = float((s**2).sum())
    share = [float(v**2 / total) if total > 0 else 0.0 for v in s[:2]] + [0.0, 0.0]
    return xy.astype(np.float32), (round(share[0], 4), round(share[1], 4))


def build_map(con: sqlite3.Connection, key: str | None = None) -> LibraryMap:
    """The map of every file with current features (``read_features``, means only) of the library's most common
    backbone (one embedding space)."""
    rows = list(read_features(con, windows=False))
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[(r.backbone, r.backbone_version)] = counts.get((r.backbone, r.backbone_version), 0) + 1
    if counts:
        backbone = max(counts, key=lambda b: (counts[b], b))
        rows = [r for r in rows if (r.backbone, r.backbone_version) == backbone]
    x = np.stack([np.asarray(r.mean_embedding, np.float32) for r in rows]) if rows else np.zeros((0, 1), np.float32)
    xy, explained = project(x)
    genres = [("; ".join(r.tags.get("genres") or []) or None) if r.tags else None for r in rows]
    return LibraryMap([r.path for r in rows], xy, genres, [r.label for r in rows], explained,
                      key if key is not None else content_key(con))


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

