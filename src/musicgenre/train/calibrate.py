"""Calibration: temperature scaling fitted on validation clips, expected calibration error (ECE)
and the reliability diagram."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def fit_temperature(clip_probs: Callable[[float], np.ndarray], y: np.ndarray,
                    grid: np.ndarray | None = None) -> float:
    """The temperature minimising the clip-level negative log-likelihood.

    ``clip_probs(t)`` returns the clips' scores at temperature ``t`` exactly as ``predict`` makes
    them (softmax of logits / t per window, then the mean over windows), so the fit calibrates the
    probabilities users see, not the windows'. A grid search: the loss is one-dimensional and cheap.
    """
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61)) if grid is None else grid
    losses = [float(-np.mean(np.log(clip_probs(t)[np.arange(len(y)), y] + 1e-12))) for t in grid]
    return float(grid[int(np.argmin(losses))])


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of the top-1 confidence, equal-width bins."""
    return _binned_ece(probs.max(axis=1), probs.argmax(axis=1) == y, n_bins)


def calibrated_ece(probs: np.ndarray, n_bins: int = 10, n_sim: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The ECE a perfectly calibrated model with these top-1 confidences would show on this many clips
    (mean and 95th percentile of simulations where each call is right with probability its confidence).

    Binned ECE is biased upward on small sets (a bin of 7 clips cannot match its confidence exactly), so a
    measured ECE is read against this figure, not against 0.
    """
    conf = probs.max(axis=1)
    rng = np.random.default_rng(seed)
    sims = [_binned_ece(conf, rng.random(len(conf)) < conf, n_bins) for _ in range(n_sim)]
    return round(float(np.mean(sims)), 4), round(float(np.quantile(sims, 0.95)), 4)


def _binned_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.mean() * abs(float(correct[m].mean()) - float(conf[m].mean()))
    return float(total)


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict[str, Any]]:
    """Per confidence bin: n, mean confidence, accuracy (the reliability diagram's data)."""
    conf, correct = probs.max(axis=1), (probs.argmax(axis=1) == y)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    return [{"low": b / n_bins, "high": (b + 1) / n_bins, "n": int((bins == b).sum()),
             "confidence": float(conf[bins == b].mean()) if (bins == b).any() else None,
             "accuracy": float(correct[bins == b].mean()) if (bins == b).any() else None}
            for b in range(n_bins)]


def plot_reliability(rows: list[dict[str, Any]], png: Path, *, title: str, ece_value: float,
                     ece_floor: float | None = None) -> None:
    from matplotlib.figure import Figure

    from .._io import save_figure

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    filled = [r for r in rows if r["n"]]
    ax.bar([(r["low"] + r["high"]) / 2 for r in filled], [r["accuracy"] for r in filled], width=0.09,
           alpha=0.7, label="accuracy in bin")
    ax.plot([r["confidence"] for r in filled], [r["accuracy"] for r in filled], "o-", color="C1",
            label="mean confidence")
    for r in filled:
        ax.text((r["low"] + r["high"]) / 2, 0.02, str(r["n"]), ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top-1 confidence")
    ax.set_ylabel("accuracy")
    floor = "" if ece_floor is None else f"; a perfectly calibrated model: {ece_floor:.3f} at this n"
    ax.set_title(f"{title}\nECE {ece_value:.3f}{floor}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)
