"""Run an iterator one step ahead in a background thread: decoding the next block while the model runs on this one.

The decoders (soundfile, ffmpeg's pipe, soxr) and ONNX Runtime release the GIL, so on two cores a file's decode
and inference overlap. At most ``depth`` items wait, so memory stays flat on long inputs. The iterator is
advanced, and closed, only in the background thread; closing the consumer stops it and waits for it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` in order, produced ahead by a background thread; its exceptions are re-raised here."""
    pending: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        pending.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            pending.put((_DONE, None))
        except BaseException as e:  # handed to the consumer, which raises it
            pending.put((_DONE, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator's cleanup (ffmpeg killed) runs in the thread that ran it

    worker = threading.Thread(target=produce, name="musicgenre-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = pending.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting to put, then wait for it
            try:
                pending.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
