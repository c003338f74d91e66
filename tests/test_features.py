"""The numpy log-mel front end: one framing rule, equal to the torch front end and to librosa."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from musicgenre.features import FeatureConfig, LogMel, centre_pad, frame, log_mel
from musicgenre.models.frontends import TorchLogMel, frame_tensor
from musicgenre.windows import _LogMelStream

from .conftest import ROOT

CFG = FeatureConfig()


def _noise(seconds: float, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * CFG.sr))).astype(np.float32)


@pytest.mark.parametrize("n", [0, 511, 512, 513, 767, 768, 5000])
def test_frame_cuts_every_complete_frame(n: int) -> None:
    y = np.arange(n, dtype=np.float32)
    frames = frame(y, n_fft=512, hop_length=256)
    expected = [y[i : i + 512] for i in range(0, n - 511, 256)]
    assert frames.shape == (len(expected), 512)
    for got, want in zip(frames, expected):
        np.testing.assert_array_equal(got, want)


def test_torch_framing_is_the_same_rule() -> None:
    torch = pytest.importorskip("torch")
    y = _noise(1.3)
    np.testing.assert_array_equal(
        frame_tensor(torch.from_numpy(y), n_fft=512, hop_length=256).numpy(), frame(y, n_fft=512, hop_length=256)
    )


@pytest.mark.parametrize("amp", [1e-4, 0.3, 1.0])
def test_numpy_log_mel_equals_torch(amp: float) -> None:
    torch = pytest.importorskip("torch")
    y = _noise(5.0, amp)
    if amp == 1.0:  # full-scale square wave: the loudest input there is
        y = np.sign(np.sin(np.arange(len(y)) * 0.05)).astype(np.float32)
    frames = frame(centre_pad(y, n_fft=CFG.n_fft), n_fft=CFG.n_fft, hop_length=CFG.hop_length)
    ours = LogMel(CFG).from_frames(frames)
    theirs = TorchLogMel(CFG).from_frames(torch.from_numpy(np.ascontiguousarray(frames))).numpy()
    assert ours.dtype == np.float32 and ours.shape == (1 + len(y) // CFG.hop_length, CFG.n_mels)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize("n_mels", [96, 128, 200])  # 200 bands on 257 bins: some bands hold no bin at all
def test_sparse_mel_projection_equals_the_matmul(n_mels: int) -> None:
    lm = LogMel(FeatureConfig(n_mels=n_mels))
    power = (np.random.default_rng(0).random((50, 257)) ** 4 * 1e4).astype(np.float32)
    dense = power.astype(np.float64) @ lm.mel.astype(np.float64)
    np.testing.assert_allclose(lm.project(power), dense, rtol=1e-6, atol=1e-6)
    assert lm.project(power[:0]).shape == (0, n_mels)


def test_numpy_log_mel_equals_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    y = _noise(3.0)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    np.testing.assert_allclose(log_mel(y), np.log10(10000 * ref + 1), atol=1e-4, rtol=0)


def test_sine_peaks_in_its_mel_band() -> None:
    """Physics: a 1 kHz sine's energy sits in the mel band whose centre is nearest 1 kHz."""
    t = np.arange(CFG.sr) / CFG.sr
    mel = log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    # Slaney band centres: mel points 1..n_mels of an even split of 0..8 kHz on the mel scale
    from musicgenre.features import _hz_to_mel, _mel_to_hz

    centres = _mel_to_hz(np.linspace(0, _hz_to_mel(np.array([8000.0]))[0], CFG.n_mels + 2))[1:-1]
    assert abs(int(np.argmax(mel[10:-10].mean(0))) - int(np.argmin(np.abs(centres - 1000)))) <= 1


