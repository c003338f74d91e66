"""The one inference path: source -> streamed windows -> model -> Prediction.

Windows are MusiCNN log-mel patches (the MusiCNN models) or raw waveform windows (trainable
architectures, which compute their own spectrogram); the track's scores are the mean of its
windows' probabilities.

Used by the CLI, the Python API, the web app and the library scanner alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AudioSource, stream_audio
from .errors import AudioDecodeError, MusicGenreError, ParameterError
from .features import FeatureConfig, LogMel

log = logging.getLogger(__name__)

# top score (calibrated) below this: status "uncertain". On the validation clips, calls at >= 0.6 were
# right 92% of the time (78% of clips), the others 57% (benchmarks/accuracy.py confidence).
DEFAULT_MIN_CONFIDENCE = 0.6
MIN_SECONDS = 1.0  # shorter input is rejected; input shorter than one window is repeat-padded to one
SILENCE_PEAK = 1e-3  # windows whose peak stays below -60 dBFS are not analysed


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
    ``tags`` the MusiCNN tag probabilities (highest first); ``segments`` one entry per window.
    ``status`` is "confident" when the top score reaches the classifier's ``min_confidence``, else
    "uncertain"; ``agreement`` is the share of analysed windows whose own top genre is ``label``.
    """

    source: str
    scores: dict[str, float]
    tags: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0
    model: str = ""
    status: str = "confident"
    agreement: float = 1.0

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
            "status": self.status,
            "agreement": round(self.agreement, 4),
            "scores": dict(self.top(top_k or len(self.scores))),
            "tags": dict(list(self.tags.items())[:top_tags]),
            "duration": round(self.duration, 3),
            "model": self.model,
        }
        if segments:
            d["segments"] = [{"start": s.start, "end": s.end, "scores": s.scores} for s in self.segments]
        return d


def _sorted_scores(names: list[str], values: np.ndarray) -> dict[str, float]:
    order = np.argsort(-values, kind="stable")
    return {names[i]: round(float(values[i]), 6) for i in order}


