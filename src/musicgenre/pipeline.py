"""The one inference path: source -> windows -> model -> clip aggregation -> Prediction.

``load()`` gives a ``Predictor`` (a ``Classifier``, or an ``Ensemble`` of them); ``predict_many()`` runs any
predictor over many inputs. The CLI, the Python API, the web app, the library scanner, Ray, ``evaluate`` and
``explain`` all come through here, so they agree on every label and score.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import AudioSource, describe
from .errors import AudioDecodeError, MusicGenreError, NoMusicError, ParameterError, Reason
from .prediction import (
    FEATURE_WINDOWS,
    Prediction,
    Predictor,
    Segment,
    WindowFeatures,
    check_min_confidence,
    confidence,
    merge_tags,
    sorted_scores,
)
from .prefetch import prefetch
from .scores import calibrated_clip_scores, loud_windows, recalibrate, sigmoid, softmax, window_count_temperature
from .windows import Windows

if TYPE_CHECKING:
    from .loader import LoadedModel
    from .modeldir import ModelCard

__all__ = ["Classifier", "FeatureSampler", "load", "predict_many"]

log = logging.getLogger(__name__)


class FeatureSampler:
    """Collects a track's ``WindowFeatures`` while its windows stream past, in memory that does not grow with the
    track: running sums for the means over every loud window, and an evenly strided sample of at most
    ``4 * k`` loud windows (every ``stride``-th; when full, every other one is dropped and the stride doubles),
    from which ``result`` picks the ``k`` nearest the centres of k equal parts of the loud windows.
    Deterministic: the same track always keeps the same windows."""

    def __init__(self, backbone: str, version: str, k: int = FEATURE_WINDOWS) -> None:
        self.backbone, self.version, self.k = backbone, version, k
        self.loud = 0  # loud windows seen
        self.stride = 1
        self.kept: list[tuple[int, int, np.ndarray, np.ndarray | None]] = []  # (loud rank, window index, emb, tags)
        self.sum_emb: np.ndarray | None = None
        self.sum_tags: np.ndarray | None = None

    def add(self, first: int, embedding: np.ndarray, tag_logits: np.ndarray | None, loud: np.ndarray) -> None:
        """One chunk: windows ``first``.. with their embeddings (n, d), tag logits (n, t) or None, loud mask (n,)."""
        rows = np.flatnonzero(loud)
        if not len(rows):
            return
        emb = np.asarray(embedding, dtype=np.float32)
        tags = None if tag_logits is None else np.asarray(tag_logits, dtype=np.float32)
        s = emb[rows].sum(axis=0, dtype=np.float64)
        self.sum_emb = s if self.sum_emb is None else self.sum_emb + s
        if tags is not None:
            t = tags[rows].sum(axis=0, dtype=np.float64)
            self.sum_tags = t if self.sum_tags is None else self.sum_tags + t
        for r in rows:
            if self.loud % self.stride == 0:
                self.kept.append((self.loud, first + int(r), emb[r].copy(), None if tags is None else tags[r].copy()))
                if len(self.kept) > 4 * self.k:
                    self.kept = [w for w in self.kept if (w[0] // self.stride) % 2 == 0]
                    self.stride *= 2
            self.loud += 1

    def result(self) -> WindowFeatures | None:
        """The track's features, or None when no loud window was seen."""
        if self.sum_emb is None or not self.kept:
            return None
        ranks = np.array([w[0] for w in self.kept])
        if len(ranks) <= self.k:
            pick = np.arange(len(ranks))
        else:  # the kept window nearest each centre of k equal parts of the loud windows (kept ones lie
            # ``stride`` apart, at most half the parts' length, so the picks are distinct)
            centres = (np.arange(self.k) + 0.5) * self.loud / self.k
            pick = np.unique(np.abs(ranks[None, :] - centres[:, None]).argmin(axis=1))
        chosen = [self.kept[i] for i in pick]
        tags = [w[3] for w in chosen if w[3] is not None]
        with_tags = self.sum_tags is not None and len(tags) == len(chosen)
        return WindowFeatures(
            backbone=self.backbone, backbone_version=self.version, windows=self.loud,
            index=np.array([w[1] for w in chosen], dtype=np.int32),
            embedding=_half(np.stack([w[2] for w in chosen])),
            tag_logits=_half(np.stack(tags)) if with_tags else None,
            mean_embedding=_half(self.sum_emb / self.loud),
            mean_tag_logits=_half(self.sum_tags / self.loud) if with_tags and self.sum_tags is not None else None,
        )


def _half(x: np.ndarray) -> np.ndarray:
    """float16, saturating (never inf) at its largest finite value."""
    limit = float(np.finfo(np.float16).max)
    return np.clip(x, -limit, limit).astype(np.float16)


