"""The classify page's record button, end to end in headless Chromium: its microphone is a WAV file
(``--use-file-for-fake-audio-capture``) made at test time as a room recording (an example clip convolved with a
synthetic decaying impulse response, plus room noise). A recording long and loud enough gets five genres; one
too short or too quiet to judge is said so on the page and gets none."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import EXAMPLES, chromium
from .test_web import running_server

pytest.importorskip("gradio", reason="web extra not installed")
pytest.importorskip("selenium", reason="web test extra not installed")


def room_recording(path: Path, *, seconds: float = 10.0, gain_db: float = 0.0, seed: int = 0) -> Path:
    """``examples/jazz_vibe_ace.ogg`` as a microphone across a room hears it: convolved with an exponentially
    decaying noise tail (RT60 about 0.6 s, direct sound first), room noise 35 dB below, then ``gain_db``."""
    from scipy.signal import fftconvolve

    y, sr = sf.read(EXAMPLES / "jazz_vibe_ace.ogg", dtype="float32")
    y = (y.mean(axis=1) if y.ndim > 1 else y)[: int(seconds * sr)]
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.8 * sr)) / sr
    ir = rng.normal(0.0, 1.0, len(t)) * np.exp(-6.9 * t / 0.6) * 0.3
    ir[0] = 1.0
    wet = fftconvolve(y, ir)[: len(y)]
    wet += rng.normal(0.0, np.sqrt(np.mean(wet**2)) * 10 ** (-35 / 20), len(wet))
    wet *= 0.5 / np.abs(wet).max() * 10 ** (gain_db / 20)
    sf.write(path, wet.astype(np.float32), sr, subtype="PCM_16")
    return path


def record_and_analyze(url: str, wav: Path, seconds: float) -> tuple[str, str]:
    """Open the page with ``wav`` as the microphone, record ``seconds``, press Analyze: (status, top-5 text)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                      f"--use-file-for-fake-audio-capture={wav}")
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#song button[aria-label='Record audio']")).click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#song button.record-button")).click()
        # polled every 20 ms, not Selenium's 0.5 s: on a loaded machine a short recording must stay short
        stop = WebDriverWait(driver, 60, poll_frequency=0.02).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#song button.stop-button"))
        time.sleep(seconds)
        driver.execute_script("arguments[0].click();", stop)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#song audio"))  # the recording is the input now
        wait.until(lambda d: d.find_element(By.ID, "analyze")).click()
        status = wait.until(lambda d: d.find_element(By.ID, "status").text or False)
        return status, driver.find_element(By.ID, "top5").text
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(classifier):
    with running_server(classifier) as url:
        yield url


def test_record_button_room_recording_gets_five_genres(page, tmp_path):
    status, top5 = record_and_analyze(page, room_recording(tmp_path / "room.wav"), 6.0)
    assert "analysed in" in status and top5.count("%") >= 5, (status, top5)
    seconds = float(status.split(" s of audio")[0].split()[-1])
    assert 4.0 <= seconds <= 12.0, status  # what was recorded, not the whole file


def test_a_recording_too_short_is_said_so_and_gets_no_genre(page, tmp_path):
    status, top5 = record_and_analyze(page, room_recording(tmp_path / "room.wav"), 0.3)
    assert "Too short to judge" in status and "%" not in top5, (status, top5)


def test_a_recording_too_quiet_is_said_so_and_gets_no_genre(page, tmp_path):
    status, top5 = record_and_analyze(page, room_recording(tmp_path / "quiet.wav", gain_db=-80.0), 5.0)
    assert "Too quiet to judge" in status and "%" not in top5, (status, top5)
