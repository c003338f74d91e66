"""Audio input: any file, bytes or array -> float32 mono at the model's sample rate.

Files are read in blocks (soundfile for WAV/FLAC/OGG/Opus/MP3, ffmpeg for M4A/AAC and other
containers) and resampled with a streaming resampler, so a 1-hour file never sits in memory whole.
Every failure becomes an ``AudioDecodeError`` that names the input and the reason.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AudioDecodeError

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".aif", ".aiff", ".au", ".wma", ".webm"}
)
BLOCK_SECONDS = 30.0

Blocks = Generator[np.ndarray, None, None]  # mono float32 blocks at the target rate
# A path, raw file bytes, (array, sr), or the transformers-style {"array": ..., "sampling_rate": ...}
AudioSource = str | os.PathLike | bytes | tuple | dict


@dataclass(frozen=True)
class Decoded:
    """One source opened for streaming: ``blocks`` yields float32 mono arrays at ``sr``."""

    name: str
    blocks: Blocks


def describe(src: Any) -> str:
    """Short human name for a source, used in every error message."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    return "<array>"


def ffmpeg_path() -> str | None:
    return shutil.which("ffmpeg")


def stream_audio(src: AudioSource, *, sr: int, block_seconds: float = BLOCK_SECONDS) -> Decoded:
    """Open ``src`` and return a lazy stream of mono float32 blocks resampled to ``sr``.

    Errors that can be seen before decoding (missing file, empty input) raise here; errors found
    while decoding raise ``AudioDecodeError`` from the iterator.
    """
    name = describe(src)
    if isinstance(src, dict):
        if "array" not in src or "sampling_rate" not in src:
            raise AudioDecodeError(f"{name}: a dict input needs 'array' and 'sampling_rate' keys")
        src = (src["array"], src["sampling_rate"])
    if isinstance(src, tuple):
        if len(src) != 2:
            raise AudioDecodeError(f"{name}: an array input must be (samples, sample_rate)")
        return Decoded(name, _array_blocks(name, src[0], src[1], sr, block_seconds))
    if isinstance(src, (bytes, bytearray)):
        if not src:
            raise AudioDecodeError(f"{name}: empty input (0 bytes)")
        return Decoded(name, _bytes_blocks(name, bytes(src), sr, block_seconds))
    if isinstance(src, np.ndarray):
        raise AudioDecodeError("a numpy array needs its sample rate: pass (array, sr)")
    if not isinstance(src, (str, os.PathLike)):
        raise AudioDecodeError(f"unsupported input type {type(src).__name__}: give a path, bytes or (array, sr)")
    path = Path(src)
    if not path.exists():
        raise AudioDecodeError(f"{name}: file not found")
    if not path.is_file():
        raise AudioDecodeError(f"{name}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{name}: empty file (0 bytes)")
    return Decoded(name, _file_blocks(name, path, sr, block_seconds))


def load_audio(src: AudioSource, *, sr: int) -> np.ndarray:
    """Decode ``src`` whole into a float32 mono array at ``sr`` (use ``stream_audio`` for long files)."""
    blocks = list(stream_audio(src, sr=sr).blocks)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _to_mono(x: np.ndarray, name: str) -> np.ndarray:
    """(n,), (n, channels) -> (n,) float32; rejects NaN/inf, which would poison every score."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise AudioDecodeError(f"{name}: expected samples shaped (n,) or (n, channels), got {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise AudioDecodeError(f"{name}: audio contains NaN or infinite samples")
    return x


class _Resampler:
    """Streaming resampler (soxr) that passes audio through untouched when the rates agree."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.stream = None
        if sr_in != sr_out:
            import soxr

            self.stream = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return x
        return self.stream.resample_chunk(x, last=last)


def _array_blocks(name: str, array: Any, sr_in: Any, sr: int, block_seconds: float) -> Blocks:
    if not isinstance(sr_in, (int, np.integer)) or sr_in <= 0:
        raise AudioDecodeError(f"{name}: sample rate must be a positive integer, got {sr_in!r}")
    x = np.asarray(array)
    # (channels, n) arrays as pedalboard/torchaudio give them: channels is the short axis
    if x.ndim == 2 and x.shape[0] < x.shape[1] and x.shape[0] <= 8:
        x = x.T
    mono = _to_mono(x, name)
    resample = _Resampler(int(sr_in), sr)
    step = max(1, int(block_seconds * int(sr_in)))
    for start in range(0, len(mono), step):
        yield resample(mono[start : start + step])
    yield resample(np.zeros(0, np.float32), last=True)


def _soundfile_blocks(name: str, f: Any, sr: int, block_seconds: float) -> Blocks:
    import soundfile as sf

    resample = _Resampler(f.samplerate, sr)
    step = max(1, int(block_seconds * f.samplerate))
    try:
        while True:
            block = f.read(step, dtype="float32", always_2d=True)
            if not len(block):
                break
            yield resample(_to_mono(block, name))
    except sf.LibsndfileError as e:
        raise AudioDecodeError(f"{name}: corrupt or truncated audio ({e.error_string})") from None
    yield resample(np.zeros(0, np.float32), last=True)


def _open_soundfile(target: Any) -> tuple[Any, str | None]:
    import soundfile as sf

    try:
        return sf.SoundFile(target), None
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        return None, getattr(e, "error_string", None) or str(e)


def _file_blocks(name: str, path: Path, sr: int, block_seconds: float) -> Blocks:
    f, why = _open_soundfile(str(path))
    if f is not None:
        with f:
            yield from _soundfile_blocks(name, f, sr, block_seconds)
        return
    yield from _ffmpeg_blocks(name, path, sr, block_seconds, why)


def _bytes_blocks(name: str, data: bytes, sr: int, block_seconds: float) -> Blocks:
    f, why = _open_soundfile(io.BytesIO(data))
    if f is not None:
        with f:
            yield from _soundfile_blocks(name, f, sr, block_seconds)
        return
    if ffmpeg_path() is None:  # no temp file needed just to fail
        yield from _ffmpeg_blocks(name, Path(), sr, block_seconds, why)
        return
    with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
        tmp.write(data)
        tmp.flush()
        yield from _ffmpeg_blocks(name, Path(tmp.name), sr, block_seconds, why)


def _ffmpeg_blocks(
    name: str, path: Path, sr: int, block_seconds: float, sf_reason: str | None
) -> Blocks:
    """Decode with ffmpeg straight to float32 mono at ``sr``, read from its stdout in blocks."""
    exe = ffmpeg_path()
    if exe is None:
        raise AudioDecodeError(
            f"{name}: not a format soundfile can read ({sf_reason}); containers such as M4A/AAC need "
            "ffmpeg, which is not installed (e.g. apt-get install ffmpeg)"
        )
    cmd = [exe, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-f", "f32le", "-ac", "1", "-ar", str(sr), "pipe:1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    step = 4 * max(1, int(block_seconds * sr))
    got_any = False
    try:
        while True:
            chunk = proc.stdout.read(step)
            if not chunk:
                break
            chunk = chunk[: len(chunk) // 4 * 4]
            got_any = got_any or bool(chunk)
            yield _to_mono(np.frombuffer(chunk, dtype="<f4"), name)
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0 or not got_any:
            reason = err.splitlines()[-1] if err else "no audio stream"
            raise AudioDecodeError(f"{name}: cannot decode audio (ffmpeg: {reason})")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
