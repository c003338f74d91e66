"""Ensembles of saved models: the mean of the members' track-level probabilities.

An ensemble is a directory whose config.json has ``"architecture": "ensemble"`` and its members' paths,
relative to the ensemble directory (so the directory can be moved together with its members).
``musicgenre.load(dir)`` returns an ``Ensemble``, so every command (predict, scan, serve, evaluate) accepts
it. Members may use different inputs (sample rate, window length): each runs its own windows; scores and
tags are averaged per track, and segments per window when the members' windows coincide.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AudioSource
from .errors import ParameterError, WeightsError
from .modeldir import ModelCard
from .prediction import DEFAULT_MIN_CONFIDENCE, Prediction, Predictor, Segment, confidence, merge_tags, sorted_scores


def create_ensemble(members: list[Path], out: Path) -> ModelCard:
    """Write an ensemble directory over ``members`` (all must share one label set); returns its card."""
    from .modeldir import read, resolve

    if len(members) < 2:
        raise ParameterError("an ensemble needs at least two models")
    dirs = [resolve(m).resolve() for m in members]
    label_sets = [sorted(read(d).labels) for d in dirs]
    if any(ls != label_sets[0] for ls in label_sets):
        raise ParameterError("ensemble members must predict the same labels")
    out.mkdir(parents=True, exist_ok=True)
    card = ModelCard(name=out.name, version="1", architecture="ensemble", labels=tuple(label_sets[0]),
                     members=tuple(os.path.relpath(d, out.resolve()) for d in dirs),
                     extra={"description": f"mean of {len(dirs)} models: " + ", ".join(d.name for d in dirs)})
    return card.save(out)


@dataclass
class Ensemble:
    """A Predictor over member Classifiers: the mean of their probabilities."""

    name: str
    version: str
    labels: list[str]
    members: list[Predictor]  # Classifiers
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    @classmethod
    def from_card(cls, path: Path, card: ModelCard, load: Callable[[Path, ModelCard], Predictor], *,
                  min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Ensemble:
        """The ensemble in ``path`` (its ``card`` already read), each member's card read once and the member
        loaded with ``load(member_dir, member_card)`` (``musicgenre.load``'s options)."""
        from .modeldir import read

        if not card.is_ensemble:
            raise WeightsError(f"{path / 'config.json'}: not an ensemble (architecture {card.architecture!r})")
        members = []
        for m in card.members:
            member_dir = path / m  # relative to the ensemble (an absolute path stays absolute)
            member_card = read(member_dir)
            if member_card.is_ensemble:
                raise WeightsError(f"{path}: ensemble member {m} is itself an ensemble")
            members.append(load(member_dir, member_card))
        if len(members) < 2:
            raise WeightsError(f"{path / 'config.json'}: an ensemble needs at least two members")
        return cls(card.name, card.version, sorted(card.labels), members, min_confidence)

    @property
    def window_seconds(self) -> float:
        """The longest member window (the span of one segment)."""
        return max(m.window_seconds for m in self.members)

    @property
    def device(self) -> str:
        """Where the first member runs."""
        return self.members[0].device

    def predict(self, x: AudioSource, *, max_seconds: float | None = None) -> Prediction:
        """Every member's prediction, averaged: scores and tags per track, segments per window when they coincide."""
        preds = [m.predict(x, max_seconds=max_seconds) for m in self.members]
        probs = np.mean([[p.scores[lab] for lab in self.labels] for p in preds], axis=0)
        tag_names = [t for p in preds for t in p.tags]
        tags = merge_tags(tag_names, np.array([v for p in preds for v in p.tags.values()]))
        scores, segments = sorted_scores(self.labels, probs), _combine_segments(preds, self.labels)
        status, agreement, closest = confidence(scores, [s.label for s in segments], self.min_confidence)
        unknown = [p for p in preds if p.status == "unknown"]
        if unknown:  # a member that finds the recording unlike all its genres makes the ensemble's call unknown
            status, closest = "unknown", unknown[0].closest_tags
        return Prediction(source=preds[0].source, scores=scores, tags=tags, segments=segments,
                          duration=preds[0].duration, model=self.name, status=status, agreement=agreement,
                          closest_tags=closest, warnings=preds[0].warnings)


def _combine_segments(preds: list[Prediction], labels: list[str]) -> list[Segment]:
    """Per-window mean across members when their windows coincide; else the first member's windows."""
    spans = [[(s.start, s.end) for s in p.segments] for p in preds]
    if any(s != spans[0] for s in spans):
        return preds[0].segments
    out = []
    for i, (start, end) in enumerate(spans[0]):
        mean = np.mean([[p.segments[i].scores[lab] for lab in labels] for p in preds], axis=0)
        out.append(Segment(start, end, sorted_scores(labels, mean)))
    return out
