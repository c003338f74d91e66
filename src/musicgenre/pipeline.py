"""The one inference path: source -> windows -> model -> clip aggregation -> Prediction.

``load()`` gives a ``Predictor`` (a ``Classifier``, or an ``Ensemble`` of them); ``predict_many()`` runs any
predictor over many inputs. The CLI, the Python API, the web app, the library scanner, Ray, ``evaluate`` and
``explain`` all come through here, so they agree on every label and score.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .audio import AudioSource
from .errors import AudioDecodeError, MusicGenreError, ParameterError
from .windows import SILENCE_PEAK, Windows

log = logging.getLogger(__name__)


@dataclass
class Segment:
    """One analysed window of the track and its genre scores."""

    start: float
    end: float
    scores: dict[str, float]

    @property
    def label(self) -> str:
        return max(self.scores, key=self.scores.__getitem__)


@dataclass
class Prediction:
    """Genre prediction for one whole track.

    ``scores`` holds every genre's probability, highest first (mean over the analysed windows);
    ``tags`` the backbone's tag probabilities (highest first); ``segments`` one entry per window.
    """

    source: str
    scores: dict[str, float]
    tags: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0
    model: str = ""

    @property
    def label(self) -> str:
        return next(iter(self.scores))

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        return list(self.scores.items())[:k]

    def as_pipeline_output(self, top_k: int = 5) -> list[dict[str, Any]]:
        """The transformers audio-classification pipeline's shape: [{"label", "score"}, ...]."""
        return [{"label": k, "score": v} for k, v in self.top(top_k)]

    def to_dict(
        self, *, top_k: int | None = None, top_tags: int | None = None, segments: bool = True
    ) -> dict[str, Any]:
        """JSON-ready dict; ``top_k``/``top_tags`` trim scores/tags (None keeps all)."""
        d: dict[str, Any] = {
            "source": self.source,
            "label": self.label,
            "scores": dict(self.top(top_k or len(self.scores))),
            "tags": dict(list(self.tags.items())[:top_tags]),
            "duration": round(self.duration, 3),
            "model": self.model,
        }
        if segments:
            d["segments"] = [{"start": s.start, "end": s.end, "scores": s.scores} for s in self.segments]
        return d


@runtime_checkable
class Predictor(Protocol):
    """What every command needs from a model: its name, labels, window length and ``predict``."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def window_seconds(self) -> float: ...

    def predict(self, x: AudioSource, *, max_seconds: float | None = None) -> Prediction: ...


def sorted_scores(names: list[str], values: np.ndarray) -> dict[str, float]:
    order = np.argsort(-values, kind="stable")
    return {names[i]: round(float(values[i]), 6) for i in order}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def loud_windows(peaks: np.ndarray) -> np.ndarray:
    """Which windows are analysed: those whose peak reaches -60 dBFS (the one silence rule)."""
    return np.asarray(peaks) >= SILENCE_PEAK


def clip_scores(probs: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """The one clip aggregation: mean window probability over the non-silent windows, (n, L) -> (L,)."""
    loud = loud_windows(peaks)
    if not loud.any():
        raise AudioDecodeError("silent (peak below -60 dBFS everywhere); nothing to classify")
    return np.asarray(probs)[loud].mean(axis=0)


class Classifier:
    """Recognise the genre of recordings with one shipped or trained model.

    >>> clf = Classifier.from_pretrained()            # the default model, shipped in the package
    >>> clf.predict("song.mp3").top(3)                # [("jazz", 0.81), ("blues", 0.07), ...]
    """

    def __init__(self, model: Any) -> None:
        self.model = model  # a hub.LoadedModel

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path | None = None, **kw: Any) -> Any:
        """Same as ``musicgenre.load``: a shipped model by name (default ``musicnn-gtzan``) or a model
        directory; an ensemble directory gives an ``Ensemble``."""
        return load(name_or_dir, **kw)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def window_seconds(self) -> float:
        return float(self.model.features.patch_seconds)

    def __call__(self, x: AudioSource, top_k: int = 5) -> list[dict[str, Any]]:
        """transformers-pipeline style: ``[{"label": ..., "score": ...}]`` for the top ``top_k``."""
        return self.predict(x).as_pipeline_output(top_k)

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, ...) windows -> genre probabilities (n, n_labels), tag probabilities (n, n_tags) or None."""
        out = self.model.run(windows)
        tags = out.get("tags")
        return softmax(out["logits"], self.model.temperature), (None if tags is None else sigmoid(tags))

    def window_outputs(self, x: AudioSource, *, max_seconds: float | None = None
                       ) -> tuple[Windows, np.ndarray, np.ndarray | None, np.ndarray]:
        """Stream ``x`` window by window (flat memory on long files) -> (windows, probs, tags, peaks)."""
        windows = Windows(x, self.model.features, max_seconds)
        probs, tags, peaks = [], [], []
        for chunk, pk in windows:
            p, t = self.run(chunk)
            probs.append(p)
            peaks.append(pk)
            if t is not None:
                tags.append(t)
        return windows, np.concatenate(probs), (np.concatenate(tags) if tags else None), np.concatenate(peaks)

    def predict(self, x: AudioSource, *, max_seconds: float | None = None) -> Prediction:
        """Classify one whole recording; ``max_seconds`` analyses only its start (e.g. 30 for a quick look)."""
        windows, probs, tags, peaks = self.window_outputs(x, max_seconds=max_seconds)
        try:
            scores = clip_scores(probs, peaks)
        except AudioDecodeError as e:
            raise AudioDecodeError(f"{windows.name}: {e}") from None
        loud = loud_windows(peaks)
        seconds, step = windows.seconds, self.window_seconds
        segments = [Segment(round(i * step, 3), round(min((i + 1) * step, seconds), 3),
                            sorted_scores(self.labels, probs[i])) for i in np.flatnonzero(loud)]
        tag_scores = {} if tags is None else merge_tags(self.model.tag_names, tags[loud].mean(axis=0))
        return Prediction(source=windows.name, scores=sorted_scores(self.labels, scores), tags=tag_scores,
                          segments=segments, duration=seconds, model=self.name)

    def predict_many(self, xs: Iterable[AudioSource], **kw: Any) -> Iterator[Prediction | MusicGenreError]:
        """``predict_many(self, xs, ...)``: see that function."""
        return predict_many(self, xs, **kw)


