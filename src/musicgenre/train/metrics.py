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
