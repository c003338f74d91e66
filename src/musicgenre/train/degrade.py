"""The degradation suite: how the same song reaches us when it was not a clean file.

Each condition maps (mono float32 samples, rate) to degraded samples of the same length, dtype and rate,
seeded so the same clip always gets the same degradation. Used to measure label stability
(``benchmarks/accuracy.py``), as training augmentation (``recipes/*.toml``, ``conditions``) and for
evaluation on held-out degradations. One entry point: ``degrade(y, sr, condition, name=clip_key)``.

Conditions (strings, so recipes stay TOML lists; ``check_condition`` validates one):

- ``clean``: the input as it is.
- ``mp3_64k``: encode to MP3 at 64 kbps constant bit rate and decode again (libsndfile's LAME
  encoder through soundfile; no ffmpeg needed). Unchanged since the shipped model's recipe: same
  output as before. ``mp3_<N>k`` (e.g. ``mp3_32k``) at other bit rates (16-160 kbps below 32 kHz,
  32-320 above), time-aligned with the input (``mp3_64k`` at 16 kHz already is).
- ``phone``: the original phone model, kept bit for bit for the shipped model's recipe and its cache:
  a small room (synthetic exponential impulse response, RT60 about 0.3 s), band-limited to
  300-3400 Hz, then white noise at 20 dB SNR, peak level kept.
- ``quiet_<N>db`` (e.g. ``quiet_6db``, ``quiet_15db``, ``quiet_25db``): pure gain, exactly
  ``y * 10**(-N/20)`` in float32; nothing requantised, nothing clipped.
- ``aac_<N>k`` (e.g. ``aac_32k``, ``aac_48k``): AAC-LC at N kbps through ffmpeg's native encoder
  (an ffmpeg subprocess with a timeout; ``CodecUnavailable`` names the reason when ffmpeg is missing);
  the encoder's 1,024-sample priming is cut, so the output is time-aligned with the input.
- ``opus_<N>k`` (e.g. ``opus_16k``, ``opus_24k``): Opus in Ogg at N kbps (6-256) through soundfile
  (libsndfile), pre-skip handled by the decoder: time-aligned. All codecs run at the input rate
  (16 kHz for the MusiCNN features), clip to [-1, 1] first and return exactly ``len(y)`` samples.
- ``room`` / ``room_eval``: a recording of the song played in a room: small speaker -> shoebox room
  (reverberation with strong early reflections) + ambient noise -> phone microphone (band limits,
  tilt, automatic gain control) -> level change. ``room`` draws every parameter from the TRAIN
  ranges, ``room_eval`` from the held-out EVAL ranges below.
- ``reverb``, ``noise``, ``speaker``, ``mic`` (and each ``*_eval``): one stage of that chain alone
  (``reverb`` and ``speaker`` keep the input's RMS level, ``speaker`` is always a small one; ``noise``
  adds noise at the drawn SNR; ``mic`` is the phone microphone's response and gain control).
- Chains: ``A+B`` applies A then B, each step seeded by its own name, so ``room+aac_32k`` is
  exactly ``aac_32k`` applied to this clip's ``room`` output (a phone recording that was then uploaded).

Seeds: every random choice of a step comes from ``np.random.default_rng(seed_for(name, step))``
(``name`` is the clip's key, ``step`` the step's condition string), parameters first, in a fixed
order, then the noise realisations. The same clip under the same condition therefore always gets
the same degradation, in any process; ``describe(condition, name)`` returns the parameters drawn.
Changing a range or the draw order changes every clip's degradation and invalidates feature caches
(they are keyed by condition name): give a changed condition a new name instead.

Held-out parameters. Each continuous parameter has a range [lo, hi] cut into n equal bands: the TRAIN
split draws from bands 0, 2, 4, ..., the EVAL split from bands 1, 3, 5, ... (a band is picked uniformly,
then a value uniformly inside it), so no eval value is ever a train value and both cover the whole span.
Discrete choices (noise kinds) are disjoint sets. Every ``*_eval`` room has all three dimensions,
its RT60, the source-microphone distance, the microphone's gap to the nearest surface, the noise kind
and SNR, the speaker's and microphone's filters and the level change outside anything ``room`` trains on.

==================================  ==========================  ==  =====================================
parameter                           range                       n   train bands (eval: the others)
==================================  ==========================  ==  =====================================
room length (m)                     3.0-12.0                    6   3-4.5, 6-7.5, 9-10.5
room width (m)                      2.5-8.5                     6   2.5-3.5, 4.5-5.5, 6.5-7.5
room height (m)                     2.3-4.1                     6   2.3-2.6, 2.9-3.2, 3.5-3.8
RT60 (s, Sabine)                    0.15-0.90                   5   0.15-0.30, 0.45-0.60, 0.75-0.90
source-microphone distance (m)      0.4-3.4                     6   0.4-0.9, 1.4-1.9, 2.4-2.9
mic gap to a wall or floor (m)      0.02-0.32 (p = 0.5)         6   0.02-0.07, 0.12-0.17, 0.22-0.27
noise SNR (dB, vs the wet signal)   10-30                       4   10-15, 20-25
noise kind                          -                           -   train: white, pink, brown, babble;
                                                                    eval: cafe, hvac, traffic
speaker high-pass (Hz, 4th order)   120-420 (p small = 0.8)     6   120-170, 220-270, 320-370
speaker resonance (x high-pass)     1.0-2.0                     4   1.0-1.25, 1.5-1.75
speaker resonance gain (dB)         2-10                        4   2-4, 6-8
speaker resonance Q                 0.8-2.4                     4   0.8-1.2, 1.6-2.0
speaker low-pass (Hz, 2nd order)    4500-7500                   4   4500-5250, 6000-6750
speaker soft-clip drive (tanh)      0.25-2.25                   4   0.25-0.75, 1.25-1.75
mic high-pass (Hz, 2nd order)       60-260                      4   60-110, 160-210
mic low-pass (Hz, 4th order)        3400-7800                   4   3400-4500, 5600-6700
mic tilt (dB, shelf at 1.5 kHz)     -6 to +6                    4   -6 to -3, 0 to +3
mic AGC strength (0 = off)          0-1                         4   0-0.25, 0.5-0.75
mic AGC release (s)                 0.2-1.2                     4   0.2-0.45, 0.7-0.95
level change (dB)                   -30 to 0                    5   -30 to -24, -18 to -12, -6 to 0
==================================  ==========================  ==  =====================================

Rooms are simulated with pyroomacoustics (``train`` extra): the image-source method in a shoebox with
uniform wall absorption from Sabine's formula (rooms whose RT60 would need absorption above 0.9 draw
it from the feasible part of their split's bands). The image sources are computed up to the order that
makes the response complete for its first ``EARLY_MS`` (80 ms: direct sound and the strong early
reflections, e.g. a microphone 2 cm from a wall or lying on a table), then a diffuse tail of Gaussian
noise decaying at the room's RT60, level-matched to the image-source energy at the crossover,
continues it: the full image-source model would cost 0.1-0.5 s per response for RT60 above 0.5 s.
The microphone is at a surface with probability 0.5 (four walls and the floor), else 0.3 m or more
from each; the source is at least 0.2 m from every surface; when the drawn distance does not fit the
room, the longest that fits is used (``describe`` shows it). The small speaker is used with
probability 0.8 (else a full-range speaker: no filter, no clipping).
"""

