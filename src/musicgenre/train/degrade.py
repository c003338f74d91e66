"""The degradation suite: how the same song reaches us when it was not a clean file.

Each condition maps (mono float32 samples, rate) to degraded samples at the same rate, seeded so
the same clip always gets the same degradation. Used twice: to measure label stability
(``benchmarks/accuracy.py``) and as training augmentation (``recipes/*.toml``, ``conditions``).

- ``mp3_64k``: encode to MP3 at 64 kbps constant bit rate and decode again (libsndfile's LAME
  encoder through soundfile; no ffmpeg needed).
- ``phone``: a phone playing the song into a microphone: a small room (synthetic impulse response,
  RT60 about 0.3 s), band-limited to 300-3400 Hz, then noise at 20 dB SNR.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import numpy as np

CONDITIONS = ("clean", "mp3_64k", "phone")
MP3_BITRATE_KBPS = 64


def seed_for(name: str, condition: str) -> int:
    """A stable per-(clip, condition) seed (Python's hash() is salted per process)."""
    return zlib.crc32(f"{name}|{condition}".encode())


def mp3_roundtrip(y: np.ndarray, sr: int, *, kbps: int = MP3_BITRATE_KBPS) -> np.ndarray:
    """Encode ``y`` as constant-bit-rate MP3 and decode it again (same length, same rate)."""
    import soundfile as sf

    level = _mp3_level(kbps, sr)
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1, 1), sr, format="MP3", compression_level=level, bitrate_mode="CONSTANT")
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    out = out if out.ndim == 1 else out.mean(axis=1)
    if len(out) < len(y):  # the decoder may drop the last partial frame
        out = np.pad(out, (0, len(y) - len(out)))
    return out[: len(y)].astype(np.float32)


def _mp3_level(kbps: int, sr: int) -> float:
    """soundfile's compression level (0 = best) for a target bit rate: libsndfile maps the level
    linearly onto the bit rates the MPEG version allows (MPEG-1 32-320 kbps at 32-48 kHz,
    MPEG-2 8-160 kbps below)."""
    lo, hi = (32, 320) if sr >= 32000 else (8, 160)
    return float(np.clip((hi - kbps) / (hi - lo), 0.0, 1.0))


def room_impulse(sr: int, rng: np.random.Generator, *, rt60: float = 0.3) -> np.ndarray:
    """A small room: direct sound then exponentially decaying noise (60 dB down after ``rt60``)."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60) * 0.3
    tail[: int(0.002 * sr)] = 0.0  # the first reflections arrive after ~2 ms
    tail[0] = 1.0
    return (tail / np.sqrt(np.sum(tail**2))).astype(np.float32)


def band_limit(y: np.ndarray, sr: int, *, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """Zero-phase band-pass in the frequency domain with 100-Hz cosine skirts (no ringing cliff)."""
    spec = np.fft.rfft(y)
    f = np.fft.rfftfreq(len(y), 1 / sr)
    skirt = 100.0
    gain = np.clip((f - (low - skirt)) / skirt, 0, 1) * np.clip(((high + skirt) - f) / skirt, 0, 1)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spec * gain, n=len(y)).astype(np.float32)


def add_noise(y: np.ndarray, rng: np.random.Generator, *, snr_db: float) -> np.ndarray:
    power = float(np.mean(y**2)) + 1e-12
    noise = rng.standard_normal(len(y)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (y + noise).astype(np.float32)


def phone(y: np.ndarray, sr: int, *, seed: int, snr_db: float = 20.0) -> np.ndarray:
    """Phone speaker into a microphone in a small room: reverb, 300-3400 Hz, noise; peak kept."""
    rng = np.random.default_rng(seed)
    peak = float(np.max(np.abs(y))) or 1.0
    wet = np.convolve(y, room_impulse(sr, rng))[: len(y)]
    out = add_noise(band_limit(wet, sr), rng, snr_db=snr_db)
    return (out * (peak / (float(np.max(np.abs(out))) or 1.0))).astype(np.float32)


def degrade(y: np.ndarray, sr: int, condition: str, *, name: str = "") -> np.ndarray:
    """Apply one named condition of the suite; ``name`` seeds the random parts per clip."""
    funcs: dict[str, Callable[[], np.ndarray]] = {
        "clean": lambda: y,
        "mp3_64k": lambda: mp3_roundtrip(y, sr),
        "phone": lambda: phone(y, sr, seed=seed_for(name, condition)),
    }
    if condition not in funcs:
        raise ValueError(f"unknown degradation {condition!r}: use {', '.join(CONDITIONS)}")
    return funcs[condition]()