class _PatchStream:
    """Cuts a stream of audio blocks into centred STFT frames, then into fixed windows.

    Frames match a whole-signal centred STFT exactly (zero padding only at the very start and end),
    so block boundaries change nothing; memory holds one block plus one window.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.logmel = LogMel(cfg)
        self.buf = np.zeros(cfg.n_fft // 2, np.float32)  # left zero pad of the centred STFT
        self.pending: list[np.ndarray] = []  # log-mel frames not yet in a full window
        self.pending_peaks: list[np.ndarray] = []
        self.n_samples = 0
        self.n_windows = 0

    def _frames(self, final: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import torch

        cfg = self.cfg
        if final:
            self.buf = np.concatenate([self.buf, np.zeros(cfg.n_fft // 2, np.float32)])
        n = 0 if len(self.buf) < cfg.n_fft else 1 + (len(self.buf) - cfg.n_fft) // cfg.hop_length
        if n == 0:
            return
        frames = torch.from_numpy(self.buf).unfold(0, cfg.n_fft, cfg.hop_length)[:n]
        peaks = frames[:, cfg.n_fft // 2 - cfg.hop_length // 2 : cfg.n_fft // 2 + cfg.hop_length // 2].abs().amax(1)
        yield self.logmel.from_frames(frames).numpy(), peaks.numpy()
        self.buf = self.buf[n * cfg.hop_length :]

    def push(self, block: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Add samples; return the complete windows so far: mels (k, T, F) and peaks (k,)."""
        self.n_samples += len(block)
        self.buf = np.concatenate([self.buf, block])
        for mel, peaks in self._frames(final):
            self.pending.append(mel)
            self.pending_peaks.append(peaks)
        frames = np.concatenate(self.pending) if self.pending else np.zeros((0, self.cfg.n_mels), np.float32)
        peaks = np.concatenate(self.pending_peaks) if self.pending_peaks else np.zeros(0, np.float32)
        t = self.cfg.patch_frames
        k = len(frames) // t
        if final and k == 0 and self.n_windows == 0 and len(frames):
            # short input (MIN_SECONDS..one window): repeat-pad to one window, as MusiCNN was trained
            reps = -(-t // len(frames))
            frames, peaks, k = np.tile(frames, (reps, 1))[:t], np.tile(peaks, reps)[:t], 1
        self.pending, self.pending_peaks = [frames[k * t :]], [peaks[k * t :]]
        self.n_windows += k
        return frames[: k * t].reshape(k, t, self.cfg.n_mels), peaks[: k * t].reshape(k, t).max(axis=1, initial=0.0)


class _WaveStream:
    """Cuts a stream of audio blocks into raw windows of ``window_samples`` (waveform models)."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.n = cfg.window_samples
        self.buf = np.zeros(0, np.float32)
        self.n_samples = 0
        self.n_windows = 0

    def push(self, block: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        self.n_samples += len(block)
        self.buf = np.concatenate([self.buf, block])
        k = len(self.buf) // self.n
        if final and k == 0 and self.n_windows == 0 and len(self.buf):
            self.buf = np.tile(self.buf, -(-self.n // len(self.buf)))[: self.n]  # repeat-pad short input
            k = 1
        windows = self.buf[: k * self.n].reshape(k, self.n)
        self.buf = self.buf[k * self.n :]
        self.n_windows += k
        return windows, np.abs(windows).max(axis=1, initial=0.0)


class Windows:
    """Iterate a source as (model inputs (k, ...), peaks (k,)) chunks of whole analysis windows:
    MusiCNN log-mel patches (k, T, F), or raw waveform windows (k, samples) for waveform models.

    A trailing part-window is dropped unless the input has no full window at all (then it is
    repeat-padded). After iteration ``seconds`` holds the decoded duration. Input shorter than
    ``MIN_SECONDS`` raises ``AudioDecodeError`` at the end of iteration.
    """

    def __init__(self, src: AudioSource, cfg: FeatureConfig, max_seconds: float | None = None) -> None:
        self.decoded = stream_audio(src, sr=cfg.sr)  # raises now for missing/empty files
        self.cfg = cfg
        self.seconds = 0.0
        self.max_windows = None if max_seconds is None else max(1, round(max_seconds / cfg.patch_seconds))
        self.truncated = False  # True when max_seconds stopped decoding early

    @property
    def name(self) -> str:
        return self.decoded.name

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stream = _WaveStream(self.cfg) if self.cfg.input == "waveform" else _PatchStream(self.cfg)
        for block in self.decoded.blocks:
            mels, peaks = stream.push(block)
            if self.max_windows is not None and stream.n_windows >= self.max_windows:
                keep = len(mels) - (stream.n_windows - self.max_windows)
                self.truncated, self.seconds = True, self.max_windows * self.cfg.patch_seconds
                self.decoded.blocks.close()  # stops ffmpeg early
                if keep:
                    yield mels[:keep], peaks[:keep]
                return
            if len(mels):
                yield mels, peaks
        self.seconds = stream.n_samples / self.cfg.sr
        if self.seconds < MIN_SECONDS:
            raise AudioDecodeError(
                f"{self.name}: too short ({self.seconds:.2f} s of audio; at least {MIN_SECONDS:g} s is needed)"
            )
        mels, peaks = stream.push(np.zeros(0, np.float32), final=True)
        if len(mels):
            yield mels, peaks

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window at once (a 1-hour track is about 86 MB of patches, far less than its audio)."""
        chunks = list(self)
        return np.concatenate([m for m, _ in chunks]), np.concatenate([p for _, p in chunks])


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' was requested but CUDA is not available (use --device cpu or auto)")
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


class Classifier:
    """Recognise the genre of recordings with a shipped or trained model.

    >>> clf = Classifier.from_pretrained()            # the default model, shipped in the package
    >>> clf.predict("song.mp3").top(3)                # [("jazz", 0.81), ("blues", 0.07), ...]
    """

    def __init__(self, model: Any, *, device: str = "auto", batch_size: int | None = None,
                 min_confidence: float | None = None) -> None:
        import torch

        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise ParameterError(f"min_confidence must be between 0 and 1, got {min_confidence}")

        # Small batches are faster on CPU here: a batch of 2 windows keeps the front-end's conv outputs
        # in cache (2.7 s vs 5.2 s for 120 s of audio at batch 32) and peak memory lower (310 vs 460 MB).
        self.model = model
        self.device = resolve_device(device)
        self.module = model.module.to(self.device)
        self.batch_size = batch_size or (2 if self.device == "cpu" else 64)
        # calibration: logits / temperature before the softmax (fitted on validation clips; 1 = none)
        self.temperature = float(getattr(model, "config", {}).get("temperature", 1.0))
        self.min_confidence = DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
        self._torch = torch

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path | None = None, *, device: str = "auto", **kw: Any) -> Classifier:
        """Load a shipped model by name (default ``musicnn-gtzan``) or a model directory (an
        ensemble directory gives an ``EnsembleClassifier``)."""
        from .models.registry import load_model, read_manifest, resolve_model_dir

        path = resolve_model_dir(name_or_dir)
        config = read_manifest(path / "config.json")
        if config.get("architecture") == "ensemble":
            from .ensemble import EnsembleClassifier

            return EnsembleClassifier(path, config, device=device, **kw)
        return cls(load_model(path), device=device, **kw)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def name(self) -> str:
        return self.model.name

    def __call__(self, x: AudioSource, top_k: int = 5) -> list[dict[str, Any]]:
        """transformers-pipeline style: ``[{"label": ..., "score": ...}]`` for the top ``top_k``."""
        return self.predict(x).as_pipeline_output(top_k)

    def _run(self, mels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, ...) windows -> genre probabilities (n, n_labels), tag probabilities (n, n_tags)."""
        torch = self._torch
        probs, tags = [], []
        with torch.inference_mode():
            for i in range(0, len(mels), self.batch_size):
                x = torch.from_numpy(mels[i : i + self.batch_size]).to(self.device)
                out = self.module(x)
                probs.append(torch.softmax(out["logits"].float() / self.temperature, dim=-1).cpu().numpy())
                if "tags" in out:
                    tags.append(torch.sigmoid(out["tags"].float()).cpu().numpy())
        return np.concatenate(probs), (np.concatenate(tags) if tags else None)

    def _prediction(self, source: str, probs: np.ndarray, tags: np.ndarray | None, peaks: np.ndarray,
                    n_samples_seconds: float) -> Prediction:
        cfg = self.model.features
        loud = peaks >= SILENCE_PEAK
        if not loud.any():
            raise AudioDecodeError(f"{source}: silent (peak below -60 dBFS everywhere); nothing to classify")
        segments = [
            Segment(round(i * cfg.patch_seconds, 3), round(min((i + 1) * cfg.patch_seconds, n_samples_seconds), 3),
                    _sorted_scores(self.labels, probs[i]))
            for i in np.flatnonzero(loud)
        ]
        tag_scores = {} if tags is None else _merge_tags(self.model.tag_names, tags[loud].mean(axis=0))
        scores = _sorted_scores(self.labels, probs[loud].mean(axis=0))
        top = next(iter(scores))
        return Prediction(
            source=source,
            scores=scores,
            status="confident" if scores[top] >= self.min_confidence else "uncertain",
            agreement=float(np.mean(probs[loud].argmax(axis=1) == self.labels.index(top))),
            tags=tag_scores,
            segments=segments,
            duration=n_samples_seconds,
            model=self.name,
        )

    def predict(self, x: AudioSource, *, max_seconds: float | None = None) -> Prediction:
        """Classify one whole recording, streamed window by window (flat memory on long files).

        ``max_seconds`` analyses only the start of the track (e.g. 30 for a quick look).
        """
        windows = Windows(x, self.model.features, max_seconds)
        probs, tags, peaks = [], [], []
        for mels, pk in windows:
            p, t = self._run(mels)
            probs.append(p)
            peaks.append(pk)
            if t is not None:
                tags.append(t)
        return self._prediction(windows.name, np.concatenate(probs), np.concatenate(tags) if tags else None,
                                np.concatenate(peaks), windows.seconds)

    def predict_many(
        self, xs: Iterable[AudioSource], *, workers: int = 2, on_error: str = "raise"
    ) -> Iterator[Prediction | MusicGenreError]:
        """Classify many recordings, ``workers`` at a time (each decodes and runs the model).

        Yields results in input order. ``on_error="return"`` yields the ``MusicGenreError`` of a bad
        input in its place (so a batch goes on); ``"raise"`` raises it.
        """
        if on_error not in ("raise", "return"):
            raise ParameterError("on_error must be 'raise' or 'return'")
        import torch

        if isinstance(xs, Sized):  # one long file must not run on a single thread
            workers = min(workers, len(xs))
        workers = max(1, workers)
        threads = torch.get_num_threads()
        if self.device == "cpu":
            # Two single-threaded model runs beat one run on two threads here (27% faster on the
            # examples; the convolutions scale less than linearly across threads).
            torch.set_num_threads(max(1, threads // workers))
        items = iter(xs)
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures: list[Any] = []

                def refill() -> None:
                    while len(futures) < 2 * workers:
                        src = next(items, None)
                        if src is None:
                            return
                        futures.append(pool.submit(self.predict, src))

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
        finally:
            torch.set_num_threads(threads)


def _merge_tags(names: list[str], values: np.ndarray) -> dict[str, float]:
    """MSD and MTT tags in one dict, lower-cased; a tag both vocabularies have gets their mean."""
    sums: dict[str, list[float]] = {}
    for n, v in zip(names, values):
        sums.setdefault(n.lower(), []).append(float(v))
    merged = {k: sum(v) / len(v) for k, v in sums.items()}
    return {k: round(merged[k], 6) for k in sorted(merged, key=merged.__getitem__, reverse=True)}

