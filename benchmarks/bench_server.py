"""Web server under load: RSS before and after many sequential and concurrent requests.

    python benchmarks/bench_server.py                        # 500 sequential + 200 concurrent
    python benchmarks/bench_server.py --sequential 50 --concurrent 40 --clients 8

Starts ``python -m musicgenre serve`` in a subprocess on a free loopback port (defaults: 1 analysis
at a time, 8 waiting), warms it up with 10 requests, then measures the server's RSS (the process and
its children, e.g. ffmpeg) before, after the sequential phase and after the concurrent phase. Each
request posts one of the four example clips (``examples/*.ogg``), cut to their first ``--seconds``
(default 10) and saved as FLAC, in quick mode. In the concurrent phase ``--clients`` threads post
at once; a 503 (queue full) is counted and retried after its Retry-After (at most 1 s here, to keep
the run short). Writes
benchmarks/results/server.json (``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, tree_rss_mb  # process tree RSS, the same measure as the scan benchmark

CLIPS = sorted((ROOT / "examples").glob("*.ogg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``musicgenre serve`` in a subprocess; ``env`` extras (e.g. TMPDIR) go to it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "musicgenre", "serve", "--port", str(self.port), *args]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def wait_ready(self, timeout: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + "".join(self.output))
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("server did not start: " + "".join(self.output))

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid)

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM; returns the seconds it took to exit (kills it and raises if it does not)."""
        t0 = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return time.monotonic() - t0


def post(url: str, clip: Path, *, quick: bool = True, retry_busy: bool = True) -> int:
    """One classify request; returns its final status (503s retried when ``retry_busy``)."""
    import httpx

    while True:
        r = httpx.post(url + "/api/classify", params={"quick": str(quick).lower(), "segments": "false"},
                       files={"file": (clip.name, clip.read_bytes())}, timeout=300)
        if r.status_code != 503 or not retry_busy:
            return r.status_code
        time.sleep(min(1.0, float(r.headers.get("Retry-After", "1"))))


def make_clips(seconds: float, folder: Path) -> list[Path]:
    import soundfile as sf

    out = []
    for src in CLIPS:
        y, sr = sf.read(src, frames=int(seconds * sf.info(src).samplerate), dtype="float32")
        out.append(folder / f"{src.stem}.flac")
        sf.write(out[-1], y, sr)
    return out


def run(sequential: int, concurrent: int, clients: int, seconds: float, server_args: list[str]) -> dict:
    import tempfile

    clips = make_clips(seconds, Path(tempfile.mkdtemp(prefix="bench-server-")))
    server = Server(*server_args)
    try:
        server.wait_ready()
        for i in range(10):
            post(server.url, clips[i % len(clips)])
        rss = {"after_warmup": server.rss_mb()}
        t0 = time.monotonic()
        seq = Counter(post(server.url, clips[i % len(clips)]) for i in range(sequential))
        seq_s = time.monotonic() - t0
        rss["after_sequential"] = server.rss_mb()

        busy: Counter[int] = Counter()
        statuses: Counter = Counter()
        lock = threading.Lock()
        todo = iter(range(concurrent))

        def client() -> None:
            import httpx

            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                clip = clips[i % len(clips)]
                while True:
                    r = httpx.post(server.url + "/api/classify", params={"quick": "true", "segments": "false"},
                                   files={"file": (clip.name, clip.read_bytes())}, timeout=300)
                    if r.status_code != 503:
                        break
                    with lock:
                        busy[503] += 1
                    time.sleep(min(1.0, float(r.headers.get("Retry-After", "1"))))
                with lock:
                    statuses[r.status_code] += 1

        t0 = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conc_s = time.monotonic() - t0
        rss["after_concurrent"] = server.rss_mb()
        stop_s = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    growth = (max(rss["after_sequential"], rss["after_concurrent"]) / rss["after_warmup"] - 1) * 100
    return {
        "sequential": {"n": sequential, "statuses": dict(seq), "seconds": round(seq_s, 1)},
        "concurrent": {"n": concurrent, "clients": clients, "statuses": dict(statuses),
                       "busy_503_retried": busy[503], "seconds": round(conc_s, 1)},
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "rss_growth_percent": round(growth, 1),
        "sigterm_exit_seconds": round(stop_s, 2),
        "server_args": server_args, "clips": [c.name for c in clips], "clip_seconds": seconds,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequential", type=int, default=500)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--clients", type=int, default=20, help="threads posting at once in the concurrent phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each posted clip (default 10)")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "server.json")
    ap.add_argument("server_args", nargs="*", help="extra `musicgenre serve` flags, after --")
    args = ap.parse_args()
    result = run(args.sequential, args.concurrent, args.clients, args.seconds, args.server_args)
    text = json.dumps(result, indent=2)
    print(text)
    args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
