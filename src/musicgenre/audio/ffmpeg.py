"""Decoding with ffmpeg (``musicgenre.audio._ffmpeg`` runs it): whole sources soundfile does not read, and the rest
of a stream after damage soundfile stops at (ffmpeg resyncs); ``transcode``: bytes through ffmpeg in memory
(the degradation suite's codec round trips), by the same runner."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioDecodeError, Reason
from . import _ffmpeg
from ._ffmpeg import FFmpegFailed as FFmpegFailed  # re-exported: the public runner of bytes
from ._ffmpeg import transcode as transcode
from .stream import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Blocks, DecodeInfo, limited


def resume(name: str, first: Iterator[np.ndarray], path: Path | None, native: int, block_seconds: float,
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


def via_ffmpeg(name: str, path: Path, sr: int, block_seconds: float, info: DecodeInfo) -> Blocks:
    """A whole source decoded by ffmpeg (after a header sanity check), conditioned like every other."""
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
        yield from limited(name, chained(), run.sr, sr, info)
    except _ffmpeg.FFmpegFailed as e:
        raise AudioDecodeError(name, Reason[e.kind], e.detail or None) from None
    if run.error_lines:
        info.damaged = True


def _ffmpeg_reason(run: _ffmpeg.FFmpegRun) -> tuple[Reason, str | None]:
    failed = _ffmpeg.classify_stderr(list(run.stderr))
    return Reason[failed.kind], failed.detail or None
