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


# Input lengths (in 3-s windows) the calibration is reported at, next to whole clips: a lone window (a 3-s
# excerpt, the timeline), a 9-s input, a 30-s clip.
REPORT_LENGTHS = (1, 3, 10)


# Length temperatures searched (log-spaced): the mean of ten windows can need a much lower one than a window.
LENGTH_GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))


def runs(n_windows: int, n: int, *, step: int = 1) -> list[slice]:
    """The runs of ``n`` consecutive windows of a clip of ``n_windows`` windows, starting every ``step`` windows."""
    return [slice(i, i + n) for i in range(0, n_windows - n + 1, step)]


def run_probabilities(clip_logits: list[np.ndarray], n: int | None, temperature: float | np.ndarray, *,
                      step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The aggregated scores of sub-clips, before the length temperature: the mean over a run of ``n``
    consecutive windows of softmax(logits / temperature) (``n`` None: each whole clip), as ``predict``
    aggregates an input of that many windows. ``temperature``: one, or one per clip; ``step`` (default ``n``:
    runs do not overlap) spaces the runs; clips shorter than ``n`` give none. Returns (runs, L) and each
    run's clip index."""
    from ..scores import clip_scores, softmax

    ts = np.broadcast_to(np.asarray(temperature, dtype=float), (len(clip_logits),))
    probs, owner = [], []
    for i, z in enumerate(clip_logits):
        p = softmax(z, float(ts[i]))
        length = len(z) if n is None else n
        for r in runs(len(z), length, step=step or length):
            probs.append(clip_scores(p[r], np.ones(length, bool)))
            owner.append(i)
    width = clip_logits[0].shape[1] if clip_logits else 0
    return np.array(probs, dtype=np.float32).reshape(-1, width), np.array(owner, dtype=int)


def fit_window_temperatures(clip_logits: list[np.ndarray], y: np.ndarray, temperature: float, *,
                            max_windows: int = 10, grid: np.ndarray | None = None) -> list[float]:
    """The length temperatures: entry ``n - 1`` minimises the negative log-likelihood of
    ``pipeline.recalibrate`` of the aggregated scores (window ``temperature``) of every run of ``n``
    consecutive windows (overlapping, step 1) of the clips that long, for n = 1 .. ``max_windows``; longer
    inputs use the last. Sub-clips of the validation clips stand for the short inputs users send (a 3-s
    excerpt, a 10-s recording)."""
    from ..scores import recalibrate

    grid = LENGTH_GRID if grid is None else grid
    temps: list[float] = []
    for n in range(1, max_windows + 1):
        probs, owner = run_probabilities(clip_logits, n, temperature, step=1)
        if not len(owner):
            break
        def at(t: float, p: np.ndarray = probs) -> np.ndarray:
            return recalibrate(p, t)

        temps.append(fit_temperature(at, y[owner], grid))
    return temps


def fit_calibration(clip_logits: list[np.ndarray], y: np.ndarray, *, aggregate_at: str = "window",
                    max_windows: int = 10) -> tuple[float, list[float]]:
    """The whole calibration of a model from its validation clips' window logits: the window temperature
    (softmax before the mean over windows) and the length temperatures (``fit_window_temperatures``).

    ``aggregate_at`` "window": the window temperature calibrates single windows (every window of every clip),
    so the mean is taken over calibrated window probabilities; "clip": it is fitted on whole clips (models up
    to 2.2, one temperature for every length)."""
    if aggregate_at not in ("window", "clip"):
        raise ValueError(f"aggregate_at must be window or clip, not {aggregate_at!r}")
    n = 1 if aggregate_at == "window" else None
    owner = run_probabilities(clip_logits, n, 1.0, step=1)[1]
    t0 = fit_temperature(lambda t: run_probabilities(clip_logits, n, t, step=1)[0], y[owner])
    return t0, fit_window_temperatures(clip_logits, y, t0, max_windows=max_windows)


def crossfit_temperatures(clip_logits: list[np.ndarray], y: np.ndarray, groups: np.ndarray, *,
                          folds: int = 5, max_windows: int = 10, aggregate_at: str = "window"
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold calibration: each clip gets the ``fit_calibration`` of the clips outside its fold (folds by
    artist group), so a report on these clips does not grade the calibration on its own fitting data.
    Returns (clips,) window temperatures and (clips, max_windows) length temperatures."""
    names = sorted(set(groups.tolist()))
    fold = np.array([names.index(g) % folds for g in groups.tolist()])
    t0 = np.ones(len(clip_logits))
    by_n = np.ones((len(clip_logits), max_windows))
    for k in range(folds):
        inside = fold == k
        if not inside.any():
            continue
        rest = [z for z, f in zip(clip_logits, fold) if f != k]
        t, temps = fit_calibration(rest, y[fold != k], aggregate_at=aggregate_at, max_windows=max_windows)
        t0[inside] = t
        by_n[inside] = temps + [temps[-1]] * (max_windows - len(temps))
    return t0, by_n


def length_report(clip_logits: list[np.ndarray], y: np.ndarray, temperature: float | np.ndarray,
                  by_windows: np.ndarray, *, min_confidence: float,
                  lengths: tuple[int, ...] = REPORT_LENGTHS) -> dict[str, Any]:
    """Per input length (``lengths`` windows: non-overlapping runs of the clips; and ``whole`` clips): n, the
    clips they come from, top-1, ECE with its small-sample floor (``calibrated_ece``), the mean confidence,
    and the confident calls (top score >= ``min_confidence``): their share (coverage) and how often they are
    right, all as ``predict`` scores an input of that length. ``temperature``: the window temperature (one or
    one per clip); ``by_windows``: (K,) or (clips, K) length temperatures."""
    from ..scores import recalibrate, window_count_temperature

    by = np.broadcast_to(np.asarray(by_windows, dtype=float), (len(clip_logits), np.shape(by_windows)[-1]))
    out: dict[str, Any] = {}
    for n in (*lengths, None):
        raw, owner = run_probabilities(clip_logits, n, temperature)
        key = "whole" if n is None else str(n)
        if not len(owner):
            out[key] = {"n": 0}
            continue
        probs = np.stack([recalibrate(p, window_count_temperature(by[i], len(clip_logits[i]) if n is None else n))
                          for p, i in zip(raw, owner)])
        out[key] = {**length_row(probs, y[owner], min_confidence), "clips": int(len(set(owner.tolist()))),
                    "windows": n}
    out["min_confidence"] = min_confidence
    return out


def length_row(probs: np.ndarray, y: np.ndarray, min_confidence: float) -> dict[str, Any]:
    """One row of the per-length table: n, top-1, ECE and its floor, mean confidence, and the confident calls'
    share (coverage) and accuracy (and the uncertain ones')."""
    top, right = probs.max(1), probs.argmax(1) == y
    sure = top >= min_confidence
    return {
        "n": int(len(y)), "accuracy": round(float(right.mean()), 4), "ece": round(ece(probs, y), 4),
        "ece_if_calibrated": calibrated_ece(probs), "mean_confidence": round(float(top.mean()), 4),
        "confident_share": round(float(sure.mean()), 4),
        "confident_accuracy": round(float(right[sure].mean()), 4) if sure.any() else None,
        "uncertain_accuracy": round(float(right[~sure].mean()), 4) if (~sure).any() else None,
    }


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