from __future__ import annotations

import io
import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

CONDITIONS = ("clean", "mp3_64k", "phone")  # the original suite: benchmarks' label-stability set
# Named conditions documented above (any quiet_<N>db, mp3_/aac_/opus_<N>k and A+B chain works too).
SUITE = (
    "clean", "mp3_64k", "phone", "quiet_6db", "quiet_15db", "quiet_25db", "mp3_32k", "aac_32k", "aac_48k",
    "opus_16k", "opus_24k", "room", "reverb", "noise", "speaker", "mic",
)
EVAL_CONDITIONS = ("room_eval", "reverb_eval", "noise_eval", "speaker_eval", "mic_eval")
MP3_BITRATE_KBPS = 64
Split = Literal["train", "eval"]
SPLITS: tuple[Split, ...] = ("train", "eval")
SPEED_OF_SOUND = 343.0
EARLY_MS = 80.0  # image sources cover the response this long; a diffuse decaying tail follows
MAX_ABSORPTION = 0.9
AAC_PRIMING = 1024  # ffmpeg's AAC encoder delay (samples at the coded rate)
CODEC_TIMEOUT_S = 120.0


class CodecUnavailable(RuntimeError):
    """A codec condition cannot run here (e.g. ``aac_*`` without ffmpeg): not a per-clip failure."""


def seed_for(name: str, condition: str) -> int:
    """A stable per-(clip, condition) seed (Python's hash() is salted per process)."""
    return zlib.crc32(f"{name}|{condition}".encode())


# --- the original conditions (unchanged: the shipped model's cache depends on their exact output) ---------


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


# --- parameter ranges with held-out bands ---------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A range [lo, hi] cut into ``n`` equal bands: the train split draws from bands 0, 2, 4, ..., the
    eval split from bands 1, 3, 5, ... (n = 1: one band, both splits share it: not held out)."""

    lo: float
    hi: float
    n: int = 1

    def bands(self, split: Split) -> list[tuple[float, float]]:
        width = (self.hi - self.lo) / self.n
        first = 1 if split == "eval" and self.n > 1 else 0
        return [(self.lo + k * width, self.lo + (k + 1) * width) for k in range(first, self.n, 2 if self.n > 1 else 1)]

    def sample(self, rng: np.random.Generator, split: Split, *, at_least: float | None = None) -> float:
        """A band picked uniformly, then a value uniformly inside it; always two draws from ``rng``.
        ``at_least`` cuts off what lies below it (the upper end of the top band stays reachable)."""
        bands = self.bands(split)
        if at_least is not None:
            bands = [(max(a, at_least), b) for a, b in bands if b > at_least] or bands  # (never empty here)
        k, u = int(rng.integers(len(bands))), float(rng.random())
        a, b = bands[k]
        return a + u * (b - a)

    def split_of(self, x: float) -> Split:
        """Which split's bands hold ``x`` (the boundary between two bands belongs to the upper one)."""
        k = min(int((x - self.lo) / ((self.hi - self.lo) / self.n)), self.n - 1)
        return "eval" if k % 2 else "train"


