"""Runtime backends that run a loaded model on batches of windows.

Each backend is a :class:`Runner`: ``backend`` and ``device`` names and ``run(x: np.ndarray) -> {"logits": ...,
"tags": ...}`` returning numpy arrays. ``onnx`` (ONNX Runtime, the default on CPU for shipped models) needs no
torch; ``torch`` runs any architecture, on CPU or CUDA. This module imports neither.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Runner(Protocol):
    """A model on a backend: (n, ...) float32 windows -> raw outputs by name (``logits``, optionally ``tags``)."""

    @property
    def backend(self) -> str:
        """The backend's name: ``onnx`` or ``torch``."""
        ...

    @property
    def device(self) -> str:
        """Where it runs: ``cpu`` or ``cuda``."""
        ...

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """(n, ...) float32 windows -> raw outputs by name, numpy, n rows each."""
        ...


def threads_per_worker(workers: int) -> int | None:
    """Intra-op threads for a model that ``workers`` files use at once: None (the backend's default) while the
    workers leave cores to spare, else the cores each worker gets (at least one). Each worker already has two
    busy threads (its decoder runs ahead in ``prefetch``), so more inference threads than cores only add
    hand-offs: on 2 cores, two files at a time with one thread each classify a folder 2-3% faster than with
    the default two (benchmarks/bench_floor.py)."""
    from .onnx import DEFAULT_THREADS

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // max(1, workers))
    return None if workers <= 1 or share >= DEFAULT_THREADS else share


__all__ = ["Runner", "threads_per_worker"]
