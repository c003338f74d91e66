"""Ensembles of saved models: the mean of the members' track-level probabilities.

An ensemble is a directory whose config.json has ``"architecture": "ensemble"`` and the member
model directories; ``Classifier.from_pretrained(dir)`` returns an ``EnsembleClassifier``, so every
command (predict, scan, serve, evaluate) accepts it. Members may use different inputs (sample rate,
window length): each runs its own windows and only the track-level probabilities are averaged.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .audio import AudioSource
from .errors import ParameterError
from .output import write_atomic
from .pipeline import Classifier, Prediction, _sorted_scores


def create_ensemble(members: list[Path], out: Path) -> dict[str, Any]:
    """Write an ensemble directory over ``members`` (all must share one label set)."""
    if len(members) < 2:
        raise ParameterError("an ensemble needs at least two models")
    from .models.registry import read_manifest, resolve_model_dir

    dirs = [resolve_model_dir(m).resolve() for m in members]
    label_sets = [sorted(read_manifest(d / "config.json")["labels"]) for d in dirs]
    if any(ls != label_sets[0] for ls in label_sets):
        raise ParameterError("ensemble members must predict the same labels")
    config = {"name": out.name, "version": "1", "architecture": "ensemble", "members": [str(d) for d in dirs],
              "labels": label_sets[0], "description": f"mean of {len(dirs)} models: "
              + ", ".join(d.name for d in dirs)}
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
    return config


class EnsembleClassifier(Classifier):
    """Same interface as Classifier (``predict_many`` is inherited); predictions are the mean over
    member classifiers."""

    def __init__(self, path: Path, config: dict[str, Any], *, device: str = "auto", **kw: Any) -> None:
        self.members = [Classifier.from_pretrained(m, device=device, **kw) for m in config["members"]]
        first = self.members[0]
        self.model = SimpleNamespace(name=config.get("name", path.name), labels=sorted(config["labels"]),
                                     config=config, features=first.model.features, path=path, tag_names=[])
        self.device = first.device

    def predict(self, x: AudioSource, *, max_seconds: float | None = None) -> Prediction:
        preds = [m.predict(x, max_seconds=max_seconds) for m in self.members]
        probs = np.mean([[p.scores[lab] for lab in self.labels] for p in preds], axis=0)
        first = preds[0]
        return Prediction(source=first.source, scores=_sorted_scores(self.labels, probs), tags=first.tags,
                          segments=first.segments, duration=first.duration, model=self.name)