class Classifier:
    """Recognise the genre of recordings with one shipped or trained model.

    >>> clf = musicgenre.load()                        # the default model, shipped in the package
    >>> clf.predict("song.mp3").top(3)                # [("classical", 0.66), ("jazz", 0.33), ...]
    """

    def __init__(self, model: LoadedModel, *, min_confidence: float | None = None, unknown: bool = True) -> None:
        self.model = model
        self.min_confidence = check_min_confidence(min_confidence)
        # the card's "unknown" detector (openset.py); ``unknown=False``: always a genre, confident or uncertain
        self.open_set = model.card.open_set if unknown else None
        self._feature_backbone: tuple[str, str] | None | object = _UNKNOWN

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path | None = None, *, device: str = "auto", backend: str = "auto",
                        batch_size: int | None = None, min_confidence: float | None = None,
                        threads: int | None = None, unknown: bool = True) -> Predictor:
        """Same as ``musicgenre.load``: a shipped model by name (default ``musicnn-gtzan``) or a model
        directory; an ensemble directory gives an ``Ensemble``."""
        return load(name_or_dir, device=device, backend=backend, batch_size=batch_size,
                    min_confidence=min_confidence, threads=threads, unknown=unknown)

    @property
    def labels(self) -> list[str]:
        """The genres, in the model's output order."""
        return self.model.labels

    @property
    def name(self) -> str:
        """The model's name, from its card."""
        return str(self.model.name)

    @property
    def version(self) -> str:
        """The model's version, from its card."""
        return self.model.version

    @property
    def device(self) -> str:
        """Where the model runs: ``cpu`` or ``cuda``."""
        return self.model.device

    @property
    def window_seconds(self) -> float:
        """The length of one analysis window (one segment of the timeline)."""
        return float(self.model.features.window_seconds)

    def __call__(self, x: AudioSource, top_k: int = 5) -> list[dict[str, Any]]:
        """transformers-pipeline style: ``[{"label": ..., "score": ...}]`` for the top ``top_k``."""
        return self.predict(x).as_pipeline_output(top_k)

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, ...) windows -> genre logits (n, n_labels), tag probabilities (n, n_tags) or None."""
        out = self.model.run(windows)
        tags = out.get("tags")
        return out["logits"], (None if tags is None else sigmoid(tags))

    @property
    def feature_backbone(self) -> tuple[str, str] | None:
        """(backbone name, version) of the ``WindowFeatures`` this model's predictions carry, or None when they
        carry none: no backbone identity recorded (``LoadedModel.backbone``) or no ``embedding`` output (an
        older ONNX export, another architecture). What the library scan compares stored features against."""
        if self._feature_backbone is _UNKNOWN:
            backbone = self.model.backbone
            self._feature_backbone = backbone if backbone is not None and "embedding" in self._output_names() else None
        return self._feature_backbone  # type: ignore[return-value]

    def _output_names(self) -> list[str]:
        """The runner's output names: the ONNX session's, or (torch) those of one silent window's run."""
        names = getattr(self.model.runner, "output_names", None)
        if names is not None:
            return list(names)
        cfg = self.model.features
        shape = (1, cfg.window_samples) if cfg.input == "waveform" else (1, cfg.window_frames, cfg.n_mels)
        return list(self.model.run(np.zeros(shape, dtype=np.float32)))

    def window_outputs(self, x: AudioSource, *, max_seconds: float | None = None,
                       sampler: FeatureSampler | None = None
                       ) -> tuple[Windows, np.ndarray, np.ndarray | None, np.ndarray]:
        """Stream ``x`` window by window (flat memory on long files) -> (windows, logits, tag probabilities,
        peaks). ``sampler`` collects the runner's ``embedding`` output and tag logits, when it has them."""
        windows = Windows(x, self.model.features, max_seconds)
        logits, tags, peaks = [], [], []
        seen = 0
        for chunk, pk in prefetch(windows):  # the next block decodes while the model runs on this one
            out = self.model.run(chunk)
            t = out.get("tags")
            logits.append(out["logits"])
            peaks.append(pk)
            if t is not None:
                tags.append(sigmoid(t))
            emb = out.get("embedding")
            if sampler is not None and emb is not None:
                sampler.add(seen, emb, t, loud_windows(pk))
            seen += len(pk)
        return windows, np.concatenate(logits), (np.concatenate(tags) if tags else None), np.concatenate(peaks)

    def predict(self, x: AudioSource, *, max_seconds: float | None = None) -> Prediction:
        """Classify one whole recording, streamed window by window (flat memory on long files).

        ``max_seconds`` analyses only the start of the track (e.g. 30 for a quick look); by default at most
        ``audio.DEFAULT_MAX_MINUTES`` are analysed, and ``Prediction.warnings`` says when a track was truncated
        or damaged. Silence, DC, lone clicks and noise raise ``NoMusicError``: garbage never gets a genre.
        """
        backbone = self.model.backbone
        sampler = None if backbone is None else FeatureSampler(*backbone)
        windows, logits, tags, peaks = self.window_outputs(x, max_seconds=max_seconds, sampler=sampler)
        info = windows.decoded.info  # what the decoder reports (truncation included): read, never rewritten
        not_music = info.evidence.verdict() if info.evidence is not None else None
        if not_music is not None:
            raise NoMusicError(windows.name, Reason.NO_MUSIC, not_music)
        loud = loud_windows(peaks)
        temperature, by_windows = self.model.temperature, self.model.temperatures
        scores = calibrated_clip_scores(logits, loud, temperature, by_windows, source=windows.name)
        # each window's own scores (the timeline), calibrated as a one-window input
        probs = recalibrate(softmax(logits, temperature), window_count_temperature(by_windows, 1))
        seconds, step = windows.seconds, self.window_seconds
        segments = [Segment(round(i * step, 3), round(min((i + 1) * step, seconds), 3),
                            sorted_scores(self.labels, probs[i])) for i in np.flatnonzero(loud)]
        tag_scores = {} if tags is None else merge_tags(self.model.tag_names, tags[loud].mean(axis=0))
        ranked = sorted_scores(self.labels, scores)
        status, agreement, closest = confidence(ranked, [s.label for s in segments], self.min_confidence,
                                                self.open_set, tag_scores)
        return Prediction(source=windows.name, scores=ranked, tags=tag_scores, segments=segments, duration=seconds,
                          model=self.name, status=status, agreement=agreement, closest_tags=closest,
                          warnings=info.warnings,
                          features=None if sampler is None else sampler.result())


