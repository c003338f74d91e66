"""What a prediction is: ``Prediction`` (one track), ``Segment`` (one window), ``WindowFeatures`` (what a
genre head consumes, kept for the library) and the ``Predictor`` protocol that every model (a ``Classifier`` or
an ``Ensemble``) follows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .errors import ParameterError

if TYPE_CHECKING:
    from .audio import AudioSource
    from .openset import OpenSet


@dataclass
class Segment:
    """One analysed window of the track and its genre scores."""

    start: float
    end: float
    scores: dict[str, float]

    @property
    def label(self) -> str:
        """The window's top genre."""
        return max(self.scores, key=self.scores.__getitem__)


@dataclass(frozen=True, eq=False)
class WindowFeatures:
    """The backbone's own outputs for a track, from the pass that classified it: what a window-level genre head
    consumes (``musicgenre scan`` stores them; ``library.db.read_features`` reads them back).

    ``index`` holds the positions (in analysis windows from the start: window i starts at i * window_seconds) of
    up to ``FEATURE_WINDOWS`` non-silent windows spread evenly over the track's non-silent windows;
    ``embedding`` (k, d) and ``tag_logits`` (k, t) are those windows' penultimate embeddings and tag logits
    (float16; ``tag_logits`` None for a backbone without tags). ``mean_embedding`` and ``mean_tag_logits`` are
    the means over *all* ``windows`` non-silent windows (the windows the clip scores aggregate). ``backbone`` /
    ``backbone_version`` name the network that computed them (features of different backbones do not mix).
    """

    backbone: str
    backbone_version: str
    windows: int
    index: np.ndarray
    embedding: np.ndarray
    tag_logits: np.ndarray | None
    mean_embedding: np.ndarray
    mean_tag_logits: np.ndarray | None


FEATURE_WINDOWS = 10  # windows whose embedding and tag logits a track keeps (plus the means over all of them)


@dataclass
class Prediction:
    """Genre prediction for one whole track.

    ``scores`` holds every genre's probability, highest first (mean over the analysed windows);
    ``tags`` the backbone's tag probabilities (highest first; every tag, genre words included: what is shown
    beside an answer leaves those out, ``genres.descriptive_tags``); ``segments`` one entry per window.
    ``status`` is "unknown" when the model's open-set detector (``openset.OpenSet``) finds the recording unlike
    every genre it was trained on (``closest_tags`` then names the genre tags it sounds like instead), else
    "confident" when the top score reaches the predictor's ``min_confidence``, else "uncertain" (``STATUSES``);
    ``agreement`` is the share of analysed windows whose own top genre is ``label``;
    ``features`` the backbone's embeddings (``WindowFeatures``) when the model gives them.
    """

    source: str
    scores: dict[str, float]
    tags: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0
    model: str = ""
    status: str = "confident"
    agreement: float = 1.0
    closest_tags: list[str] = field(default_factory=list)  # status "unknown": the genre tags it sounds like
    warnings: list[str] = field(default_factory=list)  # e.g. a damaged or truncated input: what was analysed
    # the backbone's embeddings and tag logits (a Classifier whose model outputs an embedding; None otherwise,
    # ensembles included): stored by the library scan, never part of the JSON output (``to_dict``)
    features: WindowFeatures | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """The track's top genre."""
        return next(iter(self.scores))

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` best (genre, score) pairs, best first."""
        return list(self.scores.items())[:k]

    def as_pipeline_output(self, top_k: int = 5) -> list[dict[str, Any]]:
        """The transformers audio-classification pipeline's shape: [{"label", "score"}, ...]."""
        return [{"label": k, "score": v} for k, v in self.top(top_k)]

    def to_dict(
        self, *, top_k: int | None = None, top_tags: int | None = None, segments: bool = True
    ) -> dict[str, Any]:
        """JSON-ready dict; ``top_k``/``top_tags`` trim scores/tags (None keeps all). ``tags`` are the highest
        ``top_tags`` of every tag, genre words included (the table and the web page leave those out)."""
        d: dict[str, Any] = {
            "source": self.source,
            "label": self.label,
            "status": self.status,
            "closest_tags": list(self.closest_tags),
            "agreement": round(self.agreement, 4),
            "scores": dict(self.top(top_k or len(self.scores))),
            "tags": dict(list(self.tags.items())[:top_tags]),
            "duration": round(self.duration, 3),
            "model": self.model,
            "warnings": list(self.warnings),
        }
        if segments:
            d["segments"] = [{"start": s.start, "end": s.end, "scores": s.scores} for s in self.segments]
        return d


@runtime_checkable
class Predictor(Protocol):
    """What every command needs from a model: its name, version, labels, window length, device and ``predict``."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def window_seconds(self) -> float: ...
    @property
    def device(self) -> str: ...

    def predict(self, x: AudioSource, *, max_seconds: float | None = None) -> Prediction: ...


# top score (calibrated by input length) below this: status "uncertain". Chosen on the validation run (out-of-fold
# calibration, 96 valid clips): confident calls at >= 0.8 were right 90% of the time on single 3-s windows, 94% on
# 3 windows and 95% on whole clips, and covered 61% of the whole clips (43% of single windows); at 0.6 they were
# right only 82% on single windows (python -m benchmarks.accuracy confidence, docs/models.md).
DEFAULT_MIN_CONFIDENCE = 0.8


STATUSES = ("confident", "uncertain", "unknown")  # what ``Prediction.status`` can be


def confidence(scores: dict[str, float], window_labels: list[str], min_confidence: float,
               open_set: OpenSet | None = None, tags: Mapping[str, float] | None = None
               ) -> tuple[str, float, list[str]]:
    """(status, agreement, closest tags) of a track from its sorted scores, its windows' own top genres and,
    with an ``open_set`` detector, its tag probabilities (the mean over the same windows)."""
    label, top = next(iter(scores.items()))
    agreement = sum(w == label for w in window_labels) / len(window_labels) if window_labels else 1.0
    if open_set is not None and tags and open_set.is_unknown(tags, len(window_labels), label):
        return "unknown", agreement, open_set.closest(tags, label)
    return ("confident" if top >= min_confidence else "uncertain"), agreement, []


def sorted_scores(names: list[str], values: np.ndarray) -> dict[str, float]:
    """{label: score} from parallel names and values, best first, rounded to 6 digits."""
    order = np.argsort(-values, kind="stable")
    return {names[i]: round(float(values[i]), 6) for i in order}


def merge_tags(names: list[str], values: np.ndarray) -> dict[str, float]:
    """Tags in one dict, lower-cased, highest first; a tag that two vocabularies share gets their mean."""
    sums: dict[str, list[float]] = {}
    for n, v in zip(names, values):
        sums.setdefault(n.lower(), []).append(float(v))
    merged = {k: sum(v) / len(v) for k, v in sums.items()}
    return {k: round(merged[k], 6) for k in sorted(merged, key=merged.__getitem__, reverse=True)}


def check_min_confidence(value: float | None) -> float:
    """``min_confidence`` checked (a number in 0..1), or the default when None."""
    if value is None:
        return DEFAULT_MIN_CONFIDENCE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ParameterError(f"min_confidence must be between 0 and 1, got {value!r}")
    return float(value)
