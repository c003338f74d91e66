"""What ``learn`` reads of a library database: every file with current features of one backbone, its own tags
(``genres.tracks.TrackTags.from_row``) and its stored windows (``stored.embedding_and_tags``), with clear errors
(no database, no classified file, no embeddings, another backbone: rescan).

``stored_for`` serves another library (beets') that brings its own tags: the files' features are those the
database holds for the files as they are now, the rest computed by the scan (``scan.plan``, then ``scan.scan``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._names import printable_name
from ..errors import MusicGenreError
from ..genres.provenance import written_by_us
from ..genres.tracks import TrackTags
from ..stored import StoredLibrary, embedding_and_tags
from .db import connect, read_features, read_rows

__all__ = ["read_stored", "stored_for", "track_from_fields", "FIELDS", "OWN_FIELDS"]

# What ``track_from_fields`` reads of another library's object, beets' names: genres (older beets: the one string
# ``genre``), artist fields, MusicBrainz ids and ``genre_source``; ``OWN_FIELDS`` are the track's own (an album's
# value does not stand for them).
FIELDS = ("genres", "genre", "genre_source", "artist", "albumartist", "album", "mb_artistid", "mb_albumid")
OWN_FIELDS = ("genres", "genre", "genre_source")


def track_from_fields(path: str | bytes, fields: Mapping[str, Any]) -> TrackTags:
    """One track of another library (``FIELDS``, beets' names) as ``learn`` reads it, its path resolved."""
    genres = [g for g in fields.get("genres") or [] if g]
    if not genres and fields.get("genre"):  # older beets: one (possibly joined) string
        genres = [str(fields["genre"])]
    return TrackTags(path=str(Path(os.fsdecode(path)).resolve()), genres=genres, artist=fields.get("artist") or None,
                     album_artist=fields.get("albumartist") or None, album=fields.get("album") or None,
                     musicbrainz_artist_id=fields.get("mb_artistid") or None,
                     musicbrainz_album_id=fields.get("mb_albumid") or None,
                     genre_source=fields.get("genre_source") or None)


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
        features[r.path] = embedding_and_tags(r.embedding, r.tag_logits)
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


def stored_for(db: Path, tracks: Sequence[TrackTags], backbone: tuple[str, str], *, model: tuple[str, str],
               classifier: Callable[[], Any], workers: int = 2, progress: bool = False,
               say: Callable[[str], None] = lambda line: None) -> StoredLibrary:
    """The ``StoredLibrary`` of ``tracks`` (tags from their own library, paths resolved) with features from
    ``db``: those it holds for the files as they are now, the rest scanned into it by the model ``model``
    (name, version), loaded by ``classifier()`` only when something is to compute. A file that carries our
    writer's mark (``file_tags.genre_ours``) with the genres its library took from it counts as ours.
    MusicGenreError before any work: no track has genres of its own; after: the model gives other features
    than ``backbone``'s, or no track has features (unreadable or silent files)."""
    from .scan import ScanSummary, plan, scan

    if not any(t.genres and not written_by_us(t) for t in tracks):
        raise MusicGenreError(f"no genres to learn from: none of the {len(tracks)} matched items has genres of "
                              "its own (those musicgenre set are never used)")
    db.parent.mkdir(parents=True, exist_ok=True)
    con = connect(db)
    try:
        todo = [f for f, _ in plan(con, [Path(t.path) for t in tracks], *model, ScanSummary(), backbone)]
    finally:
        con.close()
    say(f"{printable_name(db)}: features of {len(tracks) - len(todo)} items stored, {len(todo)} to compute")
    if todo:
        clf = classifier()
        gives = getattr(clf, "feature_backbone", None)
        if gives is None or tuple(gives) != backbone:
            what = "no embeddings" if gives is None else f"the embeddings of {' '.join(gives)}"
            raise MusicGenreError(f"model {clf.name} {clf.version} gives {what}; learning reads those of "
                                  f"{' '.join(backbone)}: set musicgenre's model to a shipped model or one learned "
                                  "before")
        say(f"{printable_name(db)}: {scan(todo, db, clf, workers=workers, progress=progress).line()}")
    have = {r.path: r for r in read_features(db, backbone=backbone[0], backbone_version=backbone[1])}
    kept, features = [], {}
    no_features = no_tags = 0
    for track in tracks:
        row = have.get(track.path)
        if row is None:  # unreadable, or no window above the silence threshold
            no_features += 1
        elif row.tag_logits is None or row.embedding is None or len(row.embedding) == 0:
            no_tags += 1
        else:
            ours = bool(row.tags.get("genre_ours") and {g.casefold() for g in row.tags.get("genres") or []}
                        == {g.casefold() for g in track.genres})
            kept.append(dataclasses.replace(track, genre_ours=track.genre_ours or ours))
            features[track.path] = embedding_and_tags(row.embedding, row.tag_logits)
    if not kept:
        raise MusicGenreError(f"none of the {len(tracks)} matched items has features (unreadable or silent files)")
    skipped = {k: v for k, v in (("no features (unreadable or silent files)", no_features),
                                 ("no tag logits stored", no_tags)) if v}
    return StoredLibrary(kept, features, backbone, skipped)
