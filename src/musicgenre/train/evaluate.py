"""`musicgenre evaluate`: a saved model on a dataset split, through the same Classifier as `predict`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_json
from ..data import Example
from ..errors import MusicGenreError, ParameterError
from .metrics import plot_confusion, report


def evaluate(model: str | Path, examples: list[Example], labels: list[str] | None, out: Path | None, *,
             device: str = "auto", backend: str = "auto", workers: int = 2, progress: bool = False
             ) -> dict[str, Any]:
    """Clip-level metrics (windows aggregated as in predict) plus window-level accuracy; writes
    ``report.json`` and ``confusion_matrix.png`` into ``out`` when given."""
    from ..pipeline import Prediction, load, predict_many

    clf = load(model, device=device, backend=backend)
    unknown = sorted({e.label for e in examples} - set(clf.labels))
    if unknown:
        raise ParameterError(f"the data has labels the model does not know: {', '.join(unknown)}")
    it: Any = predict_many(clf, [e.source for e in examples], workers=workers, on_error="return")
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(examples), desc="evaluate", unit="clip", file=sys.stderr)
    y_true, y_pred, win_true, win_pred, failed, clips = [], [], [], [], [], []
    for e, p in zip(examples, it):
        if isinstance(p, MusicGenreError) or not isinstance(p, Prediction):
            failed.append(str(p))
            continue
        t = clf.labels.index(e.label)
        y_true.append(t)
        y_pred.append(clf.labels.index(p.label))
        for s in p.segments:
            win_true.append(t)
            win_pred.append(clf.labels.index(s.label))
        clips.append({"source": e.name, "label": e.label, "predicted": p.label, "score": p.scores[p.label]})
    if not y_true:
        raise MusicGenreError("no clip of the split could be classified")
    rep = report(np.array(y_true), np.array(y_pred), clf.labels)
    rep["window_accuracy"] = float(np.mean(np.array(win_true) == np.array(win_pred)))
    rep.update(model=clf.name, clips=len(y_true), failed=failed, predictions=clips)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "report.json", rep)
        plot_confusion(rep, out / "confusion_matrix.png", title=clf.name)
    return rep
