"""`musicgenre evaluate`: a saved model on a dataset split, through the same Classifier as `predict`.

The report has per-class precision/recall, macro-F1, top-3 accuracy, ECE, n, and bootstrap 95%
intervals (resampling artist groups when the examples carry them, else clips), plus the
confusion-matrix and reliability-diagram PNGs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_json
from ..data import Example
from ..errors import MusicGenreError, ParameterError
from ..evaluation.calibration import REPORT_LENGTHS, length_row, plot_reliability
from ..evaluation.metrics import full_report, plot_confusion
from ..prediction import DEFAULT_MIN_CONFIDENCE


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
             device: str = "auto", backend: str = "auto", workers: int = 2, progress: bool = False,
             lengths: tuple[int, ...] = REPORT_LENGTHS) -> dict[str, Any]:
    """Clip-level metrics (windows aggregated as in predict) plus window-level accuracy and, per input length
    (``lengths`` windows: every clip cut into consecutive pieces that long, each piece classified by
    ``predict`` as a user's short recording would be), top-1, ECE with its floor, coverage and accuracy of the
    confident calls; writes ``report.json``, ``confusion_matrix.png`` and ``reliability.png`` into ``out``."""
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
    sure = float(getattr(clf, "min_confidence", DEFAULT_MIN_CONFIDENCE))
    rep["lengths"] = {str(n): by_length(clf, examples, n, min_confidence=sure, workers=workers) for n in lengths}
    rep["lengths"]["whole"] = {**length_row(np.array(probs), np.array(y_true), sure), "clips": len(y_true)}
    rep["lengths"]["min_confidence"] = sure
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "report.json", rep)
        plot_confusion(rep, out / "confusion_matrix.png", title=clf.name)
        plot_reliability(rep["reliability"], out / "reliability.png", title=clf.name, ece_value=rep["ece"],
                         ece_floor=rep["ece_if_calibrated"][0])
    return rep


def by_length(clf: Any, examples: list[Example], n: int, *, min_confidence: float, workers: int = 2
              ) -> dict[str, Any]:
    """Every clip cut into consecutive pieces of ``n`` windows (a last, shorter piece is dropped), each piece
    classified by ``predict`` on its own: the per-length row (``calibrate.length_row``). A piece that is all
    silence is left out (``predict`` refuses it)."""
    from ..audio import load_audio
    from ..pipeline import Prediction, predict_many

    sr = 16000 if not hasattr(clf, "model") else clf.model.features.sr
    step = int(round(n * clf.window_seconds * sr))
    y: list[int] = []
    clips: set[int] = set()

    def pieces() -> Iterator[tuple[np.ndarray, int]]:  # lazily: one decoded clip in memory at a time
        for i, e in enumerate(examples):
            try:
                audio = load_audio(e.source, sr=sr)
            except MusicGenreError:
                continue  # already reported by the whole-clip pass
            for start in range(0, len(audio) - step + 1, step):
                y.append(clf.labels.index(e.label))
                clips.add(i)
                yield audio[start : start + step], sr

    probs, kept = [], []
    for k, p in enumerate(predict_many(clf, pieces(), workers=workers, on_error="return")):
        if isinstance(p, Prediction):
            probs.append([p.scores[lab] for lab in clf.labels])
            kept.append(y[k])
    if not probs:
        return {"n": 0, "windows": n}
    return {**length_row(np.array(probs), np.array(kept), min_confidence), "clips": len(clips), "windows": n}
