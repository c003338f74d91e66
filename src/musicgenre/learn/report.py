"""What ``musicgenre learn`` tells its user: the ``--report`` JSON, the model card's metrics and the
confusion-matrix picture.

The report's keys: ``genres`` (kept, with their file and artist counts), ``merged`` and ``dropped`` (the
vocabulary's decisions, with reasons), ``validation`` (out of fold: top-1, per genre precision, recall and n,
the confusion matrix, the confident share and its accuracy at the package's threshold; ``leaky`` with its
reasons when the folds could not keep artists apart), ``suspects`` (labelled files whose tag the out-of-fold
model contradicts with confidence, most certain first: the likely mis-tags), ``left_out`` (the files the final
head did not train on: their tag is doubtful), ``not_learned`` (genres all of whose tags are doubtful) and
``to_tag`` (files without a genre of their owner's, the model's least sure first: where a tag by hand teaches it
most).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.confusion import draw_confusion as draw_matrix
from ..evaluation.metrics import classification_report, confident_row, ece, wilson_interval
from .vocabulary import Leakage, Vocabulary

CONFUSION_PNG = "confusion_matrix.png"
# A suspect (listed for its owner): the out-of-fold model is at least 90% sure the tag is wrong. Doubtful (left
# out of the final fit): at least ``DEFAULT_MIN_CONFIDENCE`` sure. Chosen on the shared-data library
# (docs/learn.md, "Shown on the shared data").
SUSPECT_AT_MOST = 0.1
# A genre learned from fewer labelled files than this is listed as learned from few files, with the 95% interval
# of its recall: below 20 files that interval is wider than +-0.2 (the old default --min-files).
FEW_FILES = 20


@dataclass(frozen=True)
class LibraryCounts:
    """How many files the library held and what became of them (the report's ``library``)."""

    files: int
    labelled: int
    windows: int
    trained: int
    artists: int
    ambiguous: int
    untagged: int
    ours: int
    skipped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.skipped:
            del d["skipped"]
        return d


@dataclass(frozen=True)
class LearnReport:
    """What a ``learn`` run tells (module docstring); ``as_dict`` is the ``--report`` JSON."""

    model: str
    date: str
    database: str
    library: LibraryCounts
    genres: list[dict[str, Any]]
    merged: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    validation: dict[str, Any]
    open_set: dict[str, Any]
    suspects: list[dict[str, Any]]
    left_out: list[dict[str, Any]]
    not_learned: list[dict[str, Any]]
    to_tag: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "date": self.date, "database": self.database, "library": self.library.as_dict(),
                "genres": self.genres, "merged": self.merged, "dropped": self.dropped, "validation": self.validation,
                "open_set": self.open_set, "suspects": self.suspects, "left_out": self.left_out,
                "not_learned": self.not_learned, "to_tag": self.to_tag}


def validation(probs: np.ndarray, y: np.ndarray, window_logits: np.ndarray, window_y: np.ndarray,
               labels: Sequence[str], *, min_confidence: float, folds: int, groups: int, leak: Leakage,
               judged: np.ndarray) -> dict[str, Any]:
    """The out-of-fold figures: ``probs`` (files, L) calibrated clip scores, ``y`` the tags; ``window_logits``
    (windows, L) with ``window_y`` for the window top-1; ``judged`` the files whose tag the folds could judge
    (``fit.judged``)."""
    pred = probs.argmax(1)
    rep = classification_report(y, pred, list(labels))
    per_class = rep["per_class"]
    few = [{"genre": g, "files": m["support"], "recall": m["recall"],
            "recall_interval": list(wilson_interval(int(round(m["recall"] * m["support"])), m["support"]))}
           for g, m in per_class.items() if m["support"] < FEW_FILES]
    return {
        "protocol": (f"out of fold: {folds} folds of the labelled files grouped by artist (StratifiedGroupKFold); "
                     "each file scored by the head trained on the other folds, with the calibration fitted on "
                     "them, aggregated as predict does (scores.calibrated_clip_scores)"),
        "leaky": leak.leaky,
        **({"leaky_reasons": list(leak.reasons)} if leak.leaky else {}),
        "folds": folds, "groups": groups, "files": int(len(y)), "windows": int(len(window_y)),
        "judged": int(judged.sum()),
        "top1": round(rep["accuracy"], 4),
        "window_top1": round(float((window_logits.argmax(1) == window_y).mean()), 4),
        "macro_f1": round(rep["macro_f1"], 4),
        "ece": round(ece(probs, y), 4),
        "confident": {"min_confidence": min_confidence, **confident_row(probs, y, min_confidence)},
        "per_genre": {g: {"precision": m["precision"], "recall": m["recall"], "n": m["support"]}
                      for g, m in per_class.items()},
        "few_files": few,
        "confusion": {"labels": list(labels), "matrix": rep["confusion_matrix"],
                      "rows": "tagged genre", "columns": "predicted genre"},
    }


