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
"""

from __future__ import annotations

import errno
import io
import logging
import math
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _ffmpeg
from ._names import printable_name
from .errors import AudioDecodeError, Reason

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".aif", ".aiff", ".au", ".wma", ".webm"}
)
BLOCK_SECONDS = 30.0
DEFAULT_MAX_MINUTES = 60.0  # analysed per input unless the caller asks otherwise; longer input is truncated
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
MAX_DECLARED_HOURS = 100.0  # a header claiming more is a header bomb, not a recording
# Formats soundfile decodes well; anything else (and MP3/Ogg when ffmpeg exists) goes to ffmpeg.
_SOUNDFILE_FIRST = frozenset({"WAV", "WAVEX", "FLAC", "AIFF", "AU", "W64", "RF64", "CAF", "RAW", "IRCAM", "NIST"})
_SOUNDFILE_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"FORM", b"fLaC", b".snd", b"caff", b"riff")
_MP3_OGG_MAGIC = (b"ID3", b"OggS")
_UNCOMPRESSED = ("PCM_", "FLOAT", "DOUBLE", "ULAW", "ALAW")
_TEXT_SNIFF = 512

Blocks = Generator[np.ndarray, None, None]  # mono float32 blocks at the target rate
# A path, raw file bytes, (array, sr), or the transformers-style {"array": ..., "sampling_rate": ...}
AudioSource = str | os.PathLike | bytes | tuple | dict


@dataclass
class DecodeInfo:
    """Filled in while a source decodes: how much audio there was and what went wrong on the way."""

    seconds: float = 0.0  # decoded (after any truncation)
    declared_seconds: float | None = None  # what the header said, when it says anything
    truncated: bool = False  # stopped at max_seconds
    damaged: bool = False  # the decoder skipped or stopped at damaged data
    max_seconds: float = DEFAULT_MAX_MINUTES * 60
    evidence: MusicEvidence | None = None  # set by stream_audio; judged once decoding has finished

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.truncated:
            total = f" of {self.declared_seconds / 60:.1f}" if self.declared_seconds else ""
            out.append(f"too long: analysed the first {self.max_seconds / 60:.1f}{total} min")
        if self.damaged:
            if self.declared_seconds and self.seconds < 0.99 * self.declared_seconds and not self.truncated:
                out.append(f"corrupt or truncated: decoded {self.seconds:.1f} of {self.declared_seconds:.1f} s")
            else:
                out.append(f"corrupt or truncated: damaged data skipped, decoded {self.seconds:.1f} s")
        return out


class MusicEvidence:
    """Cheap signal statistics that tell music from garbage: silence, DC, lone clicks, white noise.

    Frames of ``FRAME`` samples at the target rate, DC removed; a frame is active above -60 dBFS RMS.
    Input with under ``MIN_ACTIVE_SECONDS`` of active frames, or whose active frames are nearly all
    as flat as white noise (90% of them above spectral flatness ``NOISE_FLATNESS``), is not music.
    """

    FRAME = 1024
    ACTIVE_RMS = 1e-3
    MIN_ACTIVE_SECONDS = 1.0
    NOISE_FLATNESS = 0.3  # white noise measures ~0.4 here, the loudest metal clip in ../shared 0.14

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self.buf = np.zeros(0, np.float32)
        self.active = 0
        self.frames = 0
        self.flatness: list[np.ndarray] = []
        self.window = np.hanning(self.FRAME).astype(np.float32)

    def push(self, x: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, x])
        n = len(self.buf) // self.FRAME
        if not n:
            return
        frames = self.buf[: n * self.FRAME].reshape(n, self.FRAME).astype(np.float64)
        self.buf = self.buf[n * self.FRAME :]
        frames -= frames.mean(axis=1, keepdims=True)
        rms = np.sqrt(np.mean(frames**2, axis=1))
        live = frames[rms > self.ACTIVE_RMS]
        self.frames += n
        self.active += len(live)
        if len(live):
            power = np.abs(np.fft.rfft(live * self.window, axis=1))[:, 1:] ** 2 + 1e-20
            self.flatness.append((np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)).astype(np.float32))

    def verdict(self) -> str | None:
        """None for plausible music, else a short reason why not."""
        if not self.frames:
            return None
        if not self.active:
            return "silent: nothing above -60 dBFS"
        if self.active * self.FRAME / self.sr < self.MIN_ACTIVE_SECONDS:
            return "silent apart from isolated clicks or a constant level"
        flat = _quantile(np.concatenate(self.flatness), 0.1)  # noise-like nearly throughout
        if flat > self.NOISE_FLATNESS:
            return f"noise-like signal (spectral flatness {flat:.2f})"
        return None


def _quantile(x: np.ndarray, q: float) -> float:
    """``np.quantile(x, q)`` (linear interpolation), without the numpy.ma import it costs at start-up."""
    x = np.sort(x)
    pos = q * (len(x) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(x) - 1)
    return float(x[lo] + (x[hi] - x[lo]) * (pos - lo))


@dataclass(frozen=True)
class Decoded:
    """One source opened for streaming: ``blocks`` yields float32 mono arrays at the target rate."""

    name: str
    blocks: Blocks
    info: DecodeInfo = field(default_factory=DecodeInfo)


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
    return _ffmpeg.ffmpeg_exe()


def find_audio_files(paths: list[Any], *, errors: list[str]) -> Iterator[Path]:
    """Files as given; directories walked recursively (sorted) for audio extensions.

    Inputs that cannot be used (missing, symlink loop, permission denied) are reported in
    ``errors`` as one printable line each and skipped; unreadable subfolders are skipped too.
    """
    for raw in paths:
        p = Path(raw)
        problem = _stat_problem(p)
        if problem is None and p.is_dir():
            found: list[Path] = []
            seen: set[tuple[int, int]] = set()  # folders already walked: symlinked folders may loop
            walk = os.walk(p, followlinks=True, onerror=lambda e: errors.append(_os_error_line(e)))
            for root, dirs, files in walk:
                try:
                    st = os.stat(root)
                except OSError as e:
                    errors.append(_os_error_line(e))
                    dirs.clear()
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    dirs.clear()
                    continue
                seen.add((st.st_dev, st.st_ino))
                dirs.sort()
                found.extend(Path(root) / f for f in files if Path(f).suffix.lower() in AUDIO_EXTENSIONS)
            found.sort()
            if not found:
                errors.append(f"{printable_name(p)}: no audio files found")
            yield from found
        elif problem is None or problem[0] is Reason.NOT_A_REGULAR_FILE:
            yield p  # a FIFO or device is refused by stream_audio with the same wording
        else:
            errors.append(str(AudioDecodeError(printable_name(p), *problem)))


def _os_error_line(e: OSError) -> str:
    reason, detail = _reason_for_oserror(e)
    return str(AudioDecodeError(printable_name(e.filename or "?"), reason, detail))


def _reason_for_oserror(e: OSError) -> tuple[Reason, str | None]:
    if e.errno == errno.ELOOP:
        return Reason.SYMLINK_LOOP, None
    if e.errno in (errno.EACCES, errno.EPERM):
        return Reason.PERMISSION_DENIED, None
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return Reason.FILE_NOT_FOUND, None
    if e.errno == errno.ENAMETOOLONG:
        return Reason.FILE_NOT_FOUND, "name too long"
    return Reason.CORRUPT, e.strerror or type(e).__name__


def _stat_problem(path: Path) -> tuple[Reason, str | None] | None:
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOENT and os.path.islink(path):
            return Reason.FILE_NOT_FOUND, "broken symlink"
        return _reason_for_oserror(e)
    except ValueError:  # embedded NUL byte
        return Reason.FILE_NOT_FOUND, "invalid name"
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return None
    return Reason.NOT_A_REGULAR_FILE, None


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
        return Decoded(name, _limited(name, _array_frames(x, sr_in, block_seconds), sr_in, sr, info), info)
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
    problem = _stat_problem(path)
    if problem is None and path.is_dir():
        problem = Reason.NOT_A_REGULAR_FILE, "a folder"
    if problem is not None:
        raise AudioDecodeError(name, *problem)
    if path.stat().st_size == 0:
        raise AudioDecodeError(name, Reason.EMPTY_FILE, "0 bytes")
    try:
        with open(path, "rb") as f:
            head = f.read(_TEXT_SNIFF)
    except OSError as e:
        raise AudioDecodeError(name, *_reason_for_oserror(e)) from None
    _sniff(name, head)
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


def _sniff(name: str, head: bytes) -> None:
    """Refuse playlists and plain text before any decoder sees them."""
    lead = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lead.startswith((b"#extm3u", b"#extinf", b"ffconcat", b"[playlist]", b"<?xml", b"<smil", b"<asx")) \
            or (lead.startswith(b"#") and b"://" in lead) or lead.startswith((b"http://", b"https://", b"file:")):
        raise AudioDecodeError(name, Reason.NOT_AUDIO, "a playlist or link; playlists are refused")
    if len(head) >= 64 and b"\0" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            return
        if sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.98 * len(text):
            raise AudioDecodeError(name, Reason.NOT_AUDIO, "a text file")


def to_mono(x: np.ndarray, name: str) -> np.ndarray:
    """(n,), (n, channels) -> (n,) float32: the one downmix rule for every decoder.

    The mean of the channels, unless they cancel (antiphase stereo: the mean keeps less than a tenth
    of the channels' level); then the loudest channel, so real music never vanishes in the downmix.
    Rejects NaN/inf, which would poison every score.
    """
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        if x.shape[1] == 1:
            x = x[:, 0]
        else:
            # Column by column: numpy reduces (n, 2) along its short axis about 10x slower (60 ms per
            # 30 s of 44.1 kHz stereo). Up to 7 channels these are x.mean(axis=1)'s sums in its order: same bits.
            channels = [x[:, c] for c in range(x.shape[1])]
            mono = channels[0].copy()
            for ch in channels[1:]:
                mono += ch
            mono /= len(channels)
            energy = np.array([_energy(ch) for ch in channels])
            if len(x) and _energy(mono) < 0.01 * float(np.sqrt(energy).mean()) ** 2:  # RMS below a tenth
                mono = channels[int(np.argmax(energy))]
            x = mono
    elif x.ndim != 1:
        raise AudioDecodeError(name, Reason.INVALID_INPUT,
                               f"expected samples shaped (n,) or (n, channels), got {x.shape}")
    if not np.isfinite(x).all():
        raise AudioDecodeError(name, Reason.INVALID_INPUT, "audio contains NaN or infinite samples")
    return np.ascontiguousarray(x, dtype=np.float32)


def _energy(x: np.ndarray, block: int = 1 << 16) -> float:
    """Mean square of a float32 signal, accumulated in float64 (a strided column is fine).

    In cache-sized blocks: converting a whole 30-s stereo column to float64 at once cost 10 ms a call
    (three calls per stereo file, more than the MP3 decode), block by block about 1 ms.
    """
    total = 0.0
    for i in range(0, len(x), block):
        d = x[i : i + block].astype(np.float64)
        total += float(d @ d)
    return total / len(x) if len(x) else 0.0


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


def _limited(name: str, frames: Iterator[np.ndarray], sr_in: int, sr: int, info: DecodeInfo) -> Blocks:
    """Native-rate (n,) or (n, channels) blocks -> mono at ``sr``, stopping at ``info.max_seconds``."""
    resample = _Resampler(sr_in, sr)
    evidence = info.evidence = MusicEvidence(sr)
    limit = math.inf if math.isinf(info.max_seconds) else int(info.max_seconds * sr_in)
    done = 0
    try:
        for block in frames:
            if done + len(block) > limit:
                block, info.truncated = block[: max(0, int(limit - done))], True
            done += len(block)
            info.seconds = done / sr_in
            if len(block):
                out = resample(to_mono(block, name))
                evidence.push(out)
                yield out
            if info.truncated:
                break
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # stops ffmpeg now, not at garbage collection
    tail = resample(np.zeros(0, np.float32), last=True)
    evidence.push(tail)
    yield tail


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


def _quiet_if(noisy: bool) -> AbstractContextManager[None]:
    return _quiet_fd2() if noisy else nullcontext()


def _open_soundfile(target: Any) -> tuple[Any, str | None]:
    import soundfile as sf

    try:
        return sf.SoundFile(target), None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError) as e:
        return None, getattr(e, "error_string", None) or str(e)


def _check_header(name: str, f: Any, size: int) -> float | None:
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


def _soundfile_frames(name: str, f: Any, block_seconds: float, info: DecodeInfo) -> Iterator[np.ndarray]:
    """Blocks from soundfile; on damage, stop and mark the stream damaged (the caller decides)."""
    import soundfile as sf

    step = max(1, int(block_seconds * f.samplerate))
    read = 0
    try:
        while True:
            with _quiet_if(f.format == "MP3"):
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


def _soundfile_first(head: bytes) -> bool:
    """WAV/AIFF/FLAC/AU/CAF/W64, MP3 and Ogg are opened with soundfile (fast, in-process: an ffmpeg process
    costs about 3x the decode time of a 30-s MP3); other containers go to ffmpeg when it exists.
    ``_needs_ffmpeg`` then sends the MP3/Ogg files soundfile would cut short (chained or re-rated streams)
    to ffmpeg, and damage met while decoding resumes in ffmpeg."""
    return ffmpeg_path() is None or head.startswith(_SOUNDFILE_MAGIC + _MP3_OGG_MAGIC) or _is_mpeg_frame(head)


def _is_mpeg_frame(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def _count_ogg_bos(path: Path, *, stop_at: int) -> int:
    """Beginning-of-stream pages (capture pattern, version 0, BOS flag), read in 1 MB chunks: flat memory."""
    bos, count, tail = b"OggS\x00\x02", 0, b""
    with open(path, "rb") as fh:
        while count < stop_at and (chunk := fh.read(1 << 20)):
            data = tail + chunk
            count += data.count(bos)
            tail = data[-(len(bos) - 1) :]  # a pattern cut by the chunk border is found next time
    return count


def _needs_ffmpeg(f: Any, path: Path | None, declared: float | None) -> bool:
    """Streams that soundfile stops early on without an error: a chained Ogg (a second beginning-of-stream
    page) or an MP3 whose parts differ in sample rate (mutagen's length estimate from the file size is
    longer than what soundfile will decode)."""
    if path is None:
        return False
    if f.format == "OGG":
        return _count_ogg_bos(path, stop_at=2) > 1
    if f.format == "MP3":
        try:
            from mutagen.mp3 import MP3

            mp3 = MP3(path)
            tag_bytes = getattr(mp3.tags, "size", 0) or 0  # an embedded cover image is not audio
            # the first frames' (or the Xing header's average) bit rate over the whole audio payload
            estimate = (path.stat().st_size - tag_bytes) * 8 / max(1, getattr(mp3.info, "bitrate", 0) or 0)
        except Exception:  # mutagen cannot parse it: let the decoders decide
            return False
        return declared is not None and estimate > 1.1 * declared + 0.5
    return True


def _open_first(head: bytes, target: Any) -> tuple[Any, str | None]:
    """soundfile for the sources ``_soundfile_first`` gives it; (None, None) sends the rest to ffmpeg."""
    if not _soundfile_first(head):
        return None, None
    with _quiet_if(not head.startswith(_SOUNDFILE_MAGIC)):  # MP3 without ffmpeg
        return _open_soundfile(target)


def _file_blocks(name: str, path: Path, sr: int, block_seconds: float, info: DecodeInfo, head: bytes) -> Blocks:
    f, why = _open_first(head, str(path))
    yield from _decode_any(name, f, why, path, path.stat().st_size, sr, block_seconds, info)


def _bytes_blocks(name: str, data: bytes, sr: int, block_seconds: float, info: DecodeInfo) -> Blocks:
    _sniff(name, data[:_TEXT_SNIFF])
    f, why = _open_first(data[:16], io.BytesIO(data))
    if ffmpeg_path() is None or (f is not None and f.format in _SOUNDFILE_FIRST):
        yield from _decode_any(name, f, why, None, len(data), sr, block_seconds, info)
        return
    with tempfile.TemporaryDirectory(prefix="musicgenre-") as tmp:  # removed even if the caller stops early
        path = Path(tmp) / "input"
        path.write_bytes(data)
        yield from _decode_any(name, f, why, path, len(data), sr, block_seconds, info)


def _decode_any(name: str, f: Any, why: str | None, path: Path | None, size: int, sr: int,
                block_seconds: float, info: DecodeInfo) -> Blocks:
    """soundfile first for the formats it reads well, ffmpeg for the rest and to resume after damage."""
    have_ffmpeg = ffmpeg_path() is not None and path is not None
    if f is None:
        if not have_ffmpeg or path is None:
            log.info("%s: libsndfile said: %s", name, why)
            raise AudioDecodeError(name, Reason.UNSUPPORTED_CODEC,
                                   "not a format soundfile reads; other containers need ffmpeg, which is not installed")
        yield from _via_ffmpeg(name, path, sr, block_seconds, info)
        return
    with f:
        info.declared_seconds = _check_header(name, f, size)
        if have_ffmpeg and f.format not in _SOUNDFILE_FIRST and _needs_ffmpeg(f, path, info.declared_seconds):
            assert path is not None
            yield from _via_ffmpeg(name, path, sr, block_seconds, info)
            return
        native = f.samplerate
        got = 0

        def counted() -> Iterator[np.ndarray]:
            nonlocal got
            for block in _soundfile_frames(name, f, block_seconds, info):
                got += len(block)
                yield block

        if not have_ffmpeg:
            yield from _limited(name, counted(), native, sr, info)
            if not got:
                raise AudioDecodeError(name, Reason.CORRUPT, "no audio could be decoded")
            return
        # With ffmpeg at hand, a stream soundfile gives up on continues in ffmpeg (which resyncs).
        blocks = counted()
        resume = _resume(name, blocks, path, native, block_seconds, info, lambda: got)
        yield from _limited(name, resume, native, sr, info)
        if not info.seconds:
            raise AudioDecodeError(name, Reason.CORRUPT, "no audio could be decoded")


def _resume(name: str, first: Iterator[np.ndarray], path: Path | None, native: int, block_seconds: float,
            info: DecodeInfo, got: Any) -> Generator[np.ndarray, None, None]:
    """soundfile blocks, then, if soundfile stopped at damage, ffmpeg's blocks after the same point
    (ffmpeg resyncs after damaged frames; closing this generator closes ffmpeg's)."""
    channels = 0
    for block in first:
        channels = block.shape[1]
        yield block
    if not info.damaged or path is None:
        return
    run = _ffmpeg.FFmpegRun()
    skip = got()
    try:
        for block in _ffmpeg.decode(path, shown=name, max_seconds=info.max_seconds, run=run,
                                    block_frames=max(1, int(block_seconds * native))):
            if run.sr != native or (channels and block.shape[1] != channels):
                return  # ffmpeg sees another stream layout: keep what soundfile gave
            if skip >= len(block):
                skip -= len(block)
                continue
            yield block[skip:]
            skip = 0
    except _ffmpeg.FFmpegFailed:
        return


def _via_ffmpeg(name: str, path: Path, sr: int, block_seconds: float, info: DecodeInfo) -> Blocks:
    run = _ffmpeg.FFmpegRun()
    try:
        frames = _ffmpeg.decode(path, shown=name, max_seconds=info.max_seconds, run=run,
                                block_frames=max(1, int(block_seconds * 48000)))
        first = next(frames, None)
    except _ffmpeg.FFmpegFailed as e:
        raise AudioDecodeError(name, Reason[e.kind], e.detail or None) from None
    if first is None:
        raise AudioDecodeError(name, *_ffmpeg_reason(run))
    if not MIN_SAMPLE_RATE <= run.sr <= MAX_SAMPLE_RATE:
        frames.close()
        raise AudioDecodeError(name, Reason.CORRUPT, f"implausible header: sample rate {run.sr} Hz")

    def chained() -> Generator[np.ndarray, None, None]:
        yield first
        yield from frames  # closing chained() closes frames, which kills ffmpeg

    try:
        yield from _limited(name, chained(), run.sr, sr, info)
    except _ffmpeg.FFmpegFailed as e:
        raise AudioDecodeError(name, Reason[e.kind], e.detail or None) from None
    if run.error_lines:
        info.damaged = True


def _ffmpeg_reason(run: _ffmpeg.FFmpegRun) -> tuple[Reason, str | None]:
    failed = _ffmpeg.classify_stderr(list(run.stderr))
    return Reason[failed.kind], failed.detail or None
