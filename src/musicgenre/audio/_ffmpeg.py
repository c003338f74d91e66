"""Running ffmpeg on untrusted files: bounded, killable, local files only.

- Only the ``file`` protocol and a fixed list of audio/video container demuxers are allowed, so a
  playlist (HLS, concat, ...) can never make ffmpeg read another local file or a URL.
- The input is an absolute ``file:`` URL (a file named ``pipe:0.m4a`` is a file), stdin is closed.
- stderr is drained by a thread into a bounded buffer (a flood of decoder errors cannot fill the pipe
  and hang us), and time spent waiting for output is limited: ``WAIT_BASE_S`` plus ``WAIT_PER_AUDIO_S``
  per second of audio delivered, never more than ``WAIT_CAP_S``. The child is killed on timeout, on
  error and when the caller closes the generator.
- Output is float32 WAV at the native rate with every channel, so numpy does the same downmix and
  resampling as on the soundfile path.
- ``transcode`` runs it on bytes in memory (pipes only, no file protocol): the codec round trips of the
  degradation suite (``train.degrade``), with a time limit.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Demuxers a music file can legitimately need. Playlist and indirection demuxers (hls, concat, dash,
# image sequences, tty, lavfi ...) are absent on purpose.
DEMUXERS = (
    "mov,matroska,ogg,mp3,aac,flac,wav,w64,aiff,au,asf,caf,wv,ape,amr,ac3,eac3,dts,dtshd,tta,mpc,mpc8,tak,"
    "dsf,shn,voc,avi,flv,mpeg,mpegts,rm,xwma,truehd,mlp,loas,sox,rso,smjpeg,iff,xa,vqf,amrnb,amrwb"
)
PLAYLIST_DEMUXERS = frozenset({"hls", "concat", "dash", "ffmetadata", "tedcaptions", "webm_dash_manifest"})
WAIT_BASE_S = 20.0
WAIT_PER_AUDIO_S = 0.5
WAIT_CAP_S = 300.0
STDERR_LINES = 200


def ffmpeg_exe() -> str | None:
    """The ffmpeg executable on PATH, or None (then soundfile decodes what it can)."""
    return shutil.which("ffmpeg")


class FFmpegFailed(Exception):
    """ffmpeg gave no usable audio; ``kind`` is one of the audio.Reason names, ``detail`` short text."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


@dataclass
class FFmpegRun:
    """What one run reported: the native rate/channels and the decoder's complaints."""

    sr: int = 0
    channels: int = 0
    error_lines: int = 0
    stderr: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_LINES))


def _drain(stream: object, run: FFmpegRun, hide: str, shown: str) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw[:500].decode("utf-8", "replace").rstrip()
        if hide:
            line = line.replace(hide, shown)
        run.stderr.append(line)
        run.error_lines += 1


