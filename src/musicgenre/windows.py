"""Audio stream -> analysis windows: the one window cutter, shared by prediction, training and explain.

A window is either a MusiCNN log-mel window (``FeatureConfig.input == "logmel_frames"``: (window_frames, n_mels))
or a raw waveform window (``"waveform"``: (window_samples,)) for models with their own front end. Every window
comes with its peak level, so silent windows can be left out by the same rule everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .audio import AudioSource, stream_audio
from .errors import AudioDecodeError, Reason
from .features import FeatureConfig, LogMel, compress, frame, level_windows

MIN_SECONDS = 1.0  # shorter input is rejected; input shorter than one window is repeat-padded to one


class _LogMelStream:
    """Cuts a stream of audio blocks into centred STFT frames, then into fixed windows.

    Frames match a whole-signal centred STFT exactly (zero padding only at the very start and end),
    so block boundaries change nothing; memory holds one block plus one window. Frames wait as mel energies
    and are compressed when their window is complete, after the window's level normalisation (``level_db``).
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.logmel = LogMel(cfg)
        self.buf = np.zeros(cfg.n_fft // 2, np.float32)  # left zero pad of the centred STFT
        self.pending: list[np.ndarray] = []  # mel energy frames (linear) not yet in a full window
        self.pending_peaks: list[np.ndarray] = []
        self.n_samples = 0
        self.n_windows = 0
        self.level_sum = 0.0  # the windows' mean energies so far (level_span "track")

    def _reference(self, mel: np.ndarray) -> np.ndarray | None:
        """The level each new window is normalised against: its own (``level_span`` "window", None here), or the
        running mean energy of the track's windows so far, this one included ("track")."""
        if self.cfg.level_span == "window":
            return None
        means = mel.mean(axis=(1, 2), dtype=np.float64)
        sums = self.level_sum + np.cumsum(means)
        self.level_sum = float(sums[-1]) if len(sums) else self.level_sum
        counts = self.n_windows - len(means) + 1 + np.arange(len(means))
        return sums / counts

    def _frames(self, final: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cfg = self.cfg
        if final:
            self.buf = np.concatenate([self.buf, np.zeros(cfg.n_fft // 2, np.float32)])
        frames = frame(self.buf, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
        if len(frames) == 0:
            return
        peaks = np.abs(frames[:, cfg.n_fft // 2 - cfg.hop_length // 2 : cfg.n_fft // 2 + cfg.hop_length // 2]).max(1)
        yield self.logmel.mel_power(frames), peaks
        self.buf = self.buf[len(frames) * cfg.hop_length :]

    def push(self, block: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Add samples; return the complete windows so far: mels (k, T, F) and peaks (k,)."""
        self.n_samples += len(block)
        self.buf = np.concatenate([self.buf, block])
        for mel, peaks in self._frames(final):
            self.pending.append(mel)
            self.pending_peaks.append(peaks)
        frames = np.concatenate(self.pending) if self.pending else np.zeros((0, self.cfg.n_mels), np.float32)
        peaks = np.concatenate(self.pending_peaks) if self.pending_peaks else np.zeros(0, np.float32)
        t = self.cfg.window_frames
        k = len(frames) // t
        if final and k == 0 and self.n_windows == 0 and len(frames):
            # short input (MIN_SECONDS..one window): repeat-pad to one window, as MusiCNN was trained
            reps = -(-t // len(frames))
            frames, peaks, k = np.tile(frames, (reps, 1))[:t], np.tile(peaks, reps)[:t], 1
        self.pending, self.pending_peaks = [frames[k * t :]], [peaks[k * t :]]
        self.n_windows += k
        mel = frames[: k * t].reshape(k, t, self.cfg.n_mels).copy()  # the pending rest stays linear
        if self.cfg.level_db is not None:
            level_windows(mel, self.cfg.level_db, self._reference(mel))
        return compress(mel), peaks[: k * t].reshape(k, t).max(axis=1, initial=0.0)


class _WaveStream:
    """Cuts a stream of audio blocks into raw windows of ``window_samples`` (waveform models)."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.n = cfg.window_samples
        self.buf = np.zeros(0, np.float32)
        self.n_samples = 0
        self.n_windows = 0

    def push(self, block: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        self.n_samples += len(block)
        self.buf = np.concatenate([self.buf, block])
        k = len(self.buf) // self.n
        if final and k == 0 and self.n_windows == 0 and len(self.buf):
            self.buf = np.tile(self.buf, -(-self.n // len(self.buf)))[: self.n]  # repeat-pad short input
            k = 1
        windows = self.buf[: k * self.n].reshape(k, self.n)
        self.buf = self.buf[k * self.n :]
        self.n_windows += k
        return windows, np.abs(windows).max(axis=1, initial=0.0)


class Windows:
    """Iterate a source as (model inputs (k, ...), peaks (k,)) chunks of whole analysis windows:
    MusiCNN log-mel windows (k, T, F), or raw waveform windows (k, samples) for waveform models.

    A trailing part-window is dropped unless the input has no full window at all (then it is
    repeat-padded). After iteration ``seconds`` holds the decoded duration. Input shorter than
    ``MIN_SECONDS`` raises ``AudioDecodeError`` at the end of iteration.
    """

    def __init__(self, src: AudioSource, cfg: FeatureConfig, max_seconds: float | None = None) -> None:
        # raises now for missing/empty files; None: at most audio.DEFAULT_MAX_MINUTES
        self.decoded = stream_audio(src, sr=cfg.sr, max_seconds=max_seconds)
        self.cfg = cfg
        self.seconds = 0.0
        self.max_windows = None if max_seconds is None else max(1, round(max_seconds / cfg.window_seconds))
        self.truncated = False  # True when max_seconds stopped decoding early

    @property
    def name(self) -> str:
        """The source's printable name (as every message shows it)."""
        return self.decoded.name

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stream = _WaveStream(self.cfg) if self.cfg.input == "waveform" else _LogMelStream(self.cfg)
        for block in self.decoded.blocks:
            mels, peaks = stream.push(block)
            if self.max_windows is not None and stream.n_windows >= self.max_windows:
                keep = len(mels) - (stream.n_windows - self.max_windows)
                self.truncated, self.seconds = True, self.max_windows * self.cfg.window_seconds
                self.decoded.blocks.close()  # stops ffmpeg early
                self.decoded.info.stopped_at(self.seconds, margin=self.cfg.window_seconds)  # the decoder's report
                if keep:
                    yield mels[:keep], peaks[:keep]
                return
            if len(mels):
                yield mels, peaks
        self.seconds = stream.n_samples / self.cfg.sr
        if self.seconds < MIN_SECONDS:
            raise AudioDecodeError(self.name, Reason.TOO_SHORT,
                                   f"{self.seconds:.2f} s of audio; at least {MIN_SECONDS:g} s is needed")
        mels, peaks = stream.push(np.zeros(0, np.float32), final=True)
        if len(mels):
            yield mels, peaks

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window at once (a 1-hour track is about 86 MB of log-mel windows, far less than its audio)."""
        chunks = list(self)
        return np.concatenate([m for m, _ in chunks]), np.concatenate([p for _, p in chunks])
