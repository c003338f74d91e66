"""Web app: the JSON endpoint and the Gradio handler in-process, and the page in headless Chromium."""

from __future__ import annotations

import select
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from benchmarks._common import Server, make_clips, post
from musicgenre.errors import ParameterError
from musicgenre.genres import is_genre_tag
from musicgenre.web.analyzer import MODES, Analyzer, Limits, check_port_free

from .conftest import EXAMPLES, chromium, serve_app, tone, write_audio

pytest.importorskip("gradio", reason="web extra not installed")  # the test set-up installs it

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def client(classifier):
    from fastapi.testclient import TestClient

    from musicgenre.web.server import build_server

    return TestClient(build_server(classifier, Limits(max_upload_mb=1.0, max_seconds=60)))


def test_api_classify(client, tmp_path):
    path = write_audio(tmp_path / "song.flac", tone(8.0, 44100, 330, channels=2), 44100)
    r = client.post("/api/classify", files={"file": ("song.flac", path.read_bytes())})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["source"] == "song.flac" and len(d["scores"]) == 10 and len(d["segments"]) == 2
    assert abs(sum(d["scores"].values()) - 1) < 1e-3 and d["truncated"] is False


def test_api_quick_mode_and_m4a(client, tmp_path, have_ffmpeg):
    path = write_audio(tmp_path / "long.m4a", tone(40.0, 22050, 440), 22050)
    d = client.post("/api/classify?quick=true&segments=false", files={"file": ("long.m4a", path.read_bytes())}).json()
    assert d["truncated"] is True and d["duration"] <= 30.5 and "segments" not in d


@pytest.mark.parametrize("payload, needle", [(b"", "empty"), (b"definitely not audio" * 40, "not audio")])
def test_api_bad_uploads_are_readable(client, payload, needle):
    r = client.post("/api/classify", files={"file": ("bad.mp3", payload)})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert needle in detail and "bad.mp3" in detail
    assert "/tmp/" not in detail and "Traceback" not in detail


def test_api_oversized_upload_is_413_with_the_limit(client):
    r = client.post("/api/classify", files={"file": ("big.mp3", b"\x00" * 2_000_000)})
    assert r.status_code == 413 and r.json()["detail"] == "the upload is larger than the 1 MB limit"


def test_api_declared_length_over_limit_is_refused_up_front(client):
    r = client.post("/api/classify", content=b"x" * 10,
                    headers={"content-type": "multipart/form-data; boundary=b", "content-length": "5000000"})
    assert r.status_code == 413


@pytest.mark.parametrize("files", [{"file": ("", b"SECRET-AUDIO" * 1000)}, {"other": ("a.mp3", b"SECRET-AUDIO")}])
def test_api_missing_file_name_is_short_and_never_echoes(client, files):
    r = client.post("/api/classify", files=files)
    assert r.status_code == 400 and len(r.text) < 200 and "SECRET" not in r.text, r.text
    r = client.post("/api/classify?quick=SECRET-VALUE", files={"file": ("a.mp3", b"x")})
    assert r.status_code == 422 and "SECRET" not in r.text and "quick" in r.text


def test_api_silence_is_readable(client, tmp_path):
    path = write_audio(tmp_path / "quiet.wav", np.zeros(16000 * 4, np.float32), 16000)
    r = client.post("/api/classify", files={"file": ("quiet.wav", path.read_bytes())})
    assert r.status_code == 422 and "silent" in r.json()["detail"]


def test_gradio_handler_outputs(classifier, tmp_path):
    import gradio as gr

    analyzer = Analyzer(classifier, Limits(max_seconds=12))
    top5, spec, fig, tags, status = analyzer.analyze(str(EXAMPLES / "jazz_vibe_ace.ogg"), MODES[0])
    assert len(top5) == 5 and "jazz" in top5
    assert spec.ndim == 3 and spec.shape[2] == 3 and spec.dtype == np.uint8
    assert fig.axes[0].get_title().startswith("Genre over time") and len(fig.axes[0].lines) == 5
    assert len(tags) == 10 and "analysed in" in status and "12-s limit" in status
    # the clip's top tag is "jazz": beside the answer the panel shows no genre word of the model's
    assert "jazz" not in tags and not [t for t in tags if is_genre_tag(t, classifier.labels)], tags
    with pytest.raises(gr.Error, match="Upload a file"):
        analyzer.analyze(None, MODES[0])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF1234WAVEfmt garbage")
    with pytest.raises(gr.Error, match="bad.wav"):
        analyzer.analyze(str(bad), MODES[1])


