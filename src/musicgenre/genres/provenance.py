"""Provenance: whether a file's genre was put there by musicgenre (our predictions) or by its owner.

Our own genres never become labels and never count as the owner's word: ``scan --write-tags`` writes
``CONFIDENCE_KEY`` (MUSICGENRE_CONFIDENCE) beside every GENRE it writes, the beets plugin records
``genre_source: musicgenre`` (``OUR_SOURCE``), and the library database records the genre it wrote in
``tracks.tagged``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .values import canonical_key, genre_names

if TYPE_CHECKING:
    from .tracks import TrackTags

__all__ = ["CONFIDENCE_KEY", "OUR_SOURCE", "written_by_us"]

CONFIDENCE_KEY = "MUSICGENRE_CONFIDENCE"  # the mark our tag writer leaves beside every genre it writes
OUR_SOURCE = "musicgenre"  # beets' genre_source for genres the plugin set


def written_by_us(track: TrackTags) -> bool:
    """True when the file's genre values were put there by musicgenre (scan --write-tags or the beets
    plugin): the MUSICGENRE_CONFIDENCE marker, ``genre_source: musicgenre``, or the library database's
    ``tagged`` genre still among the file's genres. Whatever our writer touched is excluded whole, also
    genres the beets plugin kept beside its own (``keep_existing``): a label is the owner's word or nothing."""
    if track.genre_ours or (track.musicgenre_confidence is not None and str(track.musicgenre_confidence).strip()):
        return True
    if (track.genre_source or "").strip().casefold() == OUR_SOURCE:
        return True
    if track.db_tagged:
        ours = canonical_key(track.db_tagged)
        return any(canonical_key(name) == ours for value in track.genres for name in genre_names(value))
    return False