def contradicted(probs: np.ndarray, y: np.ndarray, judged: np.ndarray, at_most: float) -> np.ndarray:
    """Files whose tag the out-of-fold model contradicts: it could judge the tag (``fit.judged``), calls another
    genre and gives the tagged one at most ``at_most`` (it is at least 1 - ``at_most`` sure the tag is wrong).
    Not "another genre at 0.8": on a library whose genres overlap the model is rarely that sure of any one genre,
    yet quite sure which one a file is not (docs/learn.md)."""
    tagged = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
    return (probs.argmax(1) != y) & (tagged <= at_most) & judged


def listed(paths: Sequence[str], probs: np.ndarray, y: np.ndarray, labels: Sequence[str], which: np.ndarray
           ) -> list[dict[str, Any]]:
    """The files of mask ``which`` as the report lists them, most certain first (lowest probability of the tag;
    ties by path)."""
    tagged = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
    pred = probs.argmax(1) if len(y) else np.zeros(0, int)
    hits = sorted(np.flatnonzero(which).tolist(), key=lambda i: (float(tagged[i]), paths[i]))
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


def summary_lines(rep: LearnReport, name: str | Path, *, items: str = "files", report: str | Path | None = None
                  ) -> list[str]:
    """What ``learn`` prints (the CLI and the beets command): the out-of-fold figures, per genre, the drops and
    the counts of the report's lists. ``name``: the model directory (printed as one line, ``printable_name``);
    ``items``: what the library holds ("files", "items")."""
    from .._names import printable_name

    name = printable_name(name)
    val = rep.validation
    sure = val["confident"]
    right = "-" if sure["accuracy"] is None else f"{sure['accuracy']:.3f}"
    lines = [f"{name}: {len(rep.genres)} genres from {val['files']} {items} ({val['groups']} artists); out of fold "
             f"({val['folds']} folds by artist{', LEAKY' if val['leaky'] else ''}): top-1 {val['top1']:.3f}, "
             f"macro-F1 {val['macro_f1']:.3f}; confident (>= {sure['min_confidence']:g}) {sure['share']:.0%}, "
             f"right {right}"]
    lines += [f"  {genre:<20} precision {m['precision']:.3f}  recall {m['recall']:.3f}  n={m['n']}"
              for genre, m in val["per_genre"].items()]
    lines += [f"  few {items}: {f['genre']} ({f['files']}): its recall {f['recall']:.3f} lies between "
              f"{f['recall_interval'][0]:.2f} and {f['recall_interval'][1]:.2f} (95%)" for f in val["few_files"]]
    lines += [f"  dropped {d['genre']}: {d['reason']}" for d in rep.dropped]
    lines += [f"  not learned {d['genre']} ({d['files']} {items}): {d['reason']}" for d in rep.not_learned]
    left = len(rep.left_out)
    lines.append(f"{len(rep.suspects)} likely mis-tags, {len(rep.to_tag)} {items} to tag"
                 + (f", {left} {items} with a doubtful tag not trained on" if left else "")
                 + (f": {report}" if report else " (--report R.json lists them)"))
    return lines


def draw_confusion(val: dict[str, Any], png: Path) -> None:
    """The out-of-fold confusion matrix as a PNG: rows the owner's tags, columns the predictions, counts in the
    cells, shaded by the share of each tag's files (so that small genres show their errors too)."""
    leaky = "\nLEAKY: the folds could not keep artists apart" if val["leaky"] else ""
    draw_matrix(np.array(val["confusion"]["matrix"]), val["confusion"]["labels"], png,
                title=f"{val['files']} files, {val['folds']} folds by artist\ntop-1 {val['top1']:.3f}, macro-F1 "
                      f"{val['macro_f1']:.3f}{leaky}", xlabel="predicted (out of fold)", ylabel="tagged")