@pytest.mark.parametrize("block", [1000, 4096, 47_999])
def test_patch_stream_equals_whole_signal_log_mel(block: int) -> None:
    """The production feature path (streamed blocks) cuts the same frames as the whole-signal log-mel."""
    y = _noise(7.3, seed=1)
    stream = _LogMelStream(CFG)
    parts = [stream.push(y[i : i + block])[0] for i in range(0, len(y), block)]
    parts.append(stream.push(np.zeros(0, np.float32), final=True)[0])
    patches = np.concatenate(parts)
    whole = log_mel(y)
    t = CFG.window_frames
    assert patches.shape == (len(whole) // t, t, CFG.n_mels)
    np.testing.assert_allclose(patches, whole[: len(patches) * t].reshape(-1, t, CFG.n_mels), atol=1e-6, rtol=0)


def test_front_end_imports_without_torch() -> None:
    """The inference install has no torch: the feature path and the ONNX backend must not need it."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "import numpy as np\n"
        "from musicgenre.features import log_mel\n"
        "from musicgenre.windows import _LogMelStream\n"
        "import musicgenre.runtime.onnx\n"
        "from musicgenre.features import FeatureConfig\n"
        "s = _LogMelStream(FeatureConfig())\n"
        "m, p = s.push(np.ones(16000 * 4, np.float32) * 0.1, final=True)\n"
        "assert m.shape == (1, 187, 96) and log_mel(np.zeros(1000, np.float32)).shape == (4, 96)\n"
    )
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def _music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones with a decaying envelope over pink-ish noise: energy spread over the bands, with quiet ones."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sr)) / CFG.sr
    tones = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate((110.0, 220.0, 330.0, 880.0)))
    env = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 0.7 * t))
    noise = np.cumsum(rng.standard_normal(len(t))) * 1e-3
    y = 0.3 * env * tones + (noise - noise.mean()) * 0.05
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


@pytest.mark.parametrize("span", ["window", "track"])
@pytest.mark.parametrize("db", [6, 15, 25])
def test_levelled_windows_do_not_depend_on_playback_level(db: float, span: str) -> None:
    from musicgenre.windows import Windows

    y = _music_like(9.5)
    y[: CFG.sr * 3] *= 0.1  # a quiet first window: "track" keeps it quieter than the rest, "window" does not
    quiet = (y * 10 ** (-db / 20)).astype(np.float32)
    levelled = FeatureConfig(level_db=-5.0, level_span=span)  # type: ignore[arg-type]
    a, peaks_a = Windows((y, CFG.sr), levelled).all()
    b, peaks_b = Windows((quiet, CFG.sr), levelled).all()
    np.testing.assert_allclose(a, b, atol=2e-4, rtol=0)
    np.testing.assert_allclose(peaks_b, peaks_a * 10 ** (-db / 20), rtol=1e-5)  # the silence rule sees the level
    # without levelling (the original MusiCNN front end, which the goldens check) the features move with the level
    raw_a, _ = Windows((y, CFG.sr), CFG).all()
    raw_b, _ = Windows((quiet, CFG.sr), CFG).all()
    assert np.abs(raw_a - raw_b).max() > 0.5


def test_track_level_keeps_the_windows_loudness_differences() -> None:
    from musicgenre.windows import Windows

    y = _music_like(9.5)
    y[: CFG.sr * 3] *= 0.1
    per_window, _ = Windows((y, CFG.sr), FeatureConfig(level_db=-5.0)).all()
    per_track, _ = Windows((y, CFG.sr), FeatureConfig(level_db=-5.0, level_span="track")).all()
    # the first window is levelled alike (the track so far is that window); the later, louder ones are not
    # raised to the first one's level by "track"
    np.testing.assert_allclose(per_window[0], per_track[0], atol=1e-5)
    assert per_track[1:].mean() > per_window[1:].mean() + 0.02


def test_level_db_is_only_written_when_set() -> None:
    assert "level_db" not in CFG.to_dict() and "level_span" not in CFG.to_dict()
    cfg = FeatureConfig(level_db=-5.0, level_span="track")
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg and FeatureConfig.from_dict(CFG.to_dict()) == CFG