@dataclass(frozen=True)
class Choice:
    """A discrete parameter whose train and eval values are disjoint sets."""

    train: tuple[str, ...]
    eval: tuple[str, ...]

    def sample(self, rng: np.random.Generator, split: Split) -> str:
        options = self.train if split == "train" else self.eval
        return options[int(rng.integers(len(options)))]


def _check_split(split: str) -> Split:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use train or eval")
    return split  # type: ignore[return-value]


# --- rooms ----------------------------------------------------------------------------------------------

ROOM_RANGES = {
    "length": Band(3.0, 12.0, 6),
    "width": Band(2.5, 8.5, 6),
    "height": Band(2.3, 4.1, 6),
    "rt60": Band(0.15, 0.90, 5),
    "distance": Band(0.4, 3.4, 6),
    "surface_gap": Band(0.02, 0.32, 6),
}
P_MIC_AT_SURFACE = 0.5
SURFACES = ("wall x=0", "wall x=L", "wall y=0", "wall y=W", "floor")


@dataclass(frozen=True)
class Room:
    """One shoebox room with a source (the speaker) and a microphone; metres and seconds."""

    dims: tuple[float, float, float]
    rt60: float
    absorption: float
    source: tuple[float, float, float]
    mic: tuple[float, float, float]
    distance: float
    surface: str  # the surface the microphone is close to, or "" (0.3 m or more from every surface)
    surface_gap: float

    @classmethod
    def sample(cls, rng: np.random.Generator, split: Split = "train") -> Room:
        split = _check_split(split)
        r = ROOM_RANGES
        dims = np.array([r["length"].sample(rng, split), r["width"].sample(rng, split),
                         r["height"].sample(rng, split)])
        volume, area = float(np.prod(dims)), 2.0 * float(dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
        sabine = 24 * math.log(10) / SPEED_OF_SOUND * volume / area  # RT60 x absorption
        rt60 = r["rt60"].sample(rng, split, at_least=sabine / MAX_ABSORPTION)
        absorption = min(sabine / rt60, MAX_ABSORPTION)
        rt60 = sabine / absorption
        distance = r["distance"].sample(rng, split)
        gap = r["surface_gap"].sample(rng, split)
        at_surface = bool(rng.random() < P_MIC_AT_SURFACE)
        surface = int(rng.integers(len(SURFACES)))
        mic = np.array([0.3 + rng.random() * (d - 0.6) for d in dims])
        mic[2] = min(mic[2], 2.0)  # a microphone in someone's hand or on furniture, not at the ceiling
        if at_surface:
            axis, far = divmod(surface, 2)
            mic[axis] = dims[axis] - gap if far else gap
        azimuth, elevation = rng.random(16) * 2 * np.pi, (rng.random(16) - 0.5) * 0.6
        directions = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                               np.sin(elevation)], axis=1)
        fits = np.array([_room_fit(mic, u, dims) for u in directions])  # longest distance that fits
        k = int(np.argmax(fits >= distance)) if np.any(fits >= distance) else int(np.argmax(fits))
        used = float(min(distance, fits[k]))
        source = mic + used * directions[k]
        return cls(dims=_triple(dims), rt60=float(rt60), absorption=float(absorption), source=_triple(source),
                   mic=_triple(mic), distance=used, surface=SURFACES[surface] if at_surface else "",
                   surface_gap=float(gap) if at_surface else 0.0)


