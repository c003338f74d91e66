"""Runtime backends that run a loaded model on batches of windows.

Each backend is a :class:`Runner`: ``backend`` and ``device`` names and ``run(x: np.ndarray) -> {"logits": ...,
"tags": ...}`` returning numpy arrays. ``onnx`` (ONNX Runtime, the default on CPU for shipped models) needs no
torch; ``torch`` runs any architecture, on CPU or CUDA. This module imports neither.
"""

from __future__ import annotations

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


__all__ = ["Runner"]
