"""Classification metrics in numpy (no scikit-learn at run time), shared by both trainers: accuracy, macro-F1,
per-class figures and the confusion matrix, bootstrap intervals, the confident row and the Wilson interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    m = confusion(np.asarray(y_true), np.asarray(y_pred), len(labels))
    tp = np.diag(m).astype(float)
    precision = np.divide(tp, m.sum(0), out=np.zeros_like(tp), where=m.sum(0) > 0)
    recall = np.divide(tp, m.sum(1), out=np.zeros_like(tp), where=m.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    present = m.sum(1) > 0
    return {
        "accuracy": float(tp.sum() / max(1, m.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {lab: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                            "support": int(s)} for lab, p, r, f, s in zip(labels, precision, recall, f1, m.sum(1))},
        "confusion_matrix": m.tolist(),
        "labels": labels,
    }


def plot_confusion(rep: dict[str, Any], png: Path, title: str = "Confusion matrix") -> None:
    """``classification_report``'s confusion matrix as a PNG (``confusion.draw_confusion``), titled with its
    accuracy."""
    from .confusion import draw_confusion

    draw_confusion(np.array(rep["confusion_matrix"]), rep["labels"], png,
                   title=f"{title}: accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f}")


def confident_row(probs: np.ndarray, y: np.ndarray, min_confidence: float) -> dict[str, float | None]:
    """The confident calls (top score >= ``min_confidence``): their ``share`` (coverage), how often they are right
    (``accuracy``) and how often the others are (``uncertain_accuracy``); None where there are none."""
    right = probs.argmax(1) == y
    sure = probs.max(1) >= min_confidence
    return {"share": round(float(sure.mean()), 4),
            "accuracy": round(float(right[sure].mean()), 4) if sure.any() else None,
            "uncertain_accuracy": round(float(right[~sure].mean()), 4) if (~sure).any() else None}


def wilson_interval(successes: int, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% at ``z`` 1.96) of a proportion of ``n`` trials: how sure a per-genre
    recall of few files is (it stays inside 0..1 and is honest at 0 or n successes, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(float(max(0.0, centre - half)), 4), round(float(min(1.0, centre + half)), 4)


def bootstrap_interval(y_true: np.ndarray, y_pred: np.ndarray, stat: Any, *, n_boot: int = 1000, seed: int = 0,
                       groups: np.ndarray | None = None) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``stat(y_true, y_pred)``, resampling clips (or whole
    ``groups``, e.g. artists, when given: clips of one artist are not independent)."""
    rng = np.random.default_rng(seed)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    members = None if groups is None else [np.flatnonzero(groups == u) for u in np.unique(groups)]
    vals = []
    for _ in range(n_boot):
        if members is None:
            idx = rng.integers(0, len(y_true), len(y_true))
        else:
            idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        vals.append(stat(y_true[idx], y_pred[idx]))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def full_report(y_true: np.ndarray, probs: np.ndarray, labels: list[str], *, groups: np.ndarray | None = None,
                n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``classification_report`` plus top-3 accuracy, ECE (and what a perfectly calibrated model would show at this
    n), the reliability table, n and bootstrap 95% intervals (accuracy, macro-F1, ECE, per-class recall)."""
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    rep = classification_report(y_true, y_pred, labels)
    top3 = np.argsort(-probs, axis=1)[:, :3]
    rep["top3_accuracy"] = float(np.mean([t in row for t, row in zip(y_true, top3)]))
    rep["ece"] = ece(probs, y_true)
    rep["ece_if_calibrated"] = calibrated_ece(probs)  # (mean, 95th percentile): the ECE's floor at this n
    rep["reliability"] = reliability(probs, y_true)
    rep["n"] = int(len(y_true))
    idx = np.arange(len(y_true))
    ci = {
        "accuracy": bootstrap_interval(y_true, y_pred, lambda t, p: float(np.mean(t == p)), n_boot=n_boot,
                                       seed=seed, groups=groups),
        "macro_f1": bootstrap_interval(y_true, y_pred, lambda t, p: classification_report(t, p, labels)["macro_f1"],
                                       n_boot=n_boot, seed=seed, groups=groups),
        "ece": bootstrap_interval(idx, idx, lambda i, _: ece(probs[i], y_true[i]), n_boot=n_boot, seed=seed,
                                  groups=groups),
    }
    for k, lab in enumerate(labels):
        if (y_true == k).any():
            ci[f"recall/{lab}"] = bootstrap_interval(
                y_true[y_true == k], y_pred[y_true == k], lambda t, p: float(np.mean(t == p)), n_boot=n_boot,
                seed=seed, groups=None if groups is None else groups[y_true == k])
    rep["ci95"] = ci
    rep["ci_resampling"] = "artist groups" if groups is not None else "clips"
    return rep


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
