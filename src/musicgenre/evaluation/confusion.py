"""The confusion-matrix picture, one for both trainers: rows the true (tagged) genre, columns the predicted one,
counts in the cells, shaded by the share of each row's clips (so that small genres show their errors too).
matplotlib (the ``plots`` extra) loads only when a picture is drawn."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def can_draw() -> bool:
    """Whether matplotlib (the ``plots`` extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def draw_confusion(matrix: np.ndarray, labels: Sequence[str], png: Path, *, title: str, xlabel: str = "predicted",
                   ylabel: str = "true") -> None:
    """Write ``matrix`` (rows ``ylabel``, columns ``xlabel``, counts) as a PNG titled ``title``."""
    from matplotlib.figure import Figure

    from .._io import save_figure

    m = np.asarray(matrix)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    side = max(4.5, 1.6 + 0.55 * len(labels))
    fig = Figure(figsize=(side + 0.6, side), dpi=100)
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, png)
