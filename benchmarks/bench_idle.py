"""Idle connections against a real ``musicgenre serve``: do they lock out a normal request?

    python -m benchmarks.bench_idle                  # 1,000 idle connections, 20 requests among them
    python -m benchmarks.bench_idle --idle 300 --requests 5

Starts the server (default limits: 200 connections, 10-s header timeout) on a loopback port, times
``GET /api/health`` and a quick ``POST /api/classify`` (a 5-s FLAC) with no other connection open,
then opens ``--idle`` connections that send nothing (all at once, before the first request) and
times the same requests again while they are held; then counts how many of the idle sockets the
server still holds, at once and after the header timeout, and the server's open file descriptors (right
after the burst, while it is still accepting and closing, and once the requests are done).
Writes benchmarks/results/server-idle.json.
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import RESULTS, Server, make_clips, timed, write_results


def timed_requests(url: str, clip: Path, n: int) -> dict[str, object]:
    """``n`` rounds of a health check and a quick classify (``timed``, interleaved): median and max seconds."""
    import httpx

    statuses: list[int] = []

    def health_check() -> None:
        statuses.append(httpx.get(url + "/api/health", timeout=30).status_code)

    def classify_clip() -> None:
        statuses.append(httpx.post(url + "/api/classify", params={"quick": "true", "segments": "false"},
                                   files={"file": (clip.name, clip.read_bytes())}, timeout=60).status_code)

    times = timed({"health": health_check, "classify": classify_clip}, n, warmup=0)
    health, classify = times["health"], times["classify"]
    return {"health_median_s": round(statistics.median(health), 4), "health_max_s": round(max(health), 4),
            "classify_median_s": round(statistics.median(classify), 3), "classify_max_s": round(max(classify), 3),
            "statuses": sorted(set(statuses))}


def still_open(socks: list[socket.socket]) -> int:
    """Sockets the server has not closed (a closed one is readable and reads EOF)."""
    n = 0
    for s in socks:
        readable, _, _ = select.select([s], [], [], 0)
        if not readable:
            n += 1
            continue
        try:
            if s.recv(1, socket.MSG_PEEK) != b"":
                n += 1
        except OSError:
            pass
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--output", type=Path, default=RESULTS / "server-idle.json")
    args = p.parse_args()
    import psutil

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    server = Server()
    socks: list[socket.socket] = []
    try:
        server.wait_ready()
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_clips(5.0, Path(tmp))[0]
            timed_requests(server.url, clip, 2)  # warm-up
            baseline = timed_requests(server.url, clip, args.requests)
            t0 = time.perf_counter()
            refused = 0
            for _ in range(args.idle):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
                except OSError:
                    refused += 1
            opened_s = time.perf_counter() - t0
            fds_with_idle = psutil.Process(server.proc.pid).num_fds()
            loaded = timed_requests(server.url, clip, args.requests)
            fds_after = psutil.Process(server.proc.pid).num_fds()
        held_after_requests = still_open(socks)
        time.sleep(10 + 3)  # the default header timeout, plus the check interval
        held_after_timeout = still_open(socks)
        result = {
            "server": "musicgenre serve, default limits (200 connections, 10-s header timeout)",
            "idle_connections_opened": len(socks), "connect_errors": refused,
            "seconds_to_open_them": round(opened_s, 2),
            "requests_each": args.requests,
            "no_idle_connections": baseline,
            "with_idle_connections": loaded,
            "server_open_fds_right_after_opening": fds_with_idle,
            "server_open_fds_after_requests": fds_after,
            "idle_held_by_server_after_requests": held_after_requests,
            "idle_held_by_server_after_header_timeout": held_after_timeout,
            "server_rss_mb": round(server.rss_mb()),
        }
        server.stop()
    finally:
        for s in socks:
            s.close()
        if server.proc.poll() is None:
            server.proc.kill()
    sys.stdout.write(write_results(args.output, result))


if __name__ == "__main__":
    main()
