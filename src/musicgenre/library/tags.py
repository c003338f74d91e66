"""Writing the predicted genre into a file's own tags with mutagen, without ever corrupting it.

GENRE goes where players look for it (ID3 TCON for MP3, Vorbis comment GENRE for FLAC/OGG/Opus,
the ©gen atom for M4A) plus a MUSICGENRE_CONFIDENCE tag. Only a confident call is written (top probability
>= ``min_confidence``, default 0.8): an uncertain file keeps its tags and is listed. Names come from the one
mapping, ``musicgenre.genres`` (``Hip Hop``, not ``hiphop``), and several genres are written natively: one
Vorbis GENRE field each, one ID3v2.4 TCON frame with several values, one MP4 ©gen value each (``separator``
joins them into one string instead, for old players). Each write goes to a temporary copy
(``.NAME.musicgenre-tmp.EXT`` next to the file), which is read back (tags) and decoded again (audio)
before it atomically replaces the original; a file or folder without write permission is left alone
(even for root), a full disk or file-size limit only ever fails the copy, and a file replaced or changed
while its tags were being written is left as the other writer made it. A symlink is written through:
its target is edited and the link stays a link. Our temporary copies are never scanned or tagged
(``is_temp_copy``); one left by a killed run is removed by the next scan.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._names import printable_name
from ..errors import MusicGenreError
from ..genres.provenance import CONFIDENCE_KEY
from .verdict import KEPT, SET, UNCERTAIN, UNKNOWN, Call, keep_or_replace, pick, unchanged_reason

__all__ = ["TagWriter", "safe_edit", "read_genres", "read_genre", "is_temp_copy", "temp_copy_path",
           "remove_temp_copies", "failure_reason", "WRITTEN", "ALREADY", "WOULD", "KEPT", "UNSUPPORTED", "FAILED",
           "UNCERTAIN", "UNKNOWN"]

log = logging.getLogger(__name__)

TAGGABLE = {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4"}
_MP4_CONF = f"----:com.apple.iTunes:{CONFIDENCE_KEY}"
TEMP_MARK = ".musicgenre-tmp"
# What ``TagWriter.tag`` did: the file now holds our tags (WRITTEN, ALREADY), or it does not.
# (KEPT, UNCERTAIN, UNKNOWN: the ladder's outcomes, ``verdict``: the file keeps what it had)
WRITTEN, ALREADY, WOULD, UNSUPPORTED, FAILED = "written", "already", "would", "unsupported", "failed"


def temp_copy_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{path.suffix}")


def is_temp_copy(path: Path) -> bool:
    """True for a name of the form ``.NAME.musicgenre-tmp.EXT`` (one of our temporary copies)."""
    return path.name.startswith(".") and path.name.endswith(TEMP_MARK + path.suffix)


def read_genres(path: Path) -> tuple[list[str], str | None]:
    """(genres, confidence) as stored in the file's tags: every value of the genre field, in order."""
    import mutagen

    f = mutagen.File(str(path))
    if f is None or f.tags is None:
        return [], None
    tags = f.tags
    if path.suffix.lower() == ".mp3":
        genre = tags.get("TCON")
        conf = tags.get(f"TXXX:{CONFIDENCE_KEY}")
        return ([str(g) for g in genre.text] if genre else [], str(conf.text[0]) if conf else None)
    if path.suffix.lower() in (".m4a", ".mp4"):
        genre = tags.get("\xa9gen")
        conf = tags.get(_MP4_CONF)
        return ([str(g) for g in genre] if genre else [], bytes(conf[0]).decode() if conf else None)
    genre, conf = tags.get("GENRE"), tags.get(CONFIDENCE_KEY)
    return (list(genre) if genre else [], conf[0] if conf else None)


def read_genre(path: Path) -> tuple[str | None, str | None]:
    """(genre, confidence) as stored in the file's tags, None where absent; several genres joined by "; "."""
    genres, conf = read_genres(path)
    return ("; ".join(genres) or None), conf