def load(name_or_dir: str | Path | None = None, *, device: str = "auto", backend: str = "auto",
         batch_size: int | None = None, min_confidence: float | None = None, threads: int | None = None,
         unknown: bool = True) -> Predictor:
    """A ready ``Predictor``: a shipped model by name (default ``musicnn-gtzan``), a trained model directory,
    or an ensemble directory. ``backend`` "auto" runs shipped models in ONNX Runtime on the CPU (no torch
    needed) and everything else in torch; ``device`` "cuda" needs torch with CUDA. A track whose top score
    is below ``min_confidence`` (default ``DEFAULT_MIN_CONFIDENCE``) gets the status "uncertain"; one unlike
    every genre of the model (its card's open-set detector, ``openset.py``) "unknown", unless ``unknown`` is
    False. ``threads``: the backend's intra-op threads: ONNX Runtime's for this model (default 2);
    torch's are process-wide (``torch.set_num_threads``), set only when given."""
    from .loader import load_model
    from .modeldir import locate

    path, card = locate(name_or_dir)  # config.json is read here once and the card passed down
    min_confidence = check_min_confidence(min_confidence)

    def load_one(member: Path, member_card: ModelCard) -> Classifier:
        return Classifier(load_model(member, member_card, device=device, backend=backend, batch_size=batch_size,
                                     threads=threads), min_confidence=min_confidence, unknown=unknown)

    if card.is_ensemble:
        from .ensemble import Ensemble

        return Ensemble.from_card(path, card, load_one, min_confidence=min_confidence)
    return load_one(path, card)


def predict_many(
    predictor: Predictor, xs: Iterable[AudioSource], *, workers: int = 2, on_error: str = "raise",
    max_seconds: float | None = None,
) -> Iterator[Prediction | MusicGenreError]:
    """Classify many recordings, ``workers`` at a time (each worker decodes and runs the model).

    Yields exactly one result per input, in input order. ``on_error="return"`` yields the ``MusicGenreError``
    of a bad input (None, a wrong type, an unreadable file ...) in its place, naming that input, so a batch
    goes on; ``"raise"`` raises it. ``max_seconds`` as in ``predict``.
    """
    if on_error not in ("raise", "return"):
        raise ParameterError("on_error must be 'raise' or 'return'")
    if isinstance(xs, (str, bytes, bytearray, os.PathLike)):
        raise ParameterError("predict_many takes an iterable of inputs; use predict for one input")
    if isinstance(xs, Sized):  # one long file must not run on a single thread
        workers = min(workers, len(xs))
    workers = max(1, workers)
    items = iter(xs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures: list[Any] = []

        def refill() -> None:
            while len(futures) < 2 * workers:
                src = next(items, _END)
                if src is _END:
                    return
                futures.append(pool.submit(_predict_one, predictor, src, max_seconds))

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


_UNKNOWN = object()  # Classifier.feature_backbone not looked up yet
_END = object()  # end of the inputs (None is an input, and gets an error result)


def _predict_one(predictor: Predictor, src: Any, max_seconds: float | None) -> Prediction:
    """``predict`` for one batch input: every failure, even an unexpected one, becomes a MusicGenreError
    naming the input, so one bad input never stops a batch."""
    try:
        return predictor.predict(src, max_seconds=max_seconds)
    except MusicGenreError:
        raise
    except MemoryError:
        raise AudioDecodeError(describe(src), Reason.TOO_LONG, "out of memory") from None
    except Exception as e:  # decoder libraries raise many types on hostile input
        log.info("%s: %s", describe(src), e, exc_info=True)
        reason = Reason.INVALID_INPUT if isinstance(e, (TypeError, ValueError)) else Reason.CORRUPT
        raise AudioDecodeError(describe(src), reason, type(e).__name__) from None
