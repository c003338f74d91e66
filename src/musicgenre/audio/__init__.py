"""Audio input: any file, bytes or array -> float32 mono at the model's sample rate.

Files are read in blocks and resampled with a streaming resampler, so a 1-hour file never sits in
memory whole. soundfile reads WAV/FLAC/AIFF and friends, and MP3 and Ogg in-process; ffmpeg (when
installed) reads every other container, the MP3/Ogg streams soundfile would cut short (chained Ogg,
MP3 whose parts change rate) and the rest of a stream after damage soundfile stops at (it resyncs).
Both paths give all channels at the native rate and share one downmix (``to_mono``) and one resampler.

Hostile input is normal input: every failure is an ``AudioDecodeError`` with one of the fixed
``Reason`` values and a printable name; header values are sanity-checked before decoding; at most
``max_seconds`` (default ``DEFAULT_MAX_MINUTES``) of audio is decoded, and longer input is truncated
and says so in ``DecodeInfo.warnings`` rather than being refused. Damaged files decode as far as
they can and say how much was decoded.

The package keeps decoding apart from signal code: ``files`` (finding audio files), ``sniff`` (first bytes:
playlists refused, decoder chosen), ``sndfile`` (soundfile), ``ffmpeg`` (ffmpeg), ``signal`` (downmix,
resampler, music detector), ``stream`` (the decoder's report and the block conditioner); this module
dispatches a source (path, bytes, array) to them: ``stream_audio`` and ``load_audio``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._names import printable_name
from ..errors import AudioDecodeError, Reason
from . import _ffmpeg
from .ffmpeg import resume, via_ffmpeg
from .files import AUDIO_EXTENSIONS, find_audio_files, reason_for_oserror, stat_problem
from .signal import MusicEvidence, to_mono
from .sndfile import check_header, open_first, soundfile_frames
from .sniff import SOUNDFILE_FIRST, TEXT_SNIFF, needs_ffmpeg, sniff
from .stream import (
    BLOCK_SECONDS,
    DEFAULT_MAX_MINUTES,
    MAX_CHANNELS,
    MAX_DECLARED_HOURS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioSource,
    Blocks,
    Decoded,
    DecodeInfo,
    limited,
)

__all__ = [
    "AUDIO_EXTENSIONS", "BLOCK_SECONDS", "DEFAULT_MAX_MINUTES", "MAX_CHANNELS", "MAX_DECLARED_HOURS",
    "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "AudioSource", "Blocks", "DecodeInfo", "Decoded", "MusicEvidence",
    "describe", "ffmpeg_path", "find_audio_files", "load_audio", "stream_audio", "to_mono",
]

log = logging.getLogger(__name__)


def describe(src: Any) -> str:
    """Short printable name for a source, used in every message (never a temp-file path)."""
    if isinstance(src, (str, os.PathLike)):
        return printable_name(src)
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    if src is None:
        return "<None>"
    return "<array>"


def ffmpeg_path() -> str | None:
    """The ffmpeg executable, or None (then soundfile decodes what it can)."""
    return _ffmpeg.ffmpeg_exe()


def stream_audio(src: AudioSource, *, sr: int, block_seconds: float = BLOCK_SECONDS,
                 max_seconds: float | None = None) -> Decoded:
    """Open ``src`` and return a lazy stream of mono float32 blocks resampled to ``sr``.

    At most ``max_seconds`` (default ``DEFAULT_MAX_MINUTES`` minutes; ``math.inf`` for no limit)
    are decoded; ``Decoded.info`` says afterwards whether the input was truncated or damaged.
    Errors that can be seen before decoding (missing file, empty input, bad arrays) raise here;
    errors found while decoding raise ``AudioDecodeError`` from the iterator.
    """
    name = describe(src)
    limit = DEFAULT_MAX_MINUTES * 60 if max_seconds is None else _check_max_seconds(max_seconds)
    info = DecodeInfo(max_seconds=limit)
    if isinstance(src, dict):
        if "array" not in src or "sampling_rate" not in src:
            raise AudioDecodeError(name, Reason.INVALID_INPUT, "a dict input needs 'array' and 'sampling_rate' keys")
        src = (src["array"], src["sampling_rate"])
    if isinstance(src, tuple):
        if len(src) != 2:
            raise AudioDecodeError(name, Reason.INVALID_INPUT, "an array input must be (samples, sample_rate)")
        x, sr_in = _check_array(name, src[0], src[1])
        return Decoded(name, limited(name, _array_frames(x, sr_in, block_seconds), sr_in, sr, info), info)
    if isinstance(src, (bytes, bytearray)):
        if not src:
            raise AudioDecodeError(name, Reason.EMPTY_FILE, "0 bytes")
        return Decoded(name, _bytes_blocks(name, bytes(src), sr, block_seconds, info), info)
    if isinstance(src, np.ndarray):
        raise AudioDecodeError(name, Reason.INVALID_INPUT, "a numpy array needs its sample rate: pass (array, sr)")
    if not isinstance(src, (str, os.PathLike)):
        raise AudioDecodeError(name, Reason.INVALID_INPUT,
                               f"unsupported input type {type(src).__name__}: give a path, bytes or (array, sr)")
    path = Path(src)
    problem = stat_problem(path)
    if problem is None and path.is_dir():
        problem = Reason.NOT_A_REGULAR_FILE, "a folder"
    if problem is not None:
        raise AudioDecodeError(name, *problem)
    if path.stat().st_size == 0:
        raise AudioDecodeError(name, Reason.EMPTY_FILE, "0 bytes")
    try:
        with open(path, "rb") as f:
            head = f.read(TEXT_SNIFF)
    except OSError as e:
        raise AudioDecodeError(name, *reason_for_oserror(e)) from None
    sniff(name, head)
    return Decoded(name, _file_blocks(name, path, sr, block_seconds, info, head), info)


def load_audio(src: AudioSource, *, sr: int, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``src`` whole into a float32 mono array at ``sr`` (use ``stream_audio`` for long files)."""
    blocks = list(stream_audio(src, sr=sr, max_seconds=max_seconds).blocks)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _check_max_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or math.isnan(value) or value <= 0:
        raise AudioDecodeError("max_seconds", Reason.INVALID_INPUT, f"must be a positive number, got {value!r}")
    return float(value)


