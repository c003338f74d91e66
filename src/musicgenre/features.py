"""The MusiCNN log-mel front end in numpy (no torch, no librosa at run time: its import costs seconds).

``log_mel`` reproduces ``librosa.feature.melspectrogram`` (Slaney mel scale and normalisation,
periodic Hann window, zero-padded centred frames) followed by MusiCNN's ``log10(10000 * mel + 1)``,
computed in float32 (upstream's float16 overflows to inf on loud audio).

Framing is defined once, in ``frame``: the whole-signal ``log_mel`` and the streaming window cutter
(``windows._LogMelStream``) cut frames with it; ``models.frontends.frame_tensor`` is the same rule on a
tensor, and ``models.frontends.TorchLogMel`` the same front end in torch (gradients, GPU).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

InputKind = Literal["logmel_frames", "waveform"]
INPUT_KINDS: tuple[InputKind, ...] = ("logmel_frames", "waveform")
# config keys of older model directories, still read: old name -> current name
_OLD_KEYS = {"patch_frames": "window_frames"}


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes model input: analysis windows of ``window_seconds``.

    ``input`` "logmel_frames": the pipeline computes MusiCNN log-mel windows of ``window_frames`` frames (the
    MusiCNN models), and ``window_seconds`` follows from them; "waveform": the pipeline cuts raw windows of
    ``window_seconds`` and the model has its own front end.
    """

    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    window_frames: int = 187  # log-mel input: frames per window (MusiCNN's 3-s input)
    input: InputKind = "logmel_frames"
    window_seconds: float = 0.0  # the window's length; derived from window_frames for log-mel input
    # Level invariance (log-mel input): each window's mean mel power is scaled to this level in dB before the log
    # compression, whose "+ 1" otherwise makes the features depend on the playback level. None: as decoded (the
    # original MusiCNN front end; older model directories).
    level_db: float | None = None
    # What the level is measured over: each "window" alone, or the "track" so far (the running mean of its
    # windows' levels, which keeps the loudness differences between a track's windows). Both are exact under a
    # constant gain: a file played 25 dB quieter gives the same features.
    level_span: Literal["window", "track"] = "window"

    def __post_init__(self) -> None:
        if self.input not in INPUT_KINDS:
            raise ValueError(f"unknown input {self.input!r}: use {' or '.join(INPUT_KINDS)}")
        if self.input == "logmel_frames":
            object.__setattr__(self, "window_seconds", self.window_frames * self.hop_length / self.sr)
        elif not self.window_seconds > 0:
            raise ValueError("a waveform input needs window_seconds > 0")
        if self.level_span not in ("window", "track"):
            raise ValueError(f"unknown level_span {self.level_span!r}: use window or track")

    @property
    def front_end(self) -> str:
        """What this front end changes in a backbone's features, as stored features record it: "" for the
        backbone's own (as decoded), "level-5dB-window" for a levelled one (``feature_identity``)."""
        return "" if self.level_db is None else f"level{self.level_db:g}dB-{self.level_span}"

    @property
    def window_samples(self) -> int:
        """Samples in one waveform window at ``sr``."""
        return round(self.window_seconds * self.sr)

    def to_dict(self) -> dict[str, Any]:
        """The ``features`` entry of a model card (every field; ``level_db`` only when set, so the cards written
        before it existed read and write back unchanged)."""
        d = dataclasses.asdict(self)
        if d["level_db"] is None:
            del d["level_db"], d["level_span"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """The config of a saved model; the keys of older directories (``patch_frames``) are read too."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {_OLD_KEYS.get(k, k): v for k, v in d.items()}
        return cls(**{k: v for k, v in d.items() if k in names})


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    mels = f / f_sp
    log_part = f >= min_log_hz
    mels[log_part] = min_log_hz / f_sp + np.log(f[log_part] / min_log_hz) / logstep
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_mel, logstep = 1000.0 / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * m
    log_part = m >= min_log_mel
    freqs[log_part] = 1000.0 * np.exp(logstep * (m[log_part] - min_log_mel))
    return freqs


@functools.lru_cache(maxsize=8)
def mel_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular filters, shape (n_mels, 1 + n_fft // 2), as librosa.filters.mel."""
    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def frame(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Every complete frame of ``y``: a read-only (n_frames, n_fft) view, frame i = y[i*hop : i*hop + n_fft].

    Centring is the caller's padding: ``log_mel`` pads ``n_fft // 2`` zeros at both ends of the whole
    signal, ``windows._LogMelStream`` at the start and at the end of the stream only, so both cut the same frames.
    """
    if len(y) < n_fft:
        return np.zeros((0, n_fft), dtype=y.dtype)
    return np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]


def centre_pad(y: np.ndarray, *, n_fft: int) -> np.ndarray:
    """Zero-pad ``n_fft // 2`` samples at both ends, so frame i is centred on sample i * hop_length."""
    return np.pad(np.asarray(y, dtype=np.float32), (n_fft // 2, n_fft // 2))


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window("hann", n, fftbins=True), as librosa and torch use)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


class LogMel:
    """Frames -> MusiCNN log-mel in numpy. Callable on framed signal so streaming and whole-file agree."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.window = _hann(cfg.n_fft)
        self.mel = np.ascontiguousarray(mel_filterbank(sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels).T)
        # The filterbank is sparse (each band spans a few bins): project with a gather and a per-band sum, not a
        # matmul. A BLAS matmul wakes OpenBLAS's threads, which then spin: they doubled the CPU time of every
        # file on 2 cores (benchmarks/profile_path.py: predict_many CPU per file 189 -> 97.5 ms).
        bins, bands = np.nonzero(self.mel)  # row-major: sorted by bin; reorder by band
        order = np.argsort(bands, kind="stable")
        self.bins, self.weights = bins[order], self.mel[bins[order], bands[order]]
        self.bands = np.unique(bands)  # bands with at least one bin (a band without any stays 0)
        self.starts = np.searchsorted(bands[order], self.bands)

    def project(self, power: np.ndarray) -> np.ndarray:
        """(n_frames, 1 + n_fft // 2) float32 power -> (n_frames, n_mels) mel energies (``power @ self.mel``)."""
        if not len(power) or not len(self.bins):
            return np.zeros((len(power), self.mel.shape[1]), np.float32)
        sums = np.add.reduceat(np.take(power, self.bins, axis=1) * self.weights, self.starts, axis=1)
        if len(self.bands) == self.mel.shape[1]:
            return sums
        mel = np.zeros((len(power), self.mel.shape[1]), np.float32)
        mel[:, self.bands] = sums
        return mel

    def mel_power(self, frames: np.ndarray) -> np.ndarray:
        """(n_frames, n_fft) float32 raw samples -> (n_frames, n_mels) float32 mel energies (linear)."""
        spec = np.fft.rfft(frames * self.window, axis=-1)  # complex64: numpy >= 2 keeps float32
        power = spec.real * spec.real + spec.imag * spec.imag  # (n_frames, 1 + n_fft // 2)
        return self.project(power.astype(np.float32, copy=False))

    def from_frames(self, frames: np.ndarray) -> np.ndarray:
        """(n_frames, n_fft) float32 raw samples -> (n_frames, n_mels) float32 log-mel."""
        return compress(self.mel_power(frames))


def compress(mel: np.ndarray) -> np.ndarray:
    """MusiCNN's log compression ``log10(10000 * mel + 1)``, in place on a float32 array of mel energies."""
    mel *= 10000.0
    mel += 1.0
    return np.log10(mel, out=mel)


def feature_identity(backbone: tuple[str, str], cfg: FeatureConfig | None) -> tuple[str, str]:
    """(name, version) of the features a backbone computes behind the front end ``cfg``: the backbone's own
    identity, its version suffixed with ``cfg.front_end`` when the front end changes what it sees (levelled
    windows). Stored features of two identities never mix (library scan, learn, similar)."""
    if cfg is None or not cfg.front_end:
        return backbone
    return backbone[0], f"{backbone[1]}+{cfg.front_end}"


def level_windows(mel: np.ndarray, level_db: float, reference: np.ndarray | None = None) -> np.ndarray:
    """(k, T, F) mel energies, each window scaled in place so that its ``reference`` level (default: its own mean
    energy) becomes ``level_db`` dB: the same audio at any playback level gives the same features. A window whose
    reference is 0 (digital silence) stays 0 (silent windows are left out by their peak level anyway)."""
    ref = mel.mean(axis=(1, 2), dtype=np.float64) if reference is None else np.asarray(reference, np.float64)
    gain = np.where(ref > 0, 10.0 ** (level_db / 10.0) / np.maximum(ref, 1e-30), 0.0).astype(np.float32)
    mel *= gain[:, None, None]
    return mel


def log_mel(y: np.ndarray, *, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Whole-signal log-mel, shape (1 + len(y) // hop_length, n_mels), centred zero-padded frames."""
    frames = frame(centre_pad(y, n_fft=cfg.n_fft), n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    return LogMel(cfg).from_frames(frames)
