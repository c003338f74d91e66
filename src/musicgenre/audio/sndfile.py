"""Decoding with soundfile (libsndfile, in-process): opening, header sanity checks, blocks, and keeping
mpg123's writes to file descriptor 2 off the terminal."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np

from ..errors import AudioDecodeError, Reason
from .sniff import SOUNDFILE_MAGIC, soundfile_first
from .stream import MAX_CHANNELS, MAX_DECLARED_HOURS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, DecodeInfo

log = logging.getLogger(__name__)

_UNCOMPRESSED = ("PCM_", "FLOAT", "DOUBLE", "ULAW", "ALAW")


_fd2_lock = threading.Lock()
_fd2_state: dict[str, Any] = {"users": 0}
_MPG123_NOISE = (b"Warning: ", b"Note: ", b"[src/libmpg123", b"[libmpg123", b"[mpg123")


@contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Keep mpg123 (inside libsndfile), which writes straight to file descriptor 2, off the terminal.

    While any thread is inside, fd 2 points to a temporary file; when the last one leaves, the
    decoder's lines go to the log and anything else written meanwhile goes back to stderr.
    """
    with _fd2_lock:
        if _fd2_state["users"] == 0:
            sys.stderr.flush()
            capture = tempfile.TemporaryFile()
            _fd2_state.update(capture=capture, saved=os.dup(2))
            os.dup2(capture.fileno(), 2)
        _fd2_state["users"] += 1
    try:
        yield
    finally:
        with _fd2_lock:
            _fd2_state["users"] -= 1
            if _fd2_state["users"] == 0:
                sys.stderr.flush()
                os.dup2(_fd2_state["saved"], 2)
                os.close(_fd2_state["saved"])
                capture = _fd2_state.pop("capture")
                capture.seek(0)
                lines = capture.read().splitlines(keepends=True)
                capture.close()
                noise = [ln for ln in lines if ln.lstrip().startswith(_MPG123_NOISE)]
                if noise:
                    log.info("mpg123 said: %s", b" | ".join(ln.strip() for ln in noise).decode(errors="replace"))
                other = b"".join(ln for ln in lines if ln not in noise)
                if other:
                    os.write(2, other)


def quiet_if(noisy: bool) -> AbstractContextManager[None]:
    """``quiet_fd2`` when ``noisy`` (mpg123 is decoding), else nothing."""
    return _quiet_fd2() if noisy else nullcontext()


def open_soundfile(target: Any) -> tuple[Any, str | None]:
    """(soundfile.SoundFile, None), or (None, libsndfile's reason) when it cannot open ``target``."""
    import soundfile as sf

    try:
        return sf.SoundFile(target), None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError) as e:
        return None, getattr(e, "error_string", None) or str(e)


def check_header(name: str, f: Any, size: int) -> float | None:
    """Refuse header values no recording has; return the declared duration in seconds (if any)."""
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(name, Reason.CORRUPT, f"implausible header: sample rate {f.samplerate} Hz")
    if not 1 <= f.channels <= MAX_CHANNELS:
        raise AudioDecodeError(name, Reason.CORRUPT, f"implausible header: {f.channels} channels")
    frames = f.frames if 0 < f.frames < 2**62 else 0
    declared = frames / f.samplerate if frames else None
    if declared is not None and declared > MAX_DECLARED_HOURS * 3600:
        raise AudioDecodeError(name, Reason.TOO_LONG, f"the header claims {declared / 3600:.0f} hours")
    if frames and f.format != "FLAC" and str(f.subtype).startswith(_UNCOMPRESSED):
        width = {"PCM_S8": 1, "PCM_U8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                 "FLOAT": 4, "DOUBLE": 8}.get(str(f.subtype), 1)
        if frames * f.channels * width > size + 4096:
            raise AudioDecodeError(name, Reason.CORRUPT,
                                   f"implausible header: {declared:.0f} s of audio in {size} bytes")
    return declared


def soundfile_frames(name: str, f: Any, block_seconds: float, info: DecodeInfo) -> Iterator[np.ndarray]:
    """Blocks from soundfile; on damage, stop and mark the stream damaged (the caller decides)."""
    import soundfile as sf

    step = max(1, int(block_seconds * f.samplerate))
    read = 0
    try:
        while True:
            with quiet_if(f.format == "MP3"):
                block = f.read(step, dtype="float32", always_2d=True)
            if not len(block):
                break
            read += len(block)
            yield block
    except (sf.LibsndfileError, RuntimeError) as e:
        log.info("%s: libsndfile said: %s", name, getattr(e, "error_string", None) or e)
        info.damaged = True
    if info.declared_seconds and read < 0.99 * info.declared_seconds * f.samplerate:
        info.damaged = True


def open_first(head: bytes, target: Any) -> tuple[Any, str | None]:
    """soundfile for the sources ``soundfile_first`` gives it; (None, None) sends the rest to ffmpeg."""
    if not soundfile_first(head):
        return None, None
    with quiet_if(not head.startswith(SOUNDFILE_MAGIC)):  # MP3 without ffmpeg
        return open_soundfile(target)
