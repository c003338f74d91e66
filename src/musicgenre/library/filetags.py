"""Reading what a file's own tags say about it (mutagen): genres, artist, album artist, album, MusicBrainz ids,
and whether the genre was written by our own tag writer. What ``scan`` stores beside each track (``db.py``,
table ``file_tags``) for the ``learn`` and ``similar`` commands; writing tags is ``tags.py``.

Formats: ID3 (MP3, and WAV/AIFF files with an ID3 chunk), Vorbis comments (FLAC, Ogg Vorbis/FLAC, Opus,
Speex), APEv2, MP4 atoms (M4A/MP4). Every value of the genre field is kept, in order, duplicates dropped;
numeric ID3v1 genres ("17", "(17)", "(17)Rock", "(RX)") are resolved to names with mutagen's table
(``mutagen.id3.TCON.GENRES``: "(17)" is "Rock"), whatever the format (taggers copy them around). Other
multi-valued text fields are joined with "; ". Reading never raises: a file whose tags cannot be read gets
NULLs and ``tags_error`` (one line), and is classified as usual.

``genre_ours`` is true when the file carries ``MUSICGENRE_CONFIDENCE``, the mark ``scan --write-tags``
writes with every genre it sets: those genres are our predictions, not the owner's. The beets plugin records
``genre_source: musicgenre`` in beets' own database, not in the file, so genres it wrote look like the
owner's here (docs/library.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._names import printable_name
from ..genres.provenance import CONFIDENCE_KEY
from ..genres.values import resolve_id3_numeric

log = logging.getLogger(__name__)

# The file_tags columns, in order (db.py); ``genres`` is a JSON list, ``genre_ours`` 0/1.
FILE_TAG_COLUMNS = ("genres", "genre_ours", "artist", "album_artist", "album", "mb_artist_id", "mb_album_id",
                    "mb_track_id", "tags_error")

_ID3_MB = {"mb_artist_id": "TXXX:MusicBrainz Artist Id", "mb_album_id": "TXXX:MusicBrainz Album Id"}
_MP4_MB = {"mb_artist_id": "----:com.apple.iTunes:MusicBrainz Artist Id",
           "mb_album_id": "----:com.apple.iTunes:MusicBrainz Album Id",
           "mb_track_id": "----:com.apple.iTunes:MusicBrainz Track Id"}
# Vorbis comment / APEv2 keys (both case-insensitive); the first present wins
_VORBIS = {"artist": ("ARTIST",), "album_artist": ("ALBUMARTIST", "ALBUM ARTIST", "ALBUM_ARTIST"),
           "album": ("ALBUM",), "mb_artist_id": ("MUSICBRAINZ_ARTISTID",), "mb_album_id": ("MUSICBRAINZ_ALBUMID",),
           "mb_track_id": ("MUSICBRAINZ_TRACKID",)}


def read_file_tags(path: str | Path) -> dict[str, Any]:
    """The ``FILE_TAG_COLUMNS`` of one file (``genres`` as a list); never raises."""
    try:
        return _read(Path(path))
    except Exception as e:  # mutagen raises many types on damaged headers; the file is still classified
        text = (str(e).splitlines() or [""])[0][:200]
        why = f"{type(e).__module__.split('.')[0]} {type(e).__name__}" + (f": {text}" if text else "")
        log.info("%s: cannot read its tags (%s)", printable_name(path), why)
        return {**dict.fromkeys(FILE_TAG_COLUMNS), "tags_error": f"cannot read the tags: {why}"}


def resolve_genres(values: Iterable[str]) -> list[str]:
    """Genre values as stored -> names: numeric ID3v1 genres resolved by the one rule
    (``genres.values.resolve_id3_numeric``), blanks and repeats dropped, order kept."""
    out: list[str] = []
    for raw in values:
        out += [g for g in (n.strip() for n in resolve_id3_numeric(str(raw))) if g and g not in out]
    return out


def _empty() -> dict[str, Any]:
    return {**dict.fromkeys(FILE_TAG_COLUMNS), "genres": [], "genre_ours": False}


def _joined(values: Iterable[Any] | None) -> str | None:
    text = [str(v).strip() for v in values or () if str(v).strip()]
    return "; ".join(dict.fromkeys(text)) or None


def _read(path: Path) -> dict[str, Any]:
    import mutagen
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    f = mutagen.File(str(path))
    out = _empty()
    if f is None or f.tags is None:  # a format without tags (AU), or none written
        return out
    tags = f.tags
    if isinstance(tags, ID3):
        genre = tags.get("TCON")
        out["genres"] = resolve_genres(genre.text if genre else [])
        for key, frame in (("artist", "TPE1"), ("album_artist", "TPE2"), ("album", "TALB"), *_ID3_MB.items()):
            value = tags.get(frame)
            out[key] = _joined(value.text if value else None)
        ufid = tags.get("UFID:http://musicbrainz.org")
        out["mb_track_id"] = ufid.data.decode("utf-8", "replace").strip() or None if ufid else None
        out["genre_ours"] = f"TXXX:{CONFIDENCE_KEY}" in tags
    elif isinstance(tags, MP4Tags):
        out["genres"] = resolve_genres(tags.get("\xa9gen", []))
        for key, atom in (("artist", "\xa9ART"), ("album_artist", "aART"), ("album", "\xa9alb")):
            out[key] = _joined(tags.get(atom))
        for key, atom in _MP4_MB.items():
            out[key] = _joined(bytes(v).decode("utf-8", "replace") for v in tags.get(atom, []))
        out["genre_ours"] = f"----:com.apple.iTunes:{CONFIDENCE_KEY}" in tags
    elif hasattr(tags, "get"):  # Vorbis comments, APEv2: case-insensitive keys, one value per field
        out["genres"] = resolve_genres(_values(tags, "GENRE"))
        for key, names in _VORBIS.items():
            out[key] = next((_joined(v) for v in (_values(tags, n) for n in names) if v), None)
        out["genre_ours"] = bool(_values(tags, CONFIDENCE_KEY))
    return out


def _values(tags: Any, key: str) -> list[str]:
    """Every value of ``key`` in a Vorbis comment or APEv2 block (APEv2 separates values with NUL)."""
    value = tags.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v for v in str(value).split("\x00")]
