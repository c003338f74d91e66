"""The decoded stream and the decoder's report: limits, ``DecodeInfo``, ``Decoded``, and the block conditioner
every decoder feeds (``limited``: native-rate blocks -> one downmix -> one resampler -> at most ``max_seconds``)."""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import numpy as np

from .signal import MusicEvidence, Resampler, to_mono

# Decoded per step: short enough that a 30-s clip's decode overlaps its inference (musicgenre.prefetch; the
# step times are benchmarks/profile_path.py's), long enough that per-block overhead stays negligible.
BLOCK_SECONDS = 6.0
DEFAULT_MAX_MINUTES = 60.0  # analysed per input unless the caller asks otherwise; longer input is truncated
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
MAX_DECLARED_HOURS = 100.0  # a header claiming more is a header bomb, not a recording

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

    def stopped_at(self, seconds: float, margin: float) -> None:
        """The reader stopped the stream at ``seconds`` (a window limit reached before ``max_seconds``): the
        input counts as truncated unless its header says it ends within ``margin`` seconds of that point."""
        if not self.truncated:
            self.truncated = self.declared_seconds is None or self.declared_seconds > seconds + margin

    @property
    def warnings(self) -> list[str]:
        """What a user should know about the input: truncated, damaged (one line each)."""
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


@dataclass(frozen=True)
class Decoded:
    """One source opened for streaming: ``blocks`` yields float32 mono arrays at the target rate."""

    name: str
    blocks: Blocks
    info: DecodeInfo = field(default_factory=DecodeInfo)


def limited(name: str, frames: Iterator[np.ndarray], sr_in: int, sr: int, info: DecodeInfo) -> Blocks:
    """Native-rate (n,) or (n, channels) blocks -> mono at ``sr``, stopping at ``info.max_seconds``."""
    resample = Resampler(sr_in, sr)
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