def _triple(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def _room_fit(mic: np.ndarray, u: np.ndarray, dims: np.ndarray, margin: float = 0.2) -> float:
    """How far from ``mic`` along unit vector ``u`` a source stays ``margin`` inside the room."""
    t = np.inf
    for p, d, lim in zip(mic, u, dims):
        if d > 1e-9:
            t = min(t, (lim - margin - p) / d)
        elif d < -1e-9:
            t = min(t, (margin - p) / d)
    return max(float(t), 0.0)


def room_impulse_response(room: Room, sr: int, rng: np.random.Generator, *,
                          early_ms: float = EARLY_MS) -> np.ndarray:
    """The room's impulse response from source to microphone (float32, direct sound at about 2.5 ms).

    pyroomacoustics' image-source method up to the order that makes the response complete for its first
    ``early_ms`` (all images closer than ``c * early_ms`` are in), then a diffuse Gaussian tail decaying at
    the room's RT60 (60 dB per RT60), level-matched to the image-source energy of the 10 ms before the
    crossover and cross-faded over 5 ms.
    """
    try:
        import pyroomacoustics as pra
    except ImportError as e:  # the light install has no simulator
        raise ImportError(f"room degradations need pyroomacoustics: pip install 'musicgenre[train]' ({e})") from e

    dims = np.array(room.dims)
    # An image with a_i reflections off the walls across axis i is at least (a_i - 1) L_i away along that axis,
    # so (Cauchy-Schwarz) every image of order > N lies beyond (N - 2) / sqrt(sum 1/L_i^2): complete up to there.
    s = math.sqrt(float(np.sum(1 / dims**2)))
    order = int(min(math.ceil(early_ms / 1000 * SPEED_OF_SOUND * s) + 2, 40))
    shoebox = pra.ShoeBox(dims, fs=sr, materials=pra.Material(room.absorption), max_order=order,
                          air_absorption=False, use_rand_ism=False)
    shoebox.add_source(list(room.source))
    shoebox.add_microphone(np.array(room.mic))
    shoebox.compute_rir()
    h = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    start = int(room.distance / SPEED_OF_SOUND * sr)  # the propagation delay: keep the output aligned
    h = h[start:]
    pad = int(pra.constants.get("frac_delay_length")) // 2  # the fractional-delay filter's own delay
    complete = (order - 2) / s
    cross = pad + max(int(complete / SPEED_OF_SOUND * sr) - start, int(0.02 * sr))
    win, fade = int(0.010 * sr), int(0.005 * sr)
    cross = min(cross, len(h) - 1)
    level = math.sqrt(float(np.mean(h[max(cross - win, 0) : cross] ** 2)) + 1e-20)
    n = cross + int(room.rt60 * sr) + fade
    t = (np.arange(n - cross + fade) - fade) / sr  # seconds after the crossover
    tail = rng.standard_normal(len(t)) * level * np.exp(-3 * math.log(10) * t / room.rt60)
    out = np.zeros(n)
    keep = min(len(h), cross + fade)
    out[:keep] = h[:keep]
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(2 * fade) / (2 * fade))  # 0 -> 1 over cross - fade .. + fade
    lo = cross - fade
    out[lo : lo + 2 * fade] *= 1 - ramp[: min(2 * fade, n - lo)]
    out[lo:] += tail[: n - lo] * np.concatenate([ramp, np.ones(n - lo - 2 * fade)])[: n - lo]
    return out.astype(np.float32)


def convolve(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``y`` through the filter ``h``: FFT (overlap-add) convolution, cut to ``len(y)``."""
    from scipy.signal import oaconvolve

    return np.asarray(oaconvolve(y.astype(np.float32), h.astype(np.float32))[: len(y)], dtype=np.float32)


# --- noise ----------------------------------------------------------------------------------------------

NOISE_RANGES = {"snr_db": Band(10.0, 30.0, 4)}
NOISE_KINDS = Choice(train=("white", "pink", "brown", "babble"), eval=("cafe", "hvac", "traffic"))


@dataclass(frozen=True)
class Noise:
    kind: str
    snr_db: float

    @classmethod
    def sample(cls, rng: np.random.Generator, split: Split = "train") -> Noise:
        split = _check_split(split)
        return cls(kind=NOISE_KINDS.sample(rng, split), snr_db=NOISE_RANGES["snr_db"].sample(rng, split))


def _shaped(white: np.ndarray, sr: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """White noise given the amplitude response ``gain(f)`` in the frequency domain."""
    spec = np.fft.rfft(white)
    spec *= gain(np.fft.rfftfreq(len(white), 1 / sr))
    spec[0] = 0.0  # no DC
    return np.fft.irfft(spec, n=len(white))


def _slope(beta: float) -> Callable[[np.ndarray], np.ndarray]:
    """1/f^beta power (pink: 1, brown: 2), flat below 20 Hz."""
    return lambda f: np.maximum(f, 20.0) ** (-beta / 2)


def _speech_shape(peak: float) -> Callable[[np.ndarray], np.ndarray]:
    """A long-term speech spectrum: rising to ``peak`` Hz, falling about 9 dB per octave above, nothing
    below 100 Hz or above 5 kHz to speak of."""
    return lambda f: (f / 150) ** 2 / (1 + (f / 150) ** 2) / (1 + (f / peak) ** 1.5) / (1 + (f / 5000) ** 4)


def _envelopes(n: int, sr: int, rng: np.random.Generator, count: int, rate_hz: float) -> np.ndarray:
    """``count`` positive envelopes of syllable-like modulation around ``rate_hz`` (sample-rate length)."""
    hop = sr // 100
    frames = n // hop + 2
    raw = rng.standard_normal((count, frames))
    spec = np.fft.rfft(raw, axis=1)
    f = np.fft.rfftfreq(frames, 1 / 100)
    spec *= np.exp(-0.5 * ((f - rate_hz) / (0.6 * rate_hz)) ** 2)
    env = np.fft.irfft(spec, n=frames, axis=1)
    env = np.maximum(env / (env.std(axis=1, keepdims=True) + 1e-9) + 0.3, 0.0)
    return np.repeat(env, hop, axis=1)[:, :n]


def _babble(n: int, sr: int, rng: np.random.Generator, talkers: int, peak: float) -> np.ndarray:
    env = np.sqrt(np.sum(_envelopes(n, sr, rng, talkers, rate_hz=4.0) ** 2, axis=0))  # the talkers' summed power
    return _shaped(rng.standard_normal(n) * env, sr, _speech_shape(peak))


def noise_signal(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of one noise kind, unit RMS, made from filtered random noise (no recordings).

    Train kinds: ``white`` (hiss), ``pink``, ``brown`` (rumble), ``babble`` (4-8 talkers: speech-shaped
    noise modulated at syllable rate). Eval kinds: ``cafe`` (10-16 talkers with a brighter spectrum and
    the clatter of cups: decaying 2-6 kHz bursts), ``hvac`` (mains hum at 50 or 60 Hz with harmonics over
    low-passed pink rumble), ``traffic`` (brown noise swelling as cars pass every 3-10 s).
    """
    if kind == "white":
        out = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        out = _shaped(rng.standard_normal(n), sr, _slope(1.0 if kind == "pink" else 2.0))
    elif kind == "babble":
        out = _babble(n, sr, rng, int(rng.integers(4, 9)), peak=500.0)
    elif kind == "cafe":
        out = _babble(n, sr, rng, int(rng.integers(10, 17)), peak=800.0)
        out /= out.std() + 1e-12
        clicks = np.zeros(n)
        count = rng.poisson(max(n / sr, 1.0) * rng.uniform(0.5, 3.0))
        clicks[rng.integers(0, n, count)] = rng.uniform(3.0, 20.0, count) * rng.choice([-1.0, 1.0], count)
        ring_t = np.arange(int(0.03 * sr)) / sr
        ring = np.sin(2 * np.pi * rng.uniform(2000, min(6000, 0.45 * sr)) * ring_t) * np.exp(-ring_t / 0.006)
        out = out + convolve(clicks, ring)
    elif kind == "hvac":
        rumble = _shaped(rng.standard_normal(n), sr, lambda f: np.maximum(f, 20.0) ** -0.5 / (1 + (f / 300) ** 2))
        t = np.arange(n) / sr
        mains = 50.0 if rng.random() < 0.5 else 60.0
        hum = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) / k**1.5 for k in range(1, 9)
                  if mains * k < sr / 2)
        out = rumble / (rumble.std() + 1e-12) + rng.uniform(0.3, 1.0) * np.asarray(hum) / 0.8
    elif kind == "traffic":
        base = _shaped(rng.standard_normal(n), sr, _slope(2.0))
        t = np.arange(n) / sr
        swell = np.full(n, 0.3)
        at = 0.0
        while at < n / sr + 5:
            at += rng.uniform(3.0, 10.0)
            swell += rng.uniform(0.5, 2.0) * np.exp(-0.5 * ((t - at) / rng.uniform(0.8, 2.5)) ** 2)
        out = base * swell
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    out = np.asarray(out, dtype=np.float64)
    return (out / math.sqrt(float(np.mean(out**2)) + 1e-24)).astype(np.float32)


