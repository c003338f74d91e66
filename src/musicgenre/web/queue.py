"""Admission control for the web app: a few analyses at a time, a short bounded queue, a time limit.

Both the JSON API and the Gradio page submit their work here, so together they never run more than
``workers`` analyses at once nor hold more than ``queue`` waiting; anything beyond is refused at once
(``Busy``: HTTP 503 with Retry-After) instead of piling up threads and memory. A job that passes its
time limit, or whose client went away, is abandoned and its decoder (an ffmpeg child process, found
by the job's file path on its command line) is killed, so no decode outlives its request. Worker
threads are daemons: a SIGTERM'd server never waits for one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from ..errors import MusicGenreError

log = logging.getLogger(__name__)


class Busy(MusicGenreError):
    """Every worker is busy and the queue is full."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; try again in {retry_after} s")
        self.retry_after = retry_after


class TimedOut(MusicGenreError):
    """The analysis passed the per-request time limit and was stopped."""


class Abandoned(MusicGenreError):
    """The client went away; the analysis was stopped."""


@dataclass(eq=False)  # identity hash: jobs live in a set
class _Job:
    fn: Callable[[], Any]
    paths: tuple[str, ...]
    future: Future


class AnalysisQueue:
    """``workers`` daemon threads, at most ``queue_size`` jobs waiting, ``timeout_s`` per job (waiting
    included)."""

    def __init__(self, *, workers: int = 1, queue_size: int = 8, timeout_s: float = 300.0) -> None:
        if workers < 1 or queue_size < 0 or timeout_s <= 0:
            raise ValueError("workers >= 1, queue_size >= 0 and timeout_s > 0 are required")
        self.workers, self.queue_size, self.timeout_s = workers, queue_size, timeout_s
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0  # queued + running; a job leaves when its future is done or cancelled
        self._running: set[_Job] = set()
        self._mean_seconds = 10.0  # running mean of job time, for Retry-After
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"musicgenre-analysis-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    @property
    def load(self) -> int:
        """Jobs admitted and not finished (running + waiting)."""
        return self._admitted

    def status(self) -> dict[str, int]:
        """Running and waiting jobs, and the limits (for ``GET /api/health``)."""
        with self._lock:
            running = len(self._running)
            return {"running": running, "waiting": self._admitted - running, "workers": self.workers,
                    "queue": self.queue_size}

    def _submit(self, fn: Callable[[], Any], paths: tuple[str, ...]) -> _Job:
        with self._lock:
            if self._closed or self._admitted >= self.workers + self.queue_size:
                waves = math.ceil((self._admitted + 1) / self.workers)
                raise Busy(max(1, min(600, round(waves * self._mean_seconds))))
            self._admitted += 1
        job = _Job(fn, paths, Future())
        job.future.add_done_callback(self._release)
        self._jobs.put(job)
        return job

    def _release(self, _: Future) -> None:
        with self._lock:
            self._admitted -= 1

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            with self._lock:
                self._running.add(job)
            t0 = time.monotonic()
            try:
                job.future.set_result(job.fn())
            except BaseException as e:  # handed to the waiting request, which reports it
                job.future.set_exception(e)
            finally:
                with self._lock:
                    self._running.discard(job)
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (time.monotonic() - t0)

    def _stop(self, job: _Job) -> None:
        if not job.future.cancel():  # already running: kill its decoder so the thread ends soon
            kill_decoders(job.paths)

    def run(self, fn: Callable[[], Any], *, paths: tuple[str, ...] = ()) -> Any:
        """Run ``fn`` in a worker and wait for it (blocking; for Gradio's handler threads)."""
        job = self._submit(fn, paths)
        try:
            return job.future.result(timeout=self.timeout_s)
        except FutureTimeout:
            self._stop(job)
            raise TimedOut(f"the analysis took longer than the {self.timeout_s:g}-s limit and was stopped") from None

    async def run_async(self, fn: Callable[[], Any], *, paths: tuple[str, ...] = (),
                        disconnected: Callable[[], Awaitable[bool]] | None = None) -> Any:
        """Run ``fn`` in a worker; stop it if the time limit passes or ``disconnected()`` turns true."""
        job = self._submit(fn, paths)
        waiter = asyncio.wrap_future(job.future)
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())  # read, even after we gave up on it
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            done, _ = await asyncio.wait({waiter}, timeout=max(0.0, min(0.5, left)))
            if done:
                return waiter.result()
            if time.monotonic() >= deadline:
                self._stop(job)
                raise TimedOut(f"the analysis took longer than the {self.timeout_s:g}-s limit and was stopped")
            if disconnected is not None and await disconnected():
                self._stop(job)
                raise Abandoned("the client disconnected")

    def close(self) -> None:
        """Refuse new jobs, drop waiting ones, kill running decoders; returns without waiting."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.cancel()
        for job in running:
            kill_decoders(job.paths)
        for _ in self._threads:
            self._jobs.put(None)


def kill_decoders(paths: tuple[str, ...]) -> int:
    """Kill our child processes (ffmpeg) whose command line names one of ``paths``; returns how many."""
    if not paths:
        return 0
    try:
        import psutil
    except ImportError:  # without psutil a stopped job's decoder runs until its own time limit
        return 0
    killed = 0
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if any(p in cmdline for p in paths):
                child.kill()
                killed += 1
        except psutil.Error:
            continue
    if killed:
        log.info("killed %d decoder process(es) of a stopped analysis", killed)
    return killed