class _Reader:
    """Reads the child's stdout, charging only the time spent waiting to a budget."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)
        self.waited = 0.0
        self.audio_seconds = 0.0

    def budget(self) -> float:
        return min(WAIT_CAP_S, WAIT_BASE_S + WAIT_PER_AUDIO_S * self.audio_seconds)

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at end of stream)."""
        parts: list[bytes] = []
        got = 0
        while got < n:
            left = self.budget() - self.waited
            if left <= 0:
                raise FFmpegFailed("CORRUPT", f"the decoder made no progress for {self.budget():.0f} s")
            t0 = time.monotonic()
            ready = self.sel.select(timeout=left)
            self.waited += time.monotonic() - t0
            if not ready:
                continue
            chunk = os.read(self.fd, min(n - got, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self.sel.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, 9)
        else:
            proc.kill()
    except ProcessLookupError:
        pass


def _wav_header(reader: _Reader) -> tuple[int, int]:
    """Parse ffmpeg's streamed WAV header up to the data chunk: (sample rate, channels)."""
    head = reader.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise FFmpegFailed("NOT_AUDIO", "no audio stream")
    sr = channels = 0
    for _ in range(16):  # fmt, optional LIST, data
        chunk = reader.read(8)
        if len(chunk) < 8:
            break
        tag, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        if tag == b"data":
            if not sr:
                break
            return sr, channels
        if size > 1 << 16:
            break
        body = reader.read(size + (size & 1))
        if tag == b"fmt " and len(body) >= 8:
            channels = int.from_bytes(body[2:4], "little")
            sr = int.from_bytes(body[4:8], "little")
    raise FFmpegFailed("NOT_AUDIO", "no audio stream")


def classify_stderr(lines: list[str]) -> FFmpegFailed:
    """ffmpeg's own words -> one of our reasons with a short detail."""
    text = "\n".join(lines)
    m = re.search(r"\[(\w+) @ [^\]]*\] Format not on whitelist", text)
    if m:
        fmt = m.group(1)
        if fmt in PLAYLIST_DEMUXERS:
            return FFmpegFailed("NOT_AUDIO", f"a {fmt} playlist; playlists are refused")
        return FFmpegFailed("NOT_AUDIO", f"{fmt} input is not accepted")
    low = text.lower()
    if "permission denied" in low:
        return FFmpegFailed("PERMISSION_DENIED", "")
    if "matches no streams" in low or "does not contain any stream" in low:
        return FFmpegFailed("NOT_AUDIO", "no audio stream")
    if ("decoder" in low and "not found" in low) or "unsupported codec" in low or "unknown codec" in low \
            or "could not find codec parameters" in low:
        return FFmpegFailed("UNSUPPORTED_CODEC", "")
    if "invalid data found when processing input" in low and "error while decoding" not in low:
        return FFmpegFailed("NOT_AUDIO", "")
    return FFmpegFailed("CORRUPT", "")


def decode(path: Path, *, shown: str, max_seconds: float, block_frames: int, run: FFmpegRun,
           ) -> Generator[np.ndarray, None, None]:
    """Yield float32 (n, channels) blocks of ``block_frames`` at the native rate (set in ``run``).

    Stops after ``max_seconds`` plus one block (so the caller can tell the file was longer).
    Raises FFmpegFailed when nothing could be decoded or the decoder hangs; a stream that fails
    after some audio ends early and leaves its complaints in ``run``.
    """
    exe = ffmpeg_exe()
    if exe is None:
        raise FFmpegFailed("UNSUPPORTED_CODEC", "ffmpeg is needed and not installed")
    url = "file:" + os.fspath(path.absolute())
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file",
           "-format_whitelist", DEMUXERS, "-i", url, "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
           "-fflags", "+bitexact", "-t", f"{max_seconds + 1:.3f}", "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"]
    # its own process group, so that killing it also kills anything it started
    # stdin: a pipe closed at once (EOF), which needs no /dev/null
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=hasattr(os, "killpg"))
    except OSError as e:
        raise FFmpegFailed("UNSUPPORTED_CODEC", f"ffmpeg could not start ({e.strerror or e})") from None
    assert proc.stdin is not None
    proc.stdin.close()
    drain = threading.Thread(target=_drain, args=(proc.stderr, run, url[5:], shown), daemon=True)
    drain.start()
    reader = _Reader(proc)
    try:
        try:
            run.sr, run.channels = _wav_header(reader)
        except FFmpegFailed as e:
            if e.kind == "CORRUPT":  # the wait budget ran out
                raise
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill(proc)
            drain.join(timeout=5)
            raise classify_stderr(list(run.stderr)) from None
        if not (0 < run.channels <= 255) or run.sr <= 0:
            raise FFmpegFailed("CORRUPT", f"implausible header ({run.sr} Hz, {run.channels} channels)")
        frame_bytes = 4 * run.channels
        frames_out = 0
        limit = int(max_seconds * run.sr) + block_frames
        while frames_out < limit:
            data = reader.read(block_frames * frame_bytes)
            usable = len(data) // frame_bytes * frame_bytes
            if not usable:
                break
            block = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, run.channels)
            frames_out += len(block)
            reader.audio_seconds = frames_out / run.sr
            yield block
    finally:
        _kill(proc)
        proc.wait()
        reader.close()
        drain.join(timeout=5)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
        if run.stderr:
            log.info("%s: ffmpeg said: %s", shown, " | ".join(list(run.stderr)[-5:]))


def transcode(data: bytes, *, input_args: list[str], output_args: list[str], timeout: float) -> bytes:
    """``data`` through ffmpeg, pipe to pipe: ``input_args`` describe the input (e.g. ``-f f32le -ar 16000``),
    ``output_args`` the output (codec, format); only the pipe protocol is allowed. FFmpegFailed
    ("UNSUPPORTED_CODEC") when ffmpeg is missing, cannot start, runs past ``timeout`` seconds (killed) or gives
    no output; its ``detail`` says which, with ffmpeg's last line of complaint."""
    exe = ffmpeg_exe()
    if exe is None:
        raise FFmpegFailed("UNSUPPORTED_CODEC", "is not installed")
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "pipe", *input_args,
           "-i", "pipe:0", *output_args, "pipe:1"]
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FFmpegFailed("UNSUPPORTED_CODEC", f"took over {timeout:g} s") from None
    except OSError as e:
        raise FFmpegFailed("UNSUPPORTED_CODEC", f"could not start: {e}") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise FFmpegFailed("UNSUPPORTED_CODEC", f"failed (exit {done.returncode}): {detail[0]}")
    return done.stdout