def _check_rate(name: str, value: Any) -> int:
    """Sample rates: integers (or integral floats) in a plausible range; bool and NaN are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AudioDecodeError(name, Reason.INVALID_INPUT, f"sample rate must be a positive integer, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value <= 0:
        raise AudioDecodeError(name, Reason.INVALID_INPUT, f"sample rate must be a positive integer, got {value!r}")
    if not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(name, Reason.INVALID_INPUT,
                               f"sample rate {int(value)} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return int(value)


def _check_array(name: str, array: Any, sr_in: Any) -> tuple[np.ndarray, int]:
    rate = _check_rate(name, sr_in)
    try:
        x = np.asarray(array)
    except (ValueError, TypeError) as e:
        raise AudioDecodeError(name, Reason.INVALID_INPUT, f"not an array of samples ({e})") from None
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise AudioDecodeError(name, Reason.INVALID_INPUT, f"samples must be numbers, got dtype {x.dtype}")
    # (channels, n) arrays as pedalboard/torchaudio give them: channels is the short axis
    if x.ndim == 2 and x.shape[0] < x.shape[1] and x.shape[0] <= 8:
        x = x.T
    if x.ndim not in (1, 2) or (x.ndim == 2 and not 1 <= x.shape[1] <= MAX_CHANNELS):
        raise AudioDecodeError(name, Reason.INVALID_INPUT,
                               f"expected samples shaped (n,) or (n, channels), got {x.shape}")
    return x, rate


def _array_frames(x: np.ndarray, sr_in: int, block_seconds: float) -> Iterator[np.ndarray]:
    step = max(1, int(block_seconds * sr_in))
    for start in range(0, len(x), step):
        yield x[start : start + step]


def _file_blocks(name: str, path: Path, sr: int, block_seconds: float, info: DecodeInfo, head: bytes) -> Blocks:
    f, why = open_first(head, str(path))
    yield from _decode_any(f, why, name=name, path=path, size=path.stat().st_size, sr=sr,
                           block_seconds=block_seconds, info=info)


def _bytes_blocks(name: str, data: bytes, sr: int, block_seconds: float, info: DecodeInfo) -> Blocks:
    sniff(name, data[:TEXT_SNIFF])
    f, why = open_first(data[:16], io.BytesIO(data))
    if _ffmpeg.ffmpeg_exe() is None or (f is not None and f.format in SOUNDFILE_FIRST):
        yield from _decode_any(f, why, name=name, path=None, size=len(data), sr=sr, block_seconds=block_seconds,
                               info=info)
        return
    with tempfile.TemporaryDirectory(prefix="musicgenre-") as tmp:  # removed even if the caller stops early
        path = Path(tmp) / "input"
        path.write_bytes(data)
        yield from _decode_any(f, why, name=name, path=path, size=len(data), sr=sr, block_seconds=block_seconds,
                               info=info)


def _decode_any(f: Any, why: str | None, *, name: str, path: Path | None, size: int, sr: int,
                block_seconds: float, info: DecodeInfo) -> Blocks:
    """soundfile first for the formats it reads well, ffmpeg for the rest and to resume after damage."""
    have_ffmpeg = _ffmpeg.ffmpeg_exe() is not None and path is not None
    if f is None:
        if not have_ffmpeg or path is None:
            log.info("%s: libsndfile said: %s", name, why)
            raise AudioDecodeError(name, Reason.UNSUPPORTED_CODEC,
                                   "not a format soundfile reads; other containers need ffmpeg, which is not installed")
        yield from via_ffmpeg(name, path, sr, block_seconds, info)
        return
    with f:
        info.declared_seconds = check_header(name, f, size)
        if have_ffmpeg and f.format not in SOUNDFILE_FIRST and needs_ffmpeg(f, path, info.declared_seconds):
            assert path is not None
            yield from via_ffmpeg(name, path, sr, block_seconds, info)
            return
        native = f.samplerate
        got = 0

        def counted() -> Iterator[np.ndarray]:
            nonlocal got
            for block in soundfile_frames(name, f, block_seconds, info):
                got += len(block)
                yield block

        if not have_ffmpeg:
            yield from limited(name, counted(), native, sr, info)
            if not got:
                raise AudioDecodeError(name, Reason.CORRUPT, "no audio could be decoded")
            return
        # With ffmpeg at hand, a stream soundfile gives up on continues in ffmpeg (which resyncs).
        blocks = counted()
        continued = resume(name, blocks, path, native, block_seconds, info, lambda: got)
        yield from limited(name, continued, native, sr, info)
        if not info.seconds:
            raise AudioDecodeError(name, Reason.CORRUPT, "no audio could be decoded")