def _set(path: Path, genres: list[str], confidence: str | None) -> None:
    """Set the genre field to ``genres`` and ``MUSICGENRE_CONFIDENCE`` to ``confidence`` (None: remove it, the
    genres are then the owner's); every other tag stays as it is."""
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
        f.tags.setall("TCON", [TCON(encoding=3, text=list(genres))] if genres else [])  # ID3v2.4: one frame
        f.tags.setall(f"TXXX:{CONFIDENCE_KEY}",
                      [TXXX(encoding=3, desc=CONFIDENCE_KEY, text=[confidence])] if confidence is not None else [])
    elif suffix in (".m4a", ".mp4"):
        _put(f.tags, "\xa9gen", list(genres))
        _put(f.tags, _MP4_CONF, None if confidence is None else [MP4FreeForm(confidence.encode())])
    else:
        _put(f.tags, "GENRE", list(genres))  # one GENRE field per genre
        _put(f.tags, CONFIDENCE_KEY, None if confidence is None else [confidence])
    f.save()


def _put(tags: Any, key: str, values: list[Any] | None) -> None:
    if values:
        tags[key] = values
    elif key in tags:
        del tags[key]


def write_genres(path: Path, genres: list[str], *, confidence: str | None = None) -> None:
    """Set a file's genres exactly (``confidence`` None: as the owner's, without our mark), the other tags kept,
    through ``safe_edit`` (copy, verify, atomic swap). What the library page writes and undoes (``undo.py``);
    MusicGenreError or OSError when the file is left unchanged."""
    if Path(path).suffix.lower() not in TAGGABLE:
        raise MusicGenreError(f"tag writing is not supported for {printable_name(Path(path).suffix)} files")

    def verify(tmp: Path) -> None:
        if read_genres(tmp) != (list(genres), confidence):
            raise MusicGenreError("tags did not read back")

    safe_edit(Path(path), lambda tmp: _set(tmp, list(genres), confidence), verify)


class TagWriter:
    """Writes predictions into files. ``dry_run`` only reports; ``overwrite`` replaces an existing
    genre (otherwise a file that already has one is left alone). Only a prediction whose top probability
    reaches ``min_confidence`` (default 0.8) is written; ``count`` genres at most (``genres.pick_genres``),
    title-cased unless ``title_case=False``; ``separator`` (e.g. "; ") joins them into one value."""

    def __init__(self, *, dry_run: bool = False, overwrite: bool = False,
                 report: Callable[[str], None] = print, min_confidence: float | None = None, count: int = 1,
                 title_case: bool = True, separator: str | None = None, unknown: bool = True) -> None:
        from ..prediction import check_min_confidence

        self.dry_run = dry_run
        self.overwrite = overwrite
        self.report = report
        self.min_confidence = check_min_confidence(min_confidence)
        self.count = count
        self.title_case = title_case
        self.separator = separator
        self.unknown = unknown  # False: an "unknown" call is written under its nearest genre like any other
        self.last_error: str | None = None  # the one-line reason of the last FAILED outcome

    def write(self, path: Path, pred: Any) -> int:
        """Tag one file; returns 1 if it was (or, in a dry run, would be) changed."""
        return int(self.tag(path, pred) in (WRITTEN, WOULD))

    def tag(self, path: Path, pred: Any) -> str:
        """Tag one file; returns what happened (``WRITTEN``, ``ALREADY``, ``WOULD``, ``KEPT``, ...)."""
        path = Path(path)
        shown = printable_name(path)
        self.last_error = None
        if path.suffix.lower() not in TAGGABLE:
            self.report(f"{shown}: tag writing is not supported for {printable_name(path.suffix)} files; "
                        "left unchanged")
            return UNSUPPORTED
        if is_temp_copy(path):
            self.report(f"{shown}: a temporary copy made by musicgenre; not tagged")
            return UNSUPPORTED
        try:
            target = path.resolve(strict=True)  # a symlink is written through to its target
        except (OSError, RuntimeError) as e:  # dangling link, symlink loop, vanished file
            return self._failed(f"{shown}: cannot follow the path ({getattr(e, 'strerror', None) or e}); "
                                "left unchanged")
        call = Call.from_prediction(pred)
        confidence = f"{pred.scores[pred.label]:.3f}"
        outcome, genres = pick(call, min_confidence=self.min_confidence, count=self.count,
                               title_case=self.title_case, unknown=self.unknown)
        if outcome != SET:
            self.report(f"{shown}: {unchanged_reason(call, self.min_confidence)}; keeps its tags")
            return outcome
        if self.separator is not None:
            genres = [self.separator.join(genres)]
        try:
            old_genres, old_conf = read_genres(target)
        except Exception as e:  # mutagen raises many types for damaged headers
            return self._failed(f"{shown}: cannot read its tags ({e}); left unchanged")
        if old_genres == genres and old_conf == confidence:
            return ALREADY
        old_genre = "; ".join(old_genres) or None
        # a genre without our confidence tag is someone else's: kept unless --overwrite-genre
        if keep_or_replace(genres, existing=old_genres, ours=old_conf is not None, force=self.overwrite)[0] == KEPT:
            self.report(f"{shown}: keeps its GENRE={old_genre!r} (use --overwrite-genre to replace it)")
            return KEPT
        change = f"GENRE {old_genre!r} -> {'; '.join(genres)!r}, {CONFIDENCE_KEY}={confidence}"
        via = f" (through the symlink to {printable_name(target)})" if target != path.absolute() else ""
        if self.dry_run:
            self.report(f"{shown}: would set {change}{via}")
            return WOULD
        try:
            self._safe_write(target, genres, confidence)
        except Exception as e:
            return self._failed(f"{shown}: tags not written ({failure_reason(e)}); the file is unchanged")
        log.info("%s: %s%s", shown, change, via)
        return WRITTEN

    def _failed(self, line: str) -> str:
        self.last_error = line
        self.report(line)
        return FAILED

    @staticmethod
    def _safe_write(path: Path, genres: list[str], confidence: str) -> None:
        """Write ``genres`` and ``confidence`` through ``safe_edit``: the original is never half-written."""
        write_genres(path, genres, confidence=confidence)


