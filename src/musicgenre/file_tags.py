"""Writing the predicted genre into a file's own tags with mutagen, without ever corrupting it.

GENRE goes where players look for it (ID3 TCON for MP3, Vorbis comment GENRE for FLAC/OGG/Opus,
the ©gen atom for M4A) plus a MUSICGENRE_CONFIDENCE tag. Each write goes to a temporary copy, which
is read back (tags) and decoded again (audio) before it atomically replaces the original.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import MusicGenreError

log = logging.getLogger(__name__)

CONFIDENCE_KEY = "MUSICGENRE_CONFIDENCE"
TAGGABLE = {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4"}
_MP4_CONF = f"----:com.apple.iTunes:{CONFIDENCE_KEY}"


def read_genre(path: Path) -> tuple[str | None, str | None]:
    """(genre, confidence) as stored in the file's tags, None where absent."""
    import mutagen

    f = mutagen.File(str(path))
    if f is None or f.tags is None:
        return None, None
    tags = f.tags
    if path.suffix.lower() == ".mp3":
        genre = tags.get("TCON")
        conf = tags.get(f"TXXX:{CONFIDENCE_KEY}")
        return (str(genre.text[0]) if genre else None, str(conf.text[0]) if conf else None)
    if path.suffix.lower() in (".m4a", ".mp4"):
        genre = tags.get("\xa9gen")
        conf = tags.get(_MP4_CONF)
        return (str(genre[0]) if genre else None, bytes(conf[0]).decode() if conf else None)
    genre, conf = tags.get("GENRE"), tags.get(CONFIDENCE_KEY)
    return (genre[0] if genre else None, conf[0] if conf else None)


def _set(path: Path, genre: str, confidence: str) -> None:
    import mutagen
    from mutagen.id3 import TCON, TXXX
    from mutagen.mp4 import MP4FreeForm

    f = mutagen.File(str(path))
    if f is None:
        raise MusicGenreError(f"{path}: mutagen does not recognise this file")
    if f.tags is None:
        f.add_tags()
    suffix = path.suffix.lower()
    if suffix == ".mp3":
        f.tags.setall("TCON", [TCON(encoding=3, text=[genre])])
        f.tags.setall(f"TXXX:{CONFIDENCE_KEY}", [TXXX(encoding=3, desc=CONFIDENCE_KEY, text=[confidence])])
    elif suffix in (".m4a", ".mp4"):
        f.tags["\xa9gen"] = [genre]
        f.tags[_MP4_CONF] = [MP4FreeForm(confidence.encode())]
    else:
        f.tags["GENRE"] = [genre]
        f.tags[CONFIDENCE_KEY] = [confidence]
    f.save()


class TagWriter:
    """Writes predictions into files. ``dry_run`` only reports; ``overwrite`` replaces an existing
    genre (otherwise a file that already has one is left alone)."""

    def __init__(self, *, dry_run: bool = False, overwrite: bool = False,
                 report: Callable[[str], None] = print) -> None:
        self.dry_run = dry_run
        self.overwrite = overwrite
        self.report = report

    def write(self, path: Path, pred: Any) -> int:
        """Tag one file; returns 1 if it was (or, in a dry run, would be) changed."""
        path = Path(path)
        if path.suffix.lower() not in TAGGABLE:
            self.report(f"{path}: tag writing is not supported for {path.suffix} files; left unchanged")
            return 0
        genre, confidence = pred.label, f"{pred.scores[pred.label]:.3f}"
        try:
            old_genre, old_conf = read_genre(path)
        except Exception as e:  # mutagen raises many types for damaged headers
            self.report(f"{path}: cannot read its tags ({e}); left unchanged")
            return 0
        if old_genre == genre and old_conf == confidence:
            return 0
        if old_genre and old_conf is None and not self.overwrite:
            self.report(f"{path}: keeps its GENRE={old_genre!r} (use --overwrite-genre to replace it)")
            return 0
        change = f"GENRE {old_genre!r} -> {genre!r}, {CONFIDENCE_KEY}={confidence}"
        if self.dry_run:
            self.report(f"{path}: would set {change}")
            return 1
        try:
            self._safe_write(path, genre, confidence)
        except Exception as e:
            self.report(f"{path}: tags not written ({e}); the file is unchanged")
            return 0
        log.info("%s: %s", path, change)
        return 1

    @staticmethod
    def _safe_write(path: Path, genre: str, confidence: str) -> None:
        """Edit a copy, verify it, then atomically swap it in: the original is never half-written."""
        from .audio import stream_audio

        tmp = path.with_name(f".{path.name}.musicgenre-tmp{path.suffix}")
        try:
            shutil.copy2(path, tmp)
            _set(tmp, genre, confidence)
            if read_genre(tmp) != (genre, confidence):
                raise MusicGenreError("tags did not read back")
            for _ in stream_audio(tmp, sr=16000).blocks:  # the audio must still decode to the end
                pass
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
