"""Calibration, numpy only (no torch, no scikit-learn), shared by both trainers (``train`` and ``learn``):
temperature scaling fitted on validation clips' window logits, the per-length temperatures, the expected
calibration error (ECE) and the reliability diagram.

**The one fit** (``fit_calibration``): the window temperature (softmax of single windows; ``aggregate_at="clip"``:
of whole clips' means, the models up to 2.2), then for n = 1 .. ``MAX_WINDOWS`` the length temperature of every
run of n consecutive windows (``scores.recalibrate`` of their mean), as ``predict`` aggregates an input of that
many windows. Vectorised: the runs of all clips of one length are computed at once with a cumulative sum
(``run_probabilities``), and the convex losses are searched on a coarse grid first (``grid_temperature``): the
same temperatures a loop over every run at every grid point gives (tests/test_calibration.py holds that loop),
in seconds for 10,000 files instead of minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..scores import recalibrate, window_count_temperature
from .metrics import calibrated_ece, confident_row, ece

MAX_WINDOWS = 10  # length temperatures fitted: T_1 .. T_10, longer inputs use T_10
# Window temperatures searched (log-spaced); the length temperatures' grid is wider: the mean of ten windows can
# need a much lower one than a window.
WINDOW_GRID = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
LENGTH_GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
# Input lengths (in 3-s windows) the calibration is reported at, next to whole clips: a lone window (a 3-s
# excerpt, the timeline), a 9-s input, a 30-s clip.
REPORT_LENGTHS = (1, 3, 10)


def fit_temperature(clip_probs: Callable[[float], np.ndarray], y: np.ndarray,
                    grid: np.ndarray | None = None) -> float:
    """The temperature minimising the negative log-likelihood of ``clip_probs(t)`` (the clips' scores at
    temperature ``t`` exactly as ``predict`` makes them), searched over the whole ``grid`` (default
    ``WINDOW_GRID``): for losses not known to be convex in 1 / t (the mean of window softmaxes)."""
    grid = WINDOW_GRID if grid is None else grid
    losses = [float(-np.mean(np.log(clip_probs(t)[np.arange(len(y)), y] + 1e-12))) for t in grid]
    return float(grid[int(np.argmin(losses))])


def runs(n_windows: int, n: int, *, step: int = 1) -> list[slice]:
    """The runs of ``n`` consecutive windows of a clip of ``n_windows`` windows, starting every ``step`` windows."""
    return [slice(i, i + n) for i in range(0, n_windows - n + 1, step)]


def _by_length(clip_logits: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """Clip indices by number of windows."""
    lengths = np.array([len(z) for z in clip_logits])
    return {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}


def run_probabilities(clip_logits: Sequence[np.ndarray], n: int | None, temperature: float | np.ndarray, *,
                      step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The aggregated scores of sub-clips, before the length temperature: the mean over a run of ``n``
    consecutive windows of softmax(logits / temperature) (``n`` None: each whole clip), as ``predict``
    aggregates an input of that many windows. ``temperature``: one, or one per clip; ``step`` (default ``n``:
    runs do not overlap) spaces the runs; clips shorter than ``n`` give none. Returns (runs, L) float32 and each
    run's clip index, in clip order (a clip's runs in order)."""
    width = clip_logits[0].shape[1] if len(clip_logits) else 0
    ts = np.broadcast_to(np.asarray(temperature, dtype=np.float64), (len(clip_logits),))
    probs, owner = [], []
    for k, clips in _by_length(clip_logits).items():
        length = k if n is None else n
        if k < length or length < 1:
            continue
        z = np.stack([clip_logits[i] for i in clips]).astype(np.float64) / ts[clips][:, None, None]
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        p = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32).astype(np.float64)  # scores.softmax's float32
        c = np.concatenate([np.zeros((len(clips), 1, width)), np.cumsum(p, axis=1)], axis=1)
        means = ((c[:, length:] - c[:, :-length]) / length)[:, ::step or length]  # (clips, runs, L)
        probs.append(means.reshape(-1, width).astype(np.float32))
        owner.append(np.repeat(clips, means.shape[1]))
    if not probs:
        return np.zeros((0, width), np.float32), np.zeros(0, int)
    probs_all, owner_all = np.concatenate(probs), np.concatenate(owner)
    order = np.argsort(owner_all, kind="stable")
    return probs_all[order], owner_all[order]


def scaled_nll(logits: np.ndarray, y: np.ndarray) -> Callable[[float], float]:
    """t -> -mean(log(softmax(logits / t)[i, y_i] + 1e-12)): the loss ``fit_temperature`` minimises for
    ``softmax(logits, t)`` (and, for ``logits`` = log-probabilities, for ``recalibrate(probs, t)``), with the row
    maxima taken once instead of at every trial temperature (the max of logits / t is max(logits) / t)."""
    z = np.asarray(logits, np.float64)
    d = z - z.max(axis=1, keepdims=True)
    rows = np.arange(len(y))
    picked = d[rows, y]

    def loss(t: float) -> float:
        total = np.exp(d / t).sum(axis=1)
        return float(-np.mean(np.log(np.exp(picked / t) / total + 1e-12)))

    return loss


