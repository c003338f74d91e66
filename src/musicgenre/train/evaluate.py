"""`musicgenre evaluate`: a saved model on a dataset split, through the same Classifier as `predict`.

The report has per-class precision/recall, macro-F1, top-3 accuracy, ECE, n, and bootstrap 95%
intervals (resampling artist groups when the examples carry them, else clips), plus the
confusion-matrix and reliability-diagram PNGs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_json
from ..data import Example
from ..errors import MusicGenreError, ParameterError
from .calibrate import plot_reliability
from .metrics import full_report, plot_confusion


def recipe_examples(recipe_path: Path, subset: str, source: str = "all") -> tuple[list[Example], list[str], str]:
    """The examples of a recipe's corpus partition (GTZAN fault-filtered, Emotify by artist), its labels
    and a display name. GTZAN clips are their own group (the split lists keep artists apart)."""
    from .recipe import Recipe, missing_data

    recipe = Recipe.load(recipe_path)
    missing = missing_data(recipe)
    if missing:
        raise ParameterError(f"recipe data not found: {', '.join(missing)}")
    clips = [c for c in recipe.clips() if (subset == "all" and c.split) or c.split == subset]
    clips = [c for c in clips if source == "all" or c.source == source]
    return ([Example(c.path, c.label, c.split, c.group, c.key) for c in clips], list(recipe.labels),
            f"{recipe.name} corpus [{source}]")


def evaluate(model: str | Path, examples: list[Example], labels: list[str] | None, out: Path | None, *,
             device: str = "auto", backend: str = "auto", workers: int = 2, progress: bool = False
             ) -> dict[str, Any]:
    """Clip-level metrics (windows aggregated as in predict) plus window-level accuracy; writes
    ``report.json``, ``confusion_matrix.png`` and ``reliability.png`` into ``out`` when given."""
    from ..pipeline import Prediction, load, predict_many

    clf = load(model, device=device, backend=backend)
    unknown = sorted({e.label for e in examples} - set(clf.labels))
    if unknown:
        raise ParameterError(f"the data has labels the model does not know: {', '.join(unknown)}")
    it: Any = predict_many(clf, [e.source for e in examples], workers=workers, on_error="return")
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(examples), desc="evaluate", unit="clip", file=sys.stderr)
    y_true, probs, groups, win_true, win_pred, failed, clips = [], [], [], [], [], [], []
    for e, p in zip(examples, it):
        if isinstance(p, MusicGenreError) or not isinstance(p, Prediction):
            failed.append(str(p))
            continue
        t = clf.labels.index(e.label)
        y_true.append(t)
        probs.append([p.scores[lab] for lab in clf.labels])
        groups.append(e.group or e.name)
        for s in p.segments:
            win_true.append(t)
            win_pred.append(clf.labels.index(s.label))
        clips.append({"source": e.name, "label": e.label, "predicted": p.label, "score": p.scores[p.label],
                      "status": p.status, "agreement": round(p.agreement, 4)})
    if not y_true:
        raise MusicGenreError("no clip of the split could be classified")
    has_groups = any(e.group for e in examples)
    rep = full_report(np.array(y_true), np.array(probs), clf.labels,
                      groups=np.array(groups) if has_groups else None)
    rep["window_accuracy"] = float(np.mean(np.array(win_true) == np.array(win_pred)))
    rep.update(model=clf.name, clips=len(y_true), failed=failed, predictions=clips)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "report.json", rep)
        plot_confusion(rep, out / "confusion_matrix.png", title=clf.name)
        plot_reliability(rep["reliability"], out / "reliability.png", title=clf.name, ece_value=rep["ece"],
                         ece_floor=rep["ece_if_calibrated"][0])
    return rep