def safe_edit(path: Path, edit: Callable[[Path], None], verify: Callable[[Path], None]) -> None:
    """Edit a copy, verify it, then atomically swap it in: the original is never half-written.
    ``edit(tmp)`` changes the temporary copy's tags (ours, or beets' ``Item.write``), ``verify(tmp)``
    raises if they did not read back; the copy's audio must still decode to the end.
    ``path`` is a regular file (links already resolved), so the swap never replaces a link.
    Refused up front: a file or folder without write permission bits (honoured even for root, who may
    write anyway). Checked just before the swap: the file is still the one that was copied."""
    from ..audio import stream_audio
    from .db import same_file

    before = os.stat(path)
    if not before.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise MusicGenreError("the file is read-only")
    folder = os.stat(path.parent)
    if not folder.st_mode & 0o222 or not os.access(path.parent, os.W_OK | os.X_OK):
        raise MusicGenreError("its folder is read-only")
    tmp = temp_copy_path(path)
    try:
        shutil.copy2(path, tmp)
        if os.stat(tmp).st_uid != before.st_uid or os.stat(tmp).st_gid != before.st_gid:
            try:  # root writing a user's file: the swapped-in copy keeps the owner
                os.chown(tmp, before.st_uid, before.st_gid)
            except OSError:
                pass
        edit(tmp)
        verify(tmp)
        for _ in stream_audio(tmp, sr=16000).blocks:  # the audio must still decode to the end
            pass
        if not same_file(before, os.stat(path)):  # replaced or rewritten by someone else meanwhile
            raise MusicGenreError("the file changed while its tags were being written; left as it is now")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def failure_reason(e: BaseException) -> str:
    """Why a write failed, in one line: an OSError's own words (never the temporary copy's name), else the
    first line of the message."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return (str(e).splitlines() or [type(e).__name__])[0]


def remove_temp_copies(paths: list[Path]) -> list[Path]:
    """Delete our temporary copies among ``paths`` (left by a killed run); returns the other paths."""
    keep = []
    for p in paths:
        if not is_temp_copy(p):
            keep.append(p)
            continue
        try:
            if not p.is_symlink():
                p.unlink()
                log.warning("%s: removed a temporary copy left by an interrupted tag write", printable_name(p))
        except OSError as e:
            log.warning("%s: cannot remove this leftover temporary copy (%s)", printable_name(p), e.strerror)
    return keep
