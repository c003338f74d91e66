"""Shared fixtures: synthetic audio made at test time, the shipped classifier, example clips."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# (backbone, version) the shipped default model's features are stored under: MSD MusiCNN behind musicnn-gtzan 3.0's
# levelled front end (features.feature_identity)
DEFAULT_FEATURES = ("MSD_musicnn", "0.1.0+level-5dB-window")
FIXTURES = Path(__file__).parent / "fixtures"


def load_benchmark(name: str) -> ModuleType:
    """A script of benchmarks/ as a module, imported as when it runs (its folder on the path, for _common)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def tone(seconds: float, sr: int = 22050, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """A sine with a harmonic and 10-ms fades; (n,) or (n, channels) float32."""
    t = np.arange(int(seconds * sr)) / sr
    y = amp * (0.7 * np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2 * freq * t))
    fade = min(len(y) // 2, int(0.01 * sr))
    if fade:
        ramp = np.linspace(0, 1, fade)
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    y = y.astype(np.float32)
    return y if channels == 1 else np.stack([y] * channels, axis=1)


def write_audio(path: Path, y: np.ndarray, sr: int) -> Path:
    """Write ``y`` in the format named by the suffix (M4A through ffmpeg)."""
    path = Path(path)
    if path.suffix == ".m4a":
        wav = path.with_suffix(".tmp.wav")
        sf.write(wav, y, sr)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(path)], check=True)
        wav.unlink()
        return path
    kw = {".ogg": {"format": "OGG", "subtype": "VORBIS"}, ".opus": {"format": "OGG", "subtype": "OPUS"},
          ".mp3": {"format": "MP3", "subtype": "MPEG_LAYER_III"}}.get(path.suffix, {})
    sf.write(path, y, sr, **kw)
    return path


@pytest.fixture(scope="session")
def classifier():
    from musicgenre import Classifier

    # synthetic tones sound like no genre: the shared fixture always names one (tests/test_openset.py covers
    # "unknown")
    return Classifier.from_pretrained(device="cpu", unknown=False)


@pytest.fixture(scope="session")
def have_ffmpeg() -> bool:
    assert shutil.which("ffmpeg"), "ffmpeg must be installed by the test set-up (see README)"
    return True


@pytest.fixture(scope="session")
def featureless_classifier(tmp_path_factory):
    """The shipped model as an export from before the library stored features: its card records no backbone
    identity for the ONNX graph, so its predictions carry no features (what older model directories do)."""
    import dataclasses

    from musicgenre import load
    from musicgenre.modeldir import read, resolve

    d = tmp_path_factory.mktemp("featureless") / "model"
    shutil.copytree(resolve(None), d)
    card = read(d)
    assert card.onnx is not None
    extra = {k: v for k, v in card.onnx.extra.items() if k != "backbone"}
    card.replace(onnx=dataclasses.replace(card.onnx, extra=extra)).save(d)
    return load(d, device="cpu")
