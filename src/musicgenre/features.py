"""Spectral front-ends computed in torch (no librosa at run time: its import costs seconds).

``log_mel`` reproduces ``librosa.feature.melspectrogram`` (Slaney mel scale and normalisation,
periodic Hann window, zero-padded centred frames) followed by MusiCNN's ``log10(10000 * mel + 1)``,
computed in float32 (upstream's float16 overflows to inf on loud audio).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes model input: log-mel patches of ``patch_frames`` frames."""

    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    patch_frames: int = 187  # MusiCNN's 3-s input
    # "logmel_frames": the pipeline computes MusiCNN log-mel patches (the MusiCNN models);
    # "waveform": the pipeline cuts raw windows of window_seconds and the model has its own front-end.
    input: str = "logmel_frames"
    window_seconds: float = 0.0

    @property
    def patch_seconds(self) -> float:
        if self.input == "waveform":
            return self.window_seconds
        return self.patch_frames * self.hop_length / self.sr

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sr)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        names = {f.name for f in dataclasses.fields(cls)}
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


class LogMel:
    """Frames -> MusiCNN log-mel. Callable on a framed signal so streaming and whole-file agree."""

    def __init__(self, cfg: FeatureConfig) -> None:
        import torch

        self.cfg = cfg
        self.window = torch.hann_window(cfg.n_fft, periodic=True, dtype=torch.float32)
        self.mel = torch.from_numpy(mel_filterbank(sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels)).T.contiguous()

    def from_frames(self, frames: Any) -> Any:
        """(n_frames, n_fft) float32 tensor of raw samples -> (n_frames, n_mels) log-mel."""
        import torch

        if self.window.device != frames.device:  # follow the model onto the GPU
            self.window, self.mel = self.window.to(frames.device), self.mel.to(frames.device)
        spec = torch.fft.rfft(frames * self.window, dim=-1)
        power = spec.real.square() + spec.imag.square()  # (n_frames, 1 + n_fft // 2)
        return torch.log10(10000.0 * (power @ self.mel) + 1.0)


def log_mel(y: np.ndarray, *, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Whole-signal log-mel, shape (1 + len(y) // hop_length, n_mels), centred zero-padded frames."""
    import torch

    pad = cfg.n_fft // 2
    padded = torch.from_numpy(np.pad(np.asarray(y, dtype=np.float32), (pad, pad)))
    frames = padded.unfold(0, cfg.n_fft, cfg.hop_length)
    return LogMel(cfg).from_frames(frames).numpy()