def add_colored_noise(y: np.ndarray, sr: int, rng: np.random.Generator, noise: Noise) -> np.ndarray:
    """``y`` plus noise of ``noise.kind`` at ``noise.snr_db`` below ``y``'s mean power."""
    power = float(np.mean(np.square(y, dtype=np.float64))) + 1e-12
    scale = math.sqrt(power / 10 ** (noise.snr_db / 10))
    return (y + scale * noise_signal(noise.kind, len(y), sr, rng)).astype(np.float32)


# --- small speaker and phone microphone -------------------------------------------------------------------

SPEAKER_RANGES = {
    "highpass_hz": Band(120.0, 420.0, 6),
    "resonance_ratio": Band(1.0, 2.0, 4),
    "resonance_db": Band(2.0, 10.0, 4),
    "resonance_q": Band(0.8, 2.4, 4),
    "lowpass_hz": Band(4500.0, 7500.0, 4),
    "drive": Band(0.25, 2.25, 4),
}
P_SMALL_SPEAKER = 0.8
MIC_RANGES = {
    "highpass_hz": Band(60.0, 260.0, 4),
    "lowpass_hz": Band(3400.0, 7800.0, 4),
    "tilt_db": Band(-6.0, 6.0, 4),
    "agc_strength": Band(0.0, 1.0, 4),
    "agc_release_s": Band(0.2, 1.2, 4),
}


@dataclass(frozen=True)
class Speaker:
    """A small loudspeaker (phone, laptop, bluetooth box): 4th-order high-pass, a resonance above it,
    a 2nd-order low-pass and tanh soft clipping of the peaks; ``small`` False: a full-range speaker."""

    small: bool
    highpass_hz: float
    resonance_hz: float
    resonance_db: float
    resonance_q: float
    lowpass_hz: float
    drive: float

    @classmethod
    def sample(cls, rng: np.random.Generator, split: Split = "train", *, p_small: float = P_SMALL_SPEAKER) -> Speaker:
        split = _check_split(split)
        s = {k: b.sample(rng, split) for k, b in SPEAKER_RANGES.items()}
        small = bool(rng.random() < p_small)
        return cls(small=small, highpass_hz=s["highpass_hz"], resonance_hz=s["highpass_hz"] * s["resonance_ratio"],
                   resonance_db=s["resonance_db"], resonance_q=s["resonance_q"], lowpass_hz=s["lowpass_hz"],
                   drive=s["drive"])

    def apply(self, y: np.ndarray, sr: int) -> np.ndarray:
        if not self.small:
            return y.astype(np.float32)
        from scipy.signal import butter, sosfilt

        nyq = sr / 2
        sos = [butter(4, min(self.highpass_hz, 0.9 * nyq), "highpass", fs=sr, output="sos"),
               _peaking(self.resonance_hz, self.resonance_db, self.resonance_q, sr)]
        if self.lowpass_hz < 0.95 * nyq:
            sos.append(butter(2, self.lowpass_hz, "lowpass", fs=sr, output="sos"))
        out = sosfilt(np.concatenate(sos), y.astype(np.float64))
        ref = float(np.percentile(np.abs(out), 99.9)) or 1.0  # the drive is relative to the loud peaks
        return (np.tanh(self.drive * out / ref) * ref / self.drive).astype(np.float32)


