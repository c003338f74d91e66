"""One file's tags as the library stores them and learning and similarity read them (``TrackTags``), and the
artist groups that keep one artist's tracks on one side of a validation fold.

**Artist groups** (``group_key``): MusicBrainz artist id, else artist, else album artist, else the folder;
"Various Artists" (and "Unknown Artist") never form a group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from .values import canonical_key

__all__ = ["TrackTags", "group_key", "group_keys"]


@dataclass
class TrackTags:
    """One file's tags as read for learning. ``genres``: every raw genre value, unsplit and unresolved.

    The markers our writers leave (any one makes ``written_by_us`` true): ``genre_ours``: the library
    database's ``file_tags.genre_ours`` (the file carries MUSICGENRE_CONFIDENCE); ``musicgenre_confidence``:
    that tag's value (``library.tags.read_genres``' second value) or beets' ``musicgenre_confidence``
    attribute; ``genre_source``: beets' field; ``db_tagged``: the library database's ``tracks.tagged``
    column (the genre scan wrote into this file)."""

    path: str
    genres: list[str] = field(default_factory=list)
    artist: str | None = None
    album_artist: str | None = None
    album: str | None = None
    musicbrainz_artist_id: str | None = None
    musicbrainz_album_id: str | None = None
    genre_ours: bool = False
    musicgenre_confidence: str | float | None = None
    genre_source: str | None = None
    db_tagged: str | None = None

    @classmethod
    def from_row(cls, path: str, tags: Mapping[str, Any], *, db_tagged: str | None = None) -> TrackTags:
        """From the ``file_tags`` columns the library stores for a file (``library.db.FeatureRow.tags``: genres,
        genre_ours, artist, album_artist, album, mb_artist_id, mb_album_id) and ``tracks.tagged``."""
        return cls(path=path, genres=list(tags.get("genres") or []), artist=tags.get("artist"),
                   album_artist=tags.get("album_artist"), album=tags.get("album"),
                   musicbrainz_artist_id=tags.get("mb_artist_id"), musicbrainz_album_id=tags.get("mb_album_id"),
                   genre_ours=bool(tags.get("genre_ours")), db_tagged=db_tagged)


# MusicBrainz' special artists "Various Artists" and "[unknown]": never one group.
_SPECIAL_MBIDS = frozenset({"89ad4ac3-39f7-470e-963a-56509c546377", "125ec42a-7229-4250-afc5-e057484327fe"})
_NOT_ARTISTS = frozenset(canonical_key(name) for name in [
    "Various Artists", "Various Artist", "Various", "VA", "V.A.", "Verschiedene", "Verschiedene Interpreten",
    "Diverse Interpreten", "Artistes divers", "Varios artistas", "Unknown Artist", "Unknown", "[unknown]",
])
_MBID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FEATURING = re.compile(r"(?:\s+|\s*[(\[])(?:feat\.?|ft\.|featuring)\s.*$", re.IGNORECASE)


def _mbid(value: str | None) -> str | None:
    """The first artist id of a (possibly multi-valued) MusicBrainz field, unless a special artist."""
    found = _MBID.search((value or "").lower())
    return found.group(0) if found and found.group(0) not in _SPECIAL_MBIDS else None


def _artist(value: str | None) -> str | None:
    """An artist name's key: the first of "; "-joined names, "feat." guests cut off; None for Various Artists
    and the like."""
    key = canonical_key(_FEATURING.sub("", (value or "").split(";")[0]))
    return key if key and key not in _NOT_ARTISTS else None


def group_key(track: TrackTags) -> str:
    """The validation group of one file: "mbid:ID", else "artist:KEY" (artist, else album artist), else
    "folder:PATH". Artist and album artist share a namespace, so one artist is one group either way."""
    mbid = _mbid(track.musicbrainz_artist_id)
    if mbid:
        return f"mbid:{mbid}"
    artist = _artist(track.artist) or _artist(track.album_artist)
    if artist:
        return f"artist:{artist}"
    return f"folder:{PurePath(track.path).parent}"


def group_keys(tracks: Iterable[TrackTags]) -> dict[str, str]:
    """path -> group for a whole library: as ``group_key``, and a track without an artist id joins the id
    its artist name carries elsewhere (when that name has exactly one), so one artist is never two groups."""
    tracks = list(tracks)
    ids: dict[str, set[str]] = {}
    for t in tracks:
        mbid, name = _mbid(t.musicbrainz_artist_id), _artist(t.artist)
        if mbid and name:
            ids.setdefault(name, set()).add(mbid)
    out = {}
    for t in tracks:
        key = group_key(t)
        known = ids.get(key.removeprefix("artist:"), set()) if key.startswith("artist:") else set()
        out[t.path] = f"mbid:{next(iter(known))}" if len(known) == 1 else key
    return out
