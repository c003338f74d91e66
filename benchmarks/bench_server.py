"""Web server under load: RSS before and after many sequential and concurrent requests.

    python -m benchmarks.bench_server                        # 500 sequential + 200 concurrent
    python -m benchmarks.bench_server --sequential 50 --concurrent 40 --clients 8

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
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from benchmarks._common import RESULTS, Server, make_clips, post, write_results


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
    ap.add_argument("--output", type=Path, default=RESULTS / "server.json")
    ap.add_argument("server_args", nargs="*", help="extra `musicgenre serve` flags, after --")
    args = ap.parse_args()
    result = run(args.sequential, args.concurrent, args.clients, args.seconds, args.server_args)
    sys.stdout.write(write_results(args.output, result))


if __name__ == "__main__":
    main()
