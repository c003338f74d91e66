"""What ``learn`` reads of a library database: every file with current features of one backbone, its own tags
(``genres.tracks.TrackTags.from_row``) and its stored windows (``stored.window_features``), with clear errors
(no database, no classified file, no embeddings, another backbone: rescan)."""

from __future__ import annotations

from pathlib import Path

from ..errors import MusicGenreError
from ..genres.tracks import TrackTags
from ..stored import StoredLibrary, window_features
from .db import read_features, read_rows

__all__ = ["read_stored"]


def _rescan(db: Path) -> str:
    return f"rescan the library with this version: `musicgenre scan --db {db} DIR`"


def read_stored(db: Path, backbone: tuple[str, str]) -> StoredLibrary:
    """Every file of ``db`` with current features computed by ``backbone`` (name, version) and its own tags.
    MusicGenreError: no database, no classified file, no stored embeddings (rescan), or embeddings of another
    backbone only (rescan)."""
    tagged: dict[str, str | None] = {}
    for row in read_rows(db):  # tracks.tagged: the genre our writer put into the file (never a label)
        tagged[row["path"]] = row.get("tagged")
    if not tagged:
        raise MusicGenreError(f"{db}: no classified files; scan the library first: "
                              f"`musicgenre scan --db {db} DIR`")
    tracks, features = [], {}
    others: dict[tuple[str, str], int] = {}
    no_tags = 0
    for r in read_features(db):
        if (r.backbone, r.backbone_version) != backbone:
            others[(r.backbone, r.backbone_version)] = others.get((r.backbone, r.backbone_version), 0) + 1
            continue
        if r.tag_logits is None or r.embedding is None or len(r.embedding) == 0:
            no_tags += 1
            continue
        tracks.append(TrackTags.from_row(r.path, r.tags, db_tagged=tagged.get(r.path)))
        features[r.path] = window_features(r.embedding, r.tag_logits)
    if not tracks:
        if others:
            found = ", ".join(f"{n} {v} ({c} files)" for (n, v), c in sorted(others.items()))
            raise MusicGenreError(f"{db}: its embeddings come from another backbone version: {found}; this "
                                  f"musicgenre learns on {backbone[0]} {backbone[1]}: {_rescan(db)}")
        raise MusicGenreError(f"{db}: no stored embeddings (scanned before musicgenre stored them, or with a model "
                              f"that gives none): {_rescan(db)}")
    skipped = {f"embeddings from {n} {v} (rescan to include them)": c for (n, v), c in sorted(others.items())}
    if no_tags:
        skipped["no tag logits stored"] = no_tags
    return StoredLibrary(tracks, features, backbone, skipped)
