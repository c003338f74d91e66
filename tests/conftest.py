"""Shared fixtures: synthetic audio made at test time, the shipped classifier, example clips."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# (backbone, version) the shipped default model's features are stored under: MSD MusiCNN behind musicnn-gtzan 3.0's
# levelled front end (features.feature_identity)
DEFAULT_FEATURES = ("MSD_musicnn", "0.1.0+level-5dB-window")
FIXTURES = Path(__file__).parent / "fixtures"


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


def chromium(*flags: str, capabilities: dict | None = None):
    """Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, offline; ``flags`` and
    ``capabilities`` (e.g. performance logging) added."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver must be installed by the test set-up (see README)")
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1800", "--autoplay-policy=no-user-gesture-required", *flags):
        opts.add_argument(flag)
    for name, value in (capabilities or {}).items():
        opts.set_capability(name, value)
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))


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


@contextmanager
def serve_app(app):
    """A real uvicorn server for the ASGI ``app`` on a free loopback port, in a thread of this process; yields
    its URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def db_genres(db: Path, path: str) -> tuple[list[str], str]:
    """The genres a library database holds for the file's current content (``file_tags``), and that content's
    hash."""
    import json
    import sqlite3

    con = sqlite3.connect(db)
    try:
        genres, digest = con.execute("SELECT ft.genres, t.content_hash FROM tracks t JOIN file_tags ft ON "
                                     "ft.path = t.path AND ft.content_hash = t.content_hash WHERE t.path = ?",
                                     (path,)).fetchone()
    finally:
        con.close()
    return json.loads(genres), digest
