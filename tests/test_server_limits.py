"""Connections that never finish: idle and trickling clients, a connection cap, and the private folders
of servers killed with kill -9. Loopback only; every test opens a bounded number of sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks._common import Server
from musicgenre.web.connections import ConnectionLimits
from musicgenre.web.server import LOCK_NAME, WORKDIR_PREFIX, build_server, remove_dead_workdirs, uvicorn_config

from .conftest import tone, write_audio

ROOT = Path(__file__).resolve().parents[1]
POST_HEAD = (b"POST /api/classify HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
             b"Content-Length: 100000\r\n\r\n")


@pytest.fixture(scope="module")
def app(classifier):
    return build_server(classifier)


@contextmanager
def guarded_server(app, limits: ConnectionLimits):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, connections=limits))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield port, server.config.http_protocol_class.counters
    finally:
        server.should_exit = True
        thread.join(10)


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def closed_by_server(s: socket.socket, within: float) -> bool:
    """True if the server closed ``s`` (EOF or reset) within ``within`` seconds; answers are read and skipped."""
    s.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if s.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def test_idle_connections_over_the_cap_do_not_lock_out_a_request(app, tmp_path):
    import httpx

    clip = write_audio(tmp_path / "clip.wav", tone(4.0, 22050, 330), 22050)
    cap = 16
    with guarded_server(app, ConnectionLimits(max_connections=cap, header_timeout_s=60)) as (port, counters):
        idle = [connect(port) for _ in range(3 * cap)]  # open, send nothing
        try:
            t0 = time.monotonic()
            r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
            assert r.status_code == 200 and time.monotonic() - t0 < 2
            r = httpx.post(f"http://127.0.0.1:{port}/api/classify", files={"file": (clip.name, clip.read_bytes())},
                           timeout=30)
            assert r.status_code == 200 and r.json()["label"]
            still_open = [s for s in idle if not closed_by_server(s, 0.05)]
            assert len(still_open) <= cap  # the server never held more than the cap
            assert counters.evicted_idle >= 2 * cap and counters.refused_503 == 0
        finally:
            for s in idle:
                s.close()


def test_over_the_cap_with_every_connection_busy_gives_503(app):
    import httpx

    cap = 4
    limits = ConnectionLimits(max_connections=cap, header_timeout_s=60, body_timeout_s=60, min_body_bytes_per_s=0)
    with guarded_server(app, limits) as (port, counters):
        busy = [connect(port) for _ in range(cap)]
        try:
            for s in busy:  # a request in progress: head sent, body still coming
                s.sendall(POST_HEAD + b"--xyz\r\n")
            time.sleep(0.3)
            r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert counters.refused_503 >= 1 and counters.evicted_idle == 0
        finally:
            for s in busy:
                s.close()
        deadline = time.monotonic() + 5
        while (r := httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert r.status_code == 200


def test_idle_and_trickling_heads_are_closed_after_the_header_timeout(app):
    with guarded_server(app, ConnectionLimits(header_timeout_s=1.0)) as (port, counters):
        idle = connect(port)
        t0 = time.monotonic()
        assert closed_by_server(idle, 4) and time.monotonic() - t0 < 3
        trickle = connect(port)
        trickle.sendall(b"GET /api/health HTTP/1.1\r\n")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 5 and not closed:
            try:
                trickle.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            closed = closed or closed_by_server(trickle, 0.25)
        assert closed and time.monotonic() - t0 < 3
        assert counters.header_timeouts >= 2
        idle.close()
        trickle.close()


@pytest.mark.parametrize("pattern", ["trickle", "stall"])
def test_slow_upload_body_gets_408(app, pattern):
    limits = ConnectionLimits(header_timeout_s=5, body_timeout_s=1.0, min_body_bytes_per_s=10_000)
    with guarded_server(app, limits) as (port, counters):
        s = connect(port)
        s.sendall(POST_HEAD + b"--xyz\r\n" + (b"x" * 2000 if pattern == "stall" else b""))
        t0 = time.monotonic()
        answer = b""
        s.settimeout(0.2)
        while time.monotonic() - t0 < 6:
            if pattern == "trickle":
                try:
                    s.sendall(b"12345")  # 25 bytes/s
                except (BrokenPipeError, ConnectionResetError):
                    break
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - t0 < 4 and counters.body_timeouts == 1
        s.close()


CHILD = """
import sys, time
from pathlib import Path
from musicgenre.web.server import make_workdir
folder, lock = make_workdir(Path(sys.argv[1]))
print(folder, flush=True)
time.sleep(120)
"""


def test_next_start_removes_folders_of_dead_servers_only(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    live, dead = (subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                                   env=env) for _ in range(2))
    try:
        live_dir, dead_dir = (Path(p.stdout.readline().strip()) for p in (live, dead))
        (dead_dir / "gradio").mkdir()
        (dead_dir / "upload-x.flac").write_bytes(b"left behind")
        old_style = tmp_path / f"{WORKDIR_PREFIX}nolock"  # no lock file: not ours to judge, kept
        old_style.mkdir()
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        assert (dead_dir / LOCK_NAME).exists()
        assert remove_dead_workdirs(tmp_path) == [dead_dir]
        assert not dead_dir.exists() and (live_dir / LOCK_NAME).exists() and old_style.exists()
        assert remove_dead_workdirs(tmp_path) == []  # the live server's folder stays, start after start
        live.kill()
        live.wait(10)
        assert remove_dead_workdirs(tmp_path) == [live_dir]
    finally:
        for p in (live, dead):
            if p.poll() is None:
                p.kill()


@pytest.mark.slow
def test_serve_after_kill_9_removes_the_dead_servers_folder(tmp_path):
    first = Server(env={"TMPDIR": str(tmp_path)})
    try:
        first.wait_ready()
        (old,) = tmp_path.glob(f"{WORKDIR_PREFIX}*")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        assert old.exists()
        second = Server(env={"TMPDIR": str(tmp_path)})
        try:
            second.wait_ready()
            assert not old.exists()
            (new,) = tmp_path.glob(f"{WORKDIR_PREFIX}*")
            assert (new / LOCK_NAME).read_text().strip() == str(second.proc.pid)
        finally:
            second.stop()
        assert not list(tmp_path.glob(f"{WORKDIR_PREFIX}*"))
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
