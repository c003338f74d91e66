"""prefetch: a file's next block decodes in the background while the model runs on this one."""

from __future__ import annotations

import threading
import time

import pytest

from musicgenre.prefetch import prefetch


def test_items_come_in_order_produced_in_another_thread() -> None:
    threads = set()

    def gen():
        for i in range(50):
            threads.add(threading.get_ident())
            yield i

    assert list(prefetch(gen())) == list(range(50))
    assert threading.get_ident() not in threads


def test_the_producer_runs_at_most_depth_items_ahead() -> None:
    produced = []

    def gen():
        for i in range(100):
            produced.append(i)
            yield i

    for i in prefetch(gen(), depth=1):
        time.sleep(0.002)
        # consumed i; one waits in the queue, one may be in the producer's hand
        assert len(produced) <= i + 3


def test_a_producer_error_reaches_the_consumer_after_the_items_before_it() -> None:
    def gen():
        yield 1
        yield 2
        raise ValueError("damaged frame")

    got = []
    with pytest.raises(ValueError, match="damaged frame"):
        for x in prefetch(gen()):
            got.append(x)
    assert got == [1, 2]


def test_stopping_early_closes_the_source_and_ends_the_thread() -> None:
    closed = threading.Event()

    def gen():
        try:
            yield from range(10**9)
        finally:
            closed.set()  # where a decoder kills its ffmpeg

    before = threading.active_count()
    it = prefetch(gen())
    assert next(it) == 0
    it.close()
    assert closed.is_set()
    assert threading.active_count() == before


def test_a_consumer_error_stops_the_producer() -> None:
    closed = threading.Event()

    def gen():
        try:
            yield from range(1000)
        finally:
            closed.set()

    with pytest.raises(RuntimeError):
        for x in prefetch(gen()):
            if x == 3:
                raise RuntimeError("the model failed")
    assert closed.is_set()