def load(name_or_dir: str | Path | None = None, *, device: str = "auto", backend: str = "auto",
         batch_size: int | None = None) -> Any:
    """A ready ``Predictor``: a shipped model by name (default ``musicnn-gtzan``), a trained model directory,
    or an ensemble directory. ``backend`` "auto" runs shipped models in ONNX Runtime on the CPU (no torch
    needed) and everything else in torch; ``device`` "cuda" needs torch with CUDA."""
    from .hub import load_model, read_manifest, resolve_model_dir

    path = resolve_model_dir(name_or_dir)
    if read_manifest(path).get("architecture") == "ensemble":
        from .ensemble import Ensemble

        return Ensemble.from_dir(path, device=device, backend=backend, batch_size=batch_size)
    return Classifier(load_model(path, device=device, backend=backend, batch_size=batch_size))


def predict_many(
    predictor: Predictor, xs: Iterable[AudioSource], *, workers: int = 2, on_error: str = "raise"
) -> Iterator[Prediction | MusicGenreError]:
    """Classify many recordings, ``workers`` at a time (each worker decodes and runs the model).

    Yields one result per input, in input order. ``on_error="return"`` yields the ``MusicGenreError`` of a
    bad input in its place (so a batch goes on); ``"raise"`` raises it.
    """
    if on_error not in ("raise", "return"):
        raise ParameterError("on_error must be 'raise' or 'return'")
    if isinstance(xs, Sized):  # one long file must not run on a single thread
        workers = min(workers, len(xs))
    workers = max(1, workers)
    items = iter(xs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures: list[Any] = []

        def refill() -> None:
            while len(futures) < 2 * workers:
                src = next(items, None)
                if src is None:
                    return
                futures.append(pool.submit(predictor.predict, src))

        refill()
        while futures:
            fut = futures.pop(0)
            refill()
            try:
                result: Prediction | MusicGenreError = fut.result()
            except MusicGenreError as e:
                if on_error == "raise":
                    raise
                result = e
            yield result


def merge_tags(names: list[str], values: np.ndarray) -> dict[str, float]:
    """Tags in one dict, lower-cased, highest first; a tag that two vocabularies share gets their mean."""
    sums: dict[str, list[float]] = {}
    for n, v in zip(names, values):
        sums.setdefault(n.lower(), []).append(float(v))
    merged = {k: sum(v) / len(v) for k, v in sums.items()}
    return {k: round(merged[k], 6) for k in sorted(merged, key=merged.__getitem__, reverse=True)}
