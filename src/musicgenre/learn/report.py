"""What ``musicgenre learn`` tells its user: the ``--report`` JSON, the model card's metrics and the
confusion-matrix picture.

The report's keys: ``genres`` (kept, with their file and artist counts), ``merged`` and ``dropped`` (the
vocabulary's decisions, with reasons), ``validation`` (out of fold: top-1, per genre precision, recall and n,
the confusion matrix, the confident share and its accuracy at the package's threshold; ``leaky`` with its
reasons when the folds could not keep artists apart), ``suspects`` (labelled files whose tag the out-of-fold
model contradicts with confidence, most certain first: the likely mis-tags) and ``to_tag`` (files without a
genre of their owner's, the model's least sure first: where a tag by hand teaches it most).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..train.calibrate import ece
from ..train.metrics import report
from .vocabulary import Leakage, Vocabulary

CONFUSION_PNG = "confusion_matrix.png"


def validation(probs: np.ndarray, y: np.ndarray, window_logits: np.ndarray, window_y: np.ndarray,
               labels: Sequence[str], *, min_confidence: float, folds: int, groups: int, leak: Leakage
               ) -> dict[str, Any]:
    """The out-of-fold figures: ``probs`` (files, L) calibrated clip scores, ``y`` the tags; ``window_logits``
    (windows, L) with ``window_y`` for the window top-1."""
    pred = probs.argmax(1)
    rep = report(y, pred, list(labels))
    top = probs.max(1)
    sure = top >= min_confidence
    right = pred == y
    return {
        "protocol": (f"out of fold: {folds} folds of the labelled files grouped by artist (StratifiedGroupKFold); "
                     "each file scored by the head trained on the other folds, with the calibration fitted on "
                     "them, aggregated as predict does (scores.calibrated_clip_scores)"),
        "leaky": leak.leaky,
        **({"leaky_reasons": list(leak.reasons)} if leak.leaky else {}),
        "folds": folds, "groups": groups, "files": int(len(y)), "windows": int(len(window_y)),
        "top1": round(rep["accuracy"], 4),
        "window_top1": round(float((window_logits.argmax(1) == window_y).mean()), 4),
        "macro_f1": round(rep["macro_f1"], 4),
        "ece": round(ece(probs, y), 4),
        "confident": {
            "min_confidence": min_confidence, "share": round(float(sure.mean()), 4),
            "accuracy": round(float(right[sure].mean()), 4) if sure.any() else None,
            "uncertain_accuracy": round(float(right[~sure].mean()), 4) if (~sure).any() else None,
        },
        "per_genre": {g: {"precision": m["precision"], "recall": m["recall"], "n": m["support"]}
                      for g, m in rep["per_class"].items()},
        "confusion": {"labels": list(labels), "matrix": rep["confusion_matrix"],
                      "rows": "tagged genre", "columns": "predicted genre"},
    }


def suspects(paths: Sequence[str], probs: np.ndarray, y: np.ndarray, labels: Sequence[str], *,
             min_confidence: float) -> list[dict[str, Any]]:
    """Labelled files whose tag the out-of-fold model contradicts with confidence: it gives the tagged genre at
    most ``1 - min_confidence`` (it is at least ``min_confidence`` sure the tag is wrong) and calls another
    genre; most certain first (lowest probability of the tag; ties by path). Not "another genre at
    ``min_confidence``": on a library whose genres overlap the model is rarely that sure of any one genre, yet
    quite sure which one a file is not (docs/learn.md)."""
    pred = probs.argmax(1)
    tagged = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
    hits = [i for i in range(len(y)) if pred[i] != y[i] and tagged[i] <= 1.0 - min_confidence]
    hits.sort(key=lambda i: (float(tagged[i]), paths[i]))
    return [{"path": paths[i], "tagged": labels[y[i]], "predicted": labels[pred[i]],
             "probability": round(float(probs[i, pred[i]]), 4),
             "tagged_probability": round(float(tagged[i]), 4)} for i in hits]


def to_tag(paths: Sequence[str], probs: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    """Files without a genre of their owner's, the final model's least sure first (ties by path)."""
    top = probs.max(1) if len(paths) else np.zeros(0)
    order = sorted(range(len(paths)), key=lambda i: (float(top[i]), paths[i]))
    return [{"path": paths[i], "predicted": labels[int(probs[i].argmax())], "probability": round(float(top[i]), 4)}
            for i in order]


def vocabulary_summary(vocab: Vocabulary) -> dict[str, Any]:
    """The ``genres``, ``merged`` and ``dropped`` keys."""
    return {
        "genres": [{"genre": g.name, "files": g.files, "artists": g.artists, "ambiguous": g.shared}
                   for g in vocab.kept],
        "merged": [m.as_dict() for m in vocab.merged],
        "dropped": [{"genre": d.genre, "files": d.files, "artists": d.artists, "reason": d.reason}
                    for d in vocab.dropped],
    }


def can_draw() -> bool:
    """Whether matplotlib (the ``plots`` extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def draw_confusion(val: dict[str, Any], png: Path) -> None:
    """The out-of-fold confusion matrix as a PNG: rows the owner's tags, columns the predictions, counts in the
    cells, shaded by the share of each tag's files (so that small genres show their errors too)."""
    from matplotlib.figure import Figure

    from .._io import save_figure

    m = np.array(val["confusion"]["matrix"])
    labels = val["confusion"]["labels"]
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
    ax.set_xlabel("predicted (out of fold)")
    ax.set_ylabel("tagged")
    leaky = "\nLEAKY: the folds could not keep artists apart" if val["leaky"] else ""
    ax.set_title(f"{val['files']} files, {val['folds']} folds by artist\ntop-1 {val['top1']:.3f}, macro-F1 "
                 f"{val['macro_f1']:.3f}{leaky}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, png)