@dataclass(frozen=True)
class Mic:
    """A phone's microphone and recorder: 2nd-order high-pass (wind/handling filter), 4th-order low-pass
    (narrow- or wide-band; none above 0.95 x Nyquist), a high shelf at 1.5 kHz (presence tilt), then
    automatic gain control: frame level followed with a 5-ms attack and ``agc_release_s`` release, gain
    ``strength * (mean - level)`` dB (at most +-20 dB), so loud passages come down and quiet ones up."""

    highpass_hz: float
    lowpass_hz: float
    tilt_db: float
    agc_strength: float
    agc_release_s: float

    @classmethod
    def sample(cls, rng: np.random.Generator, split: Split = "train") -> Mic:
        split = _check_split(split)
        return cls(**{k: b.sample(rng, split) for k, b in MIC_RANGES.items()})

    def apply(self, y: np.ndarray, sr: int) -> np.ndarray:
        from scipy.signal import butter, sosfilt

        nyq = sr / 2
        sos = [butter(2, min(self.highpass_hz, 0.9 * nyq), "highpass", fs=sr, output="sos"),
               _high_shelf(min(1500.0, 0.4 * nyq), self.tilt_db, sr)]
        if self.lowpass_hz < 0.95 * nyq:
            sos.append(butter(4, self.lowpass_hz, "lowpass", fs=sr, output="sos"))
        out = sosfilt(np.concatenate(sos), y.astype(np.float64))
        return (out * _agc_gain(out, sr, self.agc_strength, self.agc_release_s)).astype(np.float32)


def _agc_gain(y: np.ndarray, sr: int, strength: float, release_s: float) -> np.ndarray:
    """Per-sample gain of a simple AGC (see ``Mic``); 1 everywhere when ``strength`` is 0."""
    hop = max(sr // 100, 1)
    frames = len(y) // hop
    if strength <= 0 or frames < 2:
        return np.ones(len(y))
    level = 10 * np.log10(np.mean(y[: frames * hop].reshape(frames, hop) ** 2, axis=1) + 1e-10)
    floor = float(np.max(level)) - 60  # silence is not pulled up
    level = np.maximum(level, floor)
    attack, release = math.exp(-hop / (0.005 * sr)), math.exp(-hop / (release_s * sr))
    env = np.empty(frames)
    e = float(level[0])
    for i, x in enumerate(level.tolist()):
        c = attack if x > e else release
        e = c * e + (1 - c) * x
        env[i] = e
    gain_db = np.clip(strength * (float(np.mean(env)) - env), -20.0, 20.0)
    centers = (np.arange(frames) + 0.5) * hop
    return np.asarray(10 ** (np.interp(np.arange(len(y)), centers, gain_db) / 20))


def _peaking(f0: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """RBJ cookbook peaking biquad as one second-order section."""
    a, w = 10 ** (gain_db / 40), 2 * math.pi * min(f0, 0.45 * sr) / sr
    alpha = math.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * math.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * math.cos(w), 1 - alpha / a]
    return np.array([[*(x / den[0] for x in b), 1.0, den[1] / den[0], den[2] / den[0]]])


def _high_shelf(f0: float, gain_db: float, sr: int) -> np.ndarray:
    """RBJ cookbook high shelf (slope 1) as one second-order section."""
    a, w = 10 ** (gain_db / 40), 2 * math.pi * f0 / sr
    alpha = math.sin(w) / 2 * math.sqrt(2)
    cw, sa = math.cos(w), 2 * math.sqrt(a) * alpha
    b = [a * ((a + 1) + (a - 1) * cw + sa), -2 * a * ((a - 1) + (a + 1) * cw), a * ((a + 1) + (a - 1) * cw - sa)]
    den = [(a + 1) - (a - 1) * cw + sa, 2 * ((a - 1) - (a + 1) * cw), (a + 1) - (a - 1) * cw - sa]
    return np.array([[*(x / den[0] for x in b), 1.0, den[1] / den[0], den[2] / den[0]]])


# --- the room chain -------------------------------------------------------------------------------------

LEVEL_RANGE = Band(-30.0, 0.0, 5)


@dataclass(frozen=True)
class RoomRecording:
    """speaker -> room (+ noise at the microphone) -> phone microphone -> level change (dB vs the input RMS)."""

    speaker: Speaker
    room: Room
    noise: Noise
    mic: Mic
    level_db: float

    @classmethod
    def sample(cls, rng: np.random.Generator, split: Split = "train") -> RoomRecording:
        split = _check_split(split)
        return cls(speaker=Speaker.sample(rng, split), room=Room.sample(rng, split), noise=Noise.sample(rng, split),
                   mic=Mic.sample(rng, split), level_db=LEVEL_RANGE.sample(rng, split))

    def apply(self, y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        wet = convolve(self.speaker.apply(y, sr), room_impulse_response(self.room, sr, rng))
        out = self.mic.apply(add_colored_noise(wet, sr, rng, self.noise), sr)
        return _match_rms(out, y, self.level_db)


def _rms(y: np.ndarray) -> float:
    return math.sqrt(float(np.mean(np.square(y, dtype=np.float64))))


def _match_rms(out: np.ndarray, ref: np.ndarray, gain_db: float = 0.0) -> np.ndarray:
    """``out`` scaled to ``ref``'s RMS level plus ``gain_db``."""
    have = _rms(out)
    scale = _rms(ref) / have * 10 ** (gain_db / 20) if have > 0 else 0.0
    return (out * scale).astype(np.float32)


# --- codecs ---------------------------------------------------------------------------------------------

MP3_GAPLESS_DELAY = 1105  # LAME's 576-sample encoder delay + the decoder's 529, when no gapless tag removes them


def mp3_aligned(y: np.ndarray, sr: int, *, kbps: int) -> np.ndarray:
    """MP3 round trip as ``mp3_roundtrip``, time-aligned with the input: below 40 kbps at 16 kHz libsndfile's
    decoder returns the 1,105 samples of encoder and decoder delay (its gapless trimming is missing), which
    are cut here. MPEG-2 (rates below 32 kHz) allows 16-160 kbps here, MPEG-1 32-320."""
    import soundfile as sf

    lo, hi = (32, 320) if sr >= 32000 else (16, 160)
    if not lo <= kbps <= hi:
        raise ValueError(f"MP3 at {sr} Hz takes {lo}-{hi} kbps, not {kbps}")
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1, 1), sr, format="MP3", compression_level=_mp3_level(kbps, sr), bitrate_mode="CONSTANT")
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    out = out if out.ndim == 1 else out.mean(axis=1)
    if len(out) - len(y) >= MP3_GAPLESS_DELAY:
        out = out[MP3_GAPLESS_DELAY:]
    return _fit(out, len(y))