@pytest.mark.parametrize("suffix", [".ogg", ".m4a"])
def test_the_page_decodes_each_upload_once(classifier, tmp_path, monkeypatch, suffix, have_ffmpeg):
    """One upload through the page's handler: one decode of the file (soundfile or ffmpeg) feeds both the
    prediction and the spectrogram, and the prediction is the one ``Classifier.predict`` gives the file."""
    import musicgenre.audio as audio

    calls: list[str] = []
    for name in ("_file_blocks", "_bytes_blocks"):  # every decode of a file or of bytes starts in one of these
        real = getattr(audio, name)

        def counted(*args, _real=real, _name=name, **kw):
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(audio, name, counted)
    path = write_audio(tmp_path / f"song{suffix}", tone(8.0, 22050, 330), 22050)
    analyzer = Analyzer(classifier, Limits())
    top5, spec, _fig, _tags, _status = analyzer.analyze(str(path), MODES[0])
    assert calls == ["_file_blocks"], calls
    assert spec.ndim == 3 and spec.shape[1] > 100  # the spectrogram drew the same samples
    calls.clear()
    assert top5 == dict(classifier.predict(path, max_seconds=Limits().max_seconds).top(5))
    assert calls == ["_file_blocks"]


def test_port_in_use_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ParameterError, match=f"port {port} .* --port"):
            check_port_free("127.0.0.1", port)


@contextmanager
def running_server(classifier, limits=Limits()):
    """A real uvicorn server on a free loopback port, in a thread of this process."""
    from musicgenre.web.server import build_server

    with serve_app(build_server(classifier, limits)) as url:
        yield url


@pytest.fixture(scope="module")
def live_server(classifier):
    with running_server(classifier, Limits(max_upload_mb=1.0)) as url:
        yield url


def test_oversized_upload_is_refused_while_streaming(live_server):
    """Chunked upload with no Content-Length: the server counts bytes as they arrive and answers 413
    after about the limit, long before the client has sent its 20 MB."""
    host, port = live_server.split("/")[2].split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        block = b"\x01" * 65536
        try:
            while sent < 20_000_000 and not select.select([s], [], [], 0)[0]:
                s.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while b"limit" not in data and (part := s.recv(65536)):
            data += part
        reply = data.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413") and "1 MB limit" in reply, reply[:300]
    # refused after the limit plus what the loopback socket buffers hold (a few MB), not after 20 MB
    assert sent < 10_000_000, sent


def test_gradio_client_api(live_server):
    from gradio_client import Client, handle_file

    c = Client(live_server + "/", verbose=False)
    top5, _spec, _plot, _tags, status = c.predict(handle_file(str(EXAMPLES / "jazz_vibe_ace.ogg")), MODES[1],
                                                  api_name="/classify")
    labels = [x["label"] for x in top5["confidences"]]
    assert len(labels) == 5 and "jazz" in labels and "analysed in" in status


