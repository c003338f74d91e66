"""Waveform augmentation for training: random time shift, gain and additive noise."""

from __future__ import annotations

import numpy as np


def augment_waveform(y: np.ndarray, rng: np.random.Generator, *, max_shift: float = 0.25,
                     gain_db: float = 6.0, noise_snr_db: tuple[float, float] = (20.0, 40.0)) -> np.ndarray:
    """A circular shift of up to ``max_shift`` of the length, a gain of +-``gain_db`` and white noise
    at a random SNR; the label of a music segment survives all three."""
    y = np.roll(y, int(rng.integers(-int(max_shift * len(y)), int(max_shift * len(y)) + 1)))
    y = y * np.float32(10 ** (rng.uniform(-gain_db, gain_db) / 20))
    power = float(np.mean(y**2)) + 1e-12
    snr = rng.uniform(*noise_snr_db)
    noise = rng.standard_normal(len(y)).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (snr / 10)))
    return (y + noise).astype(np.float32)