def opus_roundtrip(y: np.ndarray, sr: int, *, kbps: float) -> np.ndarray:
    """Encode ``y`` as Opus in Ogg at ``kbps`` (6-256) through soundfile and decode it (same length, rate).
    libsndfile maps its compression level linearly onto 6-256 kbps per channel; Opus takes 8, 12, 16, 24 or
    48 kHz, other rates are resampled to 48 kHz and back."""
    import soundfile as sf

    if not 6 <= kbps <= 256:
        raise ValueError(f"Opus bit rate {kbps} kbps is outside 6-256")
    x, rate = np.clip(y, -1, 1).astype(np.float32), sr
    if sr not in (8000, 12000, 16000, 24000, 48000):
        x, rate = _resample(x, sr, 48000), 48000
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="OGG", subtype="OPUS", compression_level=(256.0 - kbps) / 250.0)
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    out = out if out.ndim == 1 else out.mean(axis=1)
    if rate != sr:
        out = _resample(out, rate, sr)
    return _fit(out, len(y))


def aac_roundtrip(y: np.ndarray, sr: int, *, kbps: float, timeout: float = CODEC_TIMEOUT_S) -> np.ndarray:
    """Encode ``y`` as AAC-LC (ADTS) at ``kbps`` with ffmpeg's native encoder and decode it again (the one ffmpeg
    runner, ``audio.ffmpeg.transcode``); the encoder's priming samples are cut (time-aligned output), the
    length is ``len(y)``. Raises ``CodecUnavailable`` when ffmpeg is missing or fails."""
    from ..audio.ffmpeg import FFmpegFailed, transcode

    raw = np.clip(y, -1, 1).astype("<f4").tobytes()
    pcm = ["-f", "f32le", "-ar", str(sr), "-ac", "1"]
    steps = (("encode", pcm, ["-c:a", "aac", "-b:a", f"{kbps:g}k", "-f", "adts"]),
             ("decode", ["-f", "aac"], ["-f", "f32le", "-ac", "1", "-ar", str(sr)]))
    data = raw
    for what, input_args, output_args in steps:
        try:
            data = transcode(data, input_args=input_args, output_args=output_args, timeout=timeout)
        except FFmpegFailed as e:
            if e.detail == "is not installed":
                raise CodecUnavailable("aac conditions need ffmpeg on PATH, and it was not found: install ffmpeg "
                                       "or leave aac_* out of the conditions") from None
            raise CodecUnavailable(f"ffmpeg AAC {what} {e.detail}") from None
    out = np.frombuffer(data, dtype="<f4")[AAC_PRIMING:]
    return _fit(out, len(y))