def grid_temperature(loss: Callable[[float], float], grid: np.ndarray, *, stride: int = 8) -> float:
    """The grid temperature of least ``loss`` (``fit_temperature``'s search) in about a quarter of the
    evaluations: every ``stride``-th grid point, then every point within ``stride`` of the best. The same answer:
    the negative log-likelihood of temperature-scaled logits is convex in 1 / temperature, so along the grid it
    falls, then rises, and its minimum lies within ``stride`` points of the coarse one."""
    cache: dict[int, float] = {}

    def at(i: int) -> tuple[float, int]:
        if i not in cache:
            cache[i] = loss(float(grid[i]))
        return cache[i], i

    coarse = list(range(0, len(grid), stride))
    if coarse[-1] != len(grid) - 1:
        coarse.append(len(grid) - 1)
    best = min(coarse, key=at)
    return float(grid[min(range(max(0, best - stride + 1), min(len(grid), best + stride)), key=at)])


def fit_window_temperatures(clip_logits: Sequence[np.ndarray], y: np.ndarray, temperature: float, *,
                            max_windows: int = MAX_WINDOWS, grid: np.ndarray | None = None) -> list[float]:
    """The length temperatures: entry ``n - 1`` minimises the negative log-likelihood of ``scores.recalibrate``
    of the aggregated scores (window ``temperature``) of every run of ``n`` consecutive windows (overlapping,
    step 1) of the clips that long, for n = 1 .. ``max_windows``; longer inputs use the last. Sub-clips of the
    validation clips stand for the short inputs users send (a 3-s excerpt, a 10-s recording)."""
    grid = LENGTH_GRID if grid is None else grid
    y = np.asarray(y)
    temps: list[float] = []
    for n in range(1, max_windows + 1):
        probs, owner = run_probabilities(clip_logits, n, temperature, step=1)
        if not len(owner):
            break
        log_probs = np.log(np.maximum(probs.astype(np.float64), 1e-30))  # recalibrate's logits
        temps.append(grid_temperature(scaled_nll(log_probs, y[owner]), grid))
    return temps


def fit_calibration(clip_logits: Sequence[np.ndarray], y: np.ndarray, *, aggregate_at: str = "window",
                    max_windows: int = MAX_WINDOWS) -> tuple[float, list[float]]:
    """The whole calibration of a model from its validation clips' window logits: the window temperature
    (softmax before the mean over windows) and the length temperatures (``fit_window_temperatures``).

    ``aggregate_at`` "window": the window temperature calibrates single windows (every window of every clip),
    so the mean is taken over calibrated window probabilities; "clip": it is fitted on whole clips (models up
    to 2.2, one temperature for every length)."""
    if aggregate_at not in ("window", "clip"):
        raise ValueError(f"aggregate_at must be window or clip, not {aggregate_at!r}")
    y = np.asarray(y)
    if aggregate_at == "window":
        flat = np.concatenate(list(clip_logits))
        t0 = grid_temperature(scaled_nll(flat, np.repeat(y, [len(z) for z in clip_logits])), WINDOW_GRID)
    else:  # the mean of softmaxes is not convex in 1 / t: the whole grid
        t0 = fit_temperature(lambda t: run_probabilities(clip_logits, None, t)[0], y)
    return t0, fit_window_temperatures(clip_logits, y, t0, max_windows=max_windows)


def crossfit_temperatures(clip_logits: Sequence[np.ndarray], y: np.ndarray, fold: np.ndarray, *,
                          max_windows: int = MAX_WINDOWS, aggregate_at: str = "window"
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold calibration: each clip gets the ``fit_calibration`` of the clips outside its fold (``fold``:
    each clip's fold, ``folds.assign_folds``: by artist), so a report on these clips does not grade the
    calibration on its own fitting data. Returns (clips,) window temperatures and (clips, max_windows) length
    temperatures."""
    y, fold = np.asarray(y), np.asarray(fold)
    t0 = np.ones(len(clip_logits))
    by_n = np.ones((len(clip_logits), max_windows))
    for f in np.unique(fold):
        rest = np.flatnonzero(fold != f)
        t, temps = fit_calibration([clip_logits[int(i)] for i in rest], y[rest], aggregate_at=aggregate_at,
                                   max_windows=max_windows)
        held = fold == f
        t0[held] = t
        by_n[held] = temps + [temps[-1]] * (max_windows - len(temps))
    return t0, by_n


def rounded(temps: Sequence[float]) -> list[float]:
    """Temperatures as a card records them (4 significant digits)."""
    return [float(f"{t:.4g}") for t in temps]


def length_report(clip_logits: list[np.ndarray], y: np.ndarray, temperature: float | np.ndarray,
                  by_windows: np.ndarray, *, min_confidence: float,
                  lengths: tuple[int, ...] = REPORT_LENGTHS) -> dict[str, Any]:
    """Per input length (``lengths`` windows: non-overlapping runs of the clips; and ``whole`` clips): n, the
    clips they come from, top-1, ECE with its small-sample floor (``calibrated_ece``), the mean confidence,
    and the confident calls (top score >= ``min_confidence``): their share (coverage) and how often they are
    right, all as ``predict`` scores an input of that length. ``temperature``: the window temperature (one or
    one per clip); ``by_windows``: (K,) or (clips, K) length temperatures."""
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
    sure = confident_row(probs, y, min_confidence)
    return {
        "n": int(len(y)), "accuracy": round(float((probs.argmax(1) == y).mean()), 4), "ece": round(ece(probs, y), 4),
        "ece_if_calibrated": calibrated_ece(probs), "mean_confidence": round(float(probs.max(1).mean()), 4),
        "confident_share": sure["share"], "confident_accuracy": sure["accuracy"],
        "uncertain_accuracy": sure["uncertain_accuracy"],
    }


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
