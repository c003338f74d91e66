"""Classification metrics in numpy (no scikit-learn at run time) and the confusion-matrix picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._io import save_figure


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
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
    from matplotlib.figure import Figure


    m = np.array(rep["confusion_matrix"])
    labels = rep["labels"]
    fig = Figure(figsize=(1 + 0.6 * len(labels), 1 + 0.55 * len(labels)), dpi=100)
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, m[i, j], ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f}")
    fig.tight_layout()
    save_figure(fig, png)


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
    """``report`` plus top-3 accuracy, ECE (and what a perfectly calibrated model would show at this n), the
    reliability table, n and bootstrap 95% intervals (accuracy, macro-F1, ECE, per-class recall)."""
    from .calibrate import calibrated_ece, ece, reliability

    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    rep = report(y_true, y_pred, labels)
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
        "macro_f1": bootstrap_interval(y_true, y_pred, lambda t, p: report(t, p, labels)["macro_f1"],
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
