"""Torch front ends that live inside trainable models: waveform in, spectrogram out.

``TorchLogMel`` is MusiCNN's log-mel (``features.LogMel``, the numpy one the pipeline runs) in torch, framed by
``frame_tensor`` with the rule of ``features.frame``; ``LogMelSpectrogram`` (dB) and ``CQT`` feed the CNN/CRNN
architectures.

Filterbanks are non-persistent buffers: they are rebuilt from the config, never saved in weights
(so a checkpoint is not tied to a DSP implementation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..features import FeatureConfig, mel_filterbank


class LogMelSpectrogram(nn.Module):
    """(batch, samples) -> (batch, n_mels, frames) log-mel in dB (top 80 dB), centred zero-padded frames."""

    window: torch.Tensor
    mel: torch.Tensor

    def __init__(self, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        mel = torch.from_numpy(mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels))
        self.register_buffer("mel", mel, persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(y.float(), self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (batch, 1 + n_fft // 2, frames)
        db = 10 * torch.log10(torch.clamp(self.mel @ power, min=1e-10))
        return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)


def cqt_kernels(*, sr: int, fmin: float, n_bins: int, bins_per_octave: int) -> tuple[np.ndarray, int]:
    """Complex constant-Q kernels (Brown 1991; as nnAudio's CQT1992v2): (n_bins, max_len), max_len."""
    q = 1.0 / (2 ** (1 / bins_per_octave) - 1)
    freqs = fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)
    if freqs[-1] > sr / 2:
        raise ValueError(f"highest CQT bin {freqs[-1]:.0f} Hz is above Nyquist ({sr / 2:.0f} Hz)")
    lengths = np.ceil(q * sr / freqs).astype(int)
    max_len = int(lengths[0]) | 1  # odd, so every kernel can be centred
    kernels = np.zeros((n_bins, max_len), np.complex64)
    for k, (f, n) in enumerate(zip(freqs, lengths)):
        start = (max_len - n) // 2
        t = np.arange(n) - n // 2
        kernels[k, start : start + n] = np.hanning(n) / n * np.exp(2j * np.pi * f * t / sr)
    return kernels, max_len


class CQT(nn.Module):
    """(batch, samples) -> (batch, n_bins, frames) constant-Q magnitude in dB (top 80 dB).

    Time-domain convolution with the complex kernels, stride ``hop_length``; frames are centred.
    """

    def __init__(self, sr: int = 22050, hop_length: int = 512, fmin: float = 32.70, n_bins: int = 84,
                 bins_per_octave: int = 12) -> None:
        super().__init__()
        kernels, self.kernel_len = cqt_kernels(sr=sr, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave)
        k = torch.from_numpy(np.concatenate([kernels.real, kernels.imag])[:, None, :].astype(np.float32))
        self.kernels: torch.Tensor
        self.register_buffer("kernels", k, persistent=False)  # (2 * n_bins, 1, max_len)
        self.hop_length, self.n_bins = hop_length, n_bins

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        pad = self.kernel_len // 2
        x = nn.functional.pad(y.float()[:, None], (pad, pad))
        out = nn.functional.conv1d(x, self.kernels, stride=self.hop_length)  # (batch, 2 * n_bins, frames)
        mag = torch.sqrt(out[:, : self.n_bins].square() + out[:, self.n_bins :].square() + 1e-12)
        db = 20 * torch.log10(torch.clamp(mag, min=1e-5))
        return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)


def frame_tensor(y: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """``features.frame`` for a tensor (..., samples) -> (..., n_frames, n_fft), also a view."""
    return y.unfold(-1, n_fft, hop_length)


class TorchLogMel:
    """``features.LogMel`` in torch, for models that compute their spectrogram inside the network."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.window = torch.hann_window(cfg.n_fft, periodic=True, dtype=torch.float32)
        self.mel = torch.from_numpy(mel_filterbank(sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels)).T.contiguous()

    def from_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., n_frames, n_fft) float32 tensor of raw samples -> (..., n_frames, n_mels) log-mel."""
        if self.window.device != frames.device:  # follow the input onto the GPU
            self.window, self.mel = self.window.to(frames.device), self.mel.to(frames.device)
        spec = torch.fft.rfft(frames * self.window, dim=-1)
        power = spec.real.square() + spec.imag.square()  # (..., n_frames, 1 + n_fft // 2)
        return torch.log10(10000.0 * (power @ self.mel) + 1.0)