def test_browser_upload_and_analyze(live_server):
    """Headless Chromium: upload a file, click Analyze, read five genres with probabilities."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(capabilities={"goog:loggingPrefs": {"performance": "ALL"}})
    try:
        driver.get(live_server + "/")
        wait = WebDriverWait(driver, 60)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
        assert not driver.find_elements(By.CSS_SELECTOR, "#song audio")
        upload.send_keys(str(EXAMPLES / "jazz_vibe_ace.ogg"))
        # the upload is done when the page shows a player for it (no <audio> in #song before that)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#song audio"))
        wait.until(lambda d: d.find_element(By.ID, "analyze")).click()

        def five_rows(d):
            rows = d.find_elements(By.CSS_SELECTOR, "#top5 .label-name, #top5 [data-testid='label-output-value']")
            text = d.find_element(By.ID, "top5").text
            return rows if text.count("%") >= 5 else False

        wait.until(five_rows)
        text = driver.find_element(By.ID, "top5").text
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "web_analyze.png"))
        genres = {"blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"}
        shown = [w for w in text.replace("\n", " ").split() if w in genres]
        assert len(set(shown)) == 5 and "jazz" in shown, text
        assert text.count("%") >= 5
        # the tag panel: the clip's top tag is "jazz"; it shows no genre word of the model's, no heading
        tag_text = wait.until(lambda d: d.find_element(By.ID, "tags").text if d.find_element(By.ID, "tags")
                              .text.count("%") >= 5 else False)
        tag_words = tag_text.lower().replace("\n", " ").split()
        assert not set(tag_words) & (genres | {"hip-hop"}), tag_text
        assert "instrumental" in tag_words, tag_text
        assert driver.find_elements(By.CSS_SELECTOR, "#top5 h2") and not driver.find_elements(By.CSS_SELECTOR,
                                                                                               "#tags h2"), tag_text
        # fully offline: the page asked nothing of any host but ours
        hosts = set()
        for entry in driver.get_log("performance"):
            if '"Network.requestWillBeSent"' in entry["message"]:
                import json

                url = json.loads(entry["message"])["message"]["params"]["request"]["url"]
                if url.startswith("http"):
                    hosts.add(url.split("/")[2])
        assert hosts <= {live_server.split("/")[2]}, hosts
    finally:
        driver.quit()


def _ffmpeg_children(needle: str) -> list:
    import psutil

    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "ffmpeg" in p.name() and needle in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _wait_idle(url: str, seconds: float = 15.0) -> dict:
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        h = httpx.get(url + "/api/health").json()
        if h["running"] + h["waiting"] == 0 or time.monotonic() > deadline:
            return h
        time.sleep(0.1)


@pytest.fixture(scope="module")
def long_m4a(tmp_path_factory, have_ffmpeg) -> Path:
    """An hour of AAC at a low bit rate (about 7 MB): with the whole hour analysed, many seconds of work
    even at several hundred times real time, ffmpeg alive throughout."""
    path = tmp_path_factory.mktemp("long") / "long.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=22050:duration=3600",
                    "-c:a", "aac", "-b:a", "16k", str(path)], check=True)
    return path


def test_time_limit_gives_504_and_kills_the_decoder(classifier, long_m4a):
    import httpx

    # the whole hour analysed: several seconds of work (20 min, the default, now takes about the 2-s limit)
    with running_server(classifier, Limits(max_upload_mb=10, max_seconds=3600, timeout_s=2.0)) as url:
        t0 = time.monotonic()
        r = httpx.post(url + "/api/classify", files={"file": ("long.m4a", long_m4a.read_bytes())}, timeout=60)
        assert r.status_code == 504 and "2-s limit" in r.json()["detail"]
        assert time.monotonic() - t0 < 10
        assert _wait_idle(url)["running"] == 0  # the worker is free again: the decode was stopped
        assert not _ffmpeg_children("upload-")


def test_client_disconnect_stops_the_analysis(classifier, long_m4a):
    import httpx

    with running_server(classifier, Limits(max_upload_mb=10, max_seconds=3600, timeout_s=300)) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/api/classify", files={"file": ("long.m4a", long_m4a.read_bytes())}, timeout=3)
        h = _wait_idle(url)
        assert h["running"] + h["waiting"] == 0, h  # not the minutes a 10-min track takes
        assert not _ffmpeg_children("upload-")


def test_queue_full_gives_503_with_retry_after_for_api_and_page(classifier, tmp_path):
    import gradio as gr
    from fastapi.testclient import TestClient

    from musicgenre.web.queue import AnalysisQueue
    from musicgenre.web.server import build_server

    jobs = AnalysisQueue(workers=1, queue_size=1, timeout_s=30)
    release = threading.Event()
    running = threading.Thread(target=jobs.run, args=(release.wait,), daemon=True)
    waiting = threading.Thread(target=jobs.run, args=(lambda: None,), daemon=True)
    running.start()
    waiting.start()
    for _ in range(100):
        if jobs.status() == {"running": 1, "waiting": 1, "workers": 1, "queue": 1}:
            break
        time.sleep(0.02)
    try:
        client = TestClient(build_server(classifier, Limits(workers=1, queue=1), jobs=jobs))
        path = write_audio(tmp_path / "song.wav", tone(4.0, 16000), 16000)
        r = client.post("/api/classify", files={"file": ("song.wav", path.read_bytes())})
        assert r.status_code == 503 and "busy" in r.json()["detail"] and int(r.headers["Retry-After"]) >= 1
        with pytest.raises(gr.Error, match="busy"):  # the page shares the same queue
            Analyzer(classifier, Limits(), jobs).analyze(str(path), MODES[0])
        assert client.get("/api/health").json() == {"running": 1, "waiting": 1, "workers": 1, "queue": 1}
    finally:
        release.set()
    running.join(5)
    waiting.join(5)
    assert jobs.status()["running"] + jobs.status()["waiting"] == 0
    assert jobs.run(lambda: 42) == 42
    jobs.close()


@pytest.mark.slow
def test_server_process_under_load_then_sigterm(tmp_path, long_m4a):
    """A real `musicgenre serve` process: a burst beyond its queue gets 503s and never runs more than
    one analysis; RSS stays flat over 40 more requests; SIGTERM during an analysis exits promptly,
    kills the decoder and leaves no temporary file."""
    import httpx
    import psutil

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    server = Server("--concurrency", "1", "--queue", "2", "--max-upload-mb", "10",
                                 env={"TMPDIR": str(tmpdir)})
    try:
        server.wait_ready()
        clips = make_clips(5.0, tmp_path)
        assert [post(server.url, c) for c in clips] == [200] * 4  # warm-up
        rss_before = server.rss_mb()

        statuses: list[int] = []
        retry_after: list[str] = []

        def burst(clip):
            r = httpx.post(server.url + "/api/classify", files={"file": (clip.name, clip.read_bytes())}, timeout=120)
            statuses.append(r.status_code)
            retry_after.append(r.headers.get("Retry-After", ""))

        threads = [threading.Thread(target=burst, args=(clips[i % 4],)) for i in range(8)]
        for t in threads:
            t.start()
        peak = {"running": 0, "waiting": 0}
        while any(t.is_alive() for t in threads):
            h = httpx.get(server.url + "/api/health", timeout=10).json()
            peak = {k: max(peak[k], h[k]) for k in peak}
            time.sleep(0.05)
        assert set(statuses) == {200, 503} and statuses.count(200) >= 3, statuses
        assert all(ra.isdigit() and int(ra) >= 1 for s, ra in zip(statuses, retry_after) if s == 503)
        assert peak["running"] <= 1 and peak["waiting"] <= 2, peak

        for i in range(40):
            assert post(server.url, clips[i % 4]) == 200
        rss_after = server.rss_mb()
        assert rss_after < rss_before * 1.15, (rss_before, rss_after)  # flat: within 15 % (target 10 %)

        # the page's uploads land in the server's private folder, which SIGTERM removes below
        from gradio_client import Client, handle_file

        Client(server.url + "/", verbose=False).predict(handle_file(str(clips[0])), MODES[1], api_name="/classify")
        assert list(tmpdir.glob("musicgenre-web-*/gradio/**/*.flac"))

        long_request = threading.Thread(target=lambda: httpx.post(
            server.url + "/api/classify", files={"file": ("long.m4a", long_m4a.read_bytes())}, timeout=120),
            daemon=True)
        long_request.start()
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/api/health").json()["running"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.stop(timeout=20) < 10
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"]) if str(tmpdir) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, leftovers  # no orphaned ffmpeg
    # onnxruntime itself leaves a 51-byte ".ses" id file in TMPDIR when it is imported; ours must all be gone
    left = [p for p in tmpdir.iterdir() if p.name != ".ses"]
    assert not left, left