def _resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from ..audio.signal import resample

    return resample(y, sr_in, sr_out)


def _fit(out: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` float32 samples: cut, or padded with zeros (a decoder may drop a last partial frame)."""
    out = np.asarray(out, dtype=np.float32)[:n]
    return np.pad(out, (0, n - len(out))) if len(out) < n else out


# --- conditions by name ---------------------------------------------------------------------------------

_STAGES: dict[str, Any] = {"room": RoomRecording, "reverb": Room, "noise": Noise, "speaker": Speaker, "mic": Mic}
_PATTERN = re.compile(r"(?P<stage>room|reverb|noise|speaker|mic)(?P<eval>_eval)?|quiet_(?P<quiet>\d+(\.\d+)?)db"
                      r"|(?P<codec>mp3|aac|opus)_(?P<kbps>\d+)k|(?P<fixed>clean|phone)")


def _known() -> str:
    return (f"{', '.join(SUITE + EVAL_CONDITIONS)}, or quiet_<N>db, mp3_<N>k, aac_<N>k, opus_<N>k, "
            "and chains A+B")


def _parse(step: str) -> re.Match[str]:
    m = _PATTERN.fullmatch(step)
    if m is None:
        raise ValueError(f"unknown degradation {step!r}: use {_known()}")
    if m["codec"] == "mp3" and not 8 <= int(m["kbps"]) <= 320:
        raise ValueError(f"unknown degradation {step!r}: MP3 bit rates are 8-320 kbps")
    if m["codec"] == "opus" and not 6 <= int(m["kbps"]) <= 256:
        raise ValueError(f"unknown degradation {step!r}: Opus bit rates are 6-256 kbps")
    if m["codec"] == "aac" and not 8 <= int(m["kbps"]) <= 320:
        raise ValueError(f"unknown degradation {step!r}: AAC bit rates are 8-320 kbps")
    return m


def check_condition(condition: str) -> None:
    """Raise ValueError naming the known conditions when ``condition`` is not one (e.g. a recipe's typo)."""
    for step in condition.split("+"):
        _parse(step)


def describe(condition: str, name: str = "") -> list[dict[str, Any]]:
    """The parameters ``degrade(y, sr, condition, name=name)`` uses, one dict per step of the chain."""
    out: list[dict[str, Any]] = []
    for step in condition.split("+"):
        m = _parse(step)
        info: dict[str, Any] = {"step": step, "seed": seed_for(name, step)}
        if m["stage"]:
            split: Split = "eval" if m["eval"] else "train"
            rng = np.random.default_rng(info["seed"])
            params = (Speaker.sample(rng, split, p_small=1.0) if m["stage"] == "speaker"
                      else _STAGES[m["stage"]].sample(rng, split))
            info.update(split=split, **asdict(params))
        elif m["quiet"]:
            info["gain_db"] = -float(m["quiet"])
        elif m["codec"]:
            info.update(codec=m["codec"], kbps=int(m["kbps"]))
        out.append(info)
    return out


def _apply_step(y: np.ndarray, sr: int, step: str, name: str) -> np.ndarray:
    m = _parse(step)
    if m["fixed"] == "clean":
        return y
    if m["fixed"] == "phone":
        return phone(y, sr, seed=seed_for(name, step))
    if m["quiet"]:
        return (y * np.float32(10 ** (-float(m["quiet"]) / 20))).astype(np.float32)
    if m["codec"]:
        kbps = int(m["kbps"])
        if m["codec"] == "mp3":  # mp3_64k exactly as it always was (the shipped model's cache)
            return mp3_roundtrip(y, sr) if kbps == MP3_BITRATE_KBPS else mp3_aligned(y, sr, kbps=kbps)
        return opus_roundtrip(y, sr, kbps=kbps) if m["codec"] == "opus" else aac_roundtrip(y, sr, kbps=kbps)
    rng = np.random.default_rng(seed_for(name, step))
    split: Split = "eval" if m["eval"] else "train"
    stage = m["stage"]
    if stage == "room":
        return RoomRecording.sample(rng, split).apply(y, sr, rng)
    if stage == "reverb":
        room = Room.sample(rng, split)
        return _match_rms(convolve(y, room_impulse_response(room, sr, rng)), y)
    if stage == "noise":
        return add_colored_noise(y, sr, rng, Noise.sample(rng, split))
    if stage == "speaker":
        return _match_rms(Speaker.sample(rng, split, p_small=1.0).apply(y, sr), y)
    return Mic.sample(rng, split).apply(y, sr)  # mic


def degrade(y: np.ndarray, sr: int, condition: str, *, name: str = "") -> np.ndarray:
    """Apply one named condition of the suite (see the module docstring); ``name`` seeds the random parts
    per clip. Same length and rate as ``y``; float32 for every condition but ``clean`` (``y`` itself)."""
    steps: Sequence[str] = condition.split("+")
    for step in steps:  # a typo fails before any work
        _parse(step)
    for step in steps:
        y = _apply_step(y, sr, step, name)
    return y
