"""The web app's analysis core: upload or record a song, see its genres. ``musicgenre serve`` runs it.

One FastAPI app (server.py) serves both the Gradio page (ui.py, at ``/``) and a plain JSON endpoint
(``POST /api/classify``); both go through one ``AnalysisQueue`` (queue.py: bounded concurrency,
bounded queue, time limit) to ``Classifier.predict``. The page decodes each upload once (``decode_upload``):
the prediction reads the decoded samples as an (array, sr) source and the spectrogram draws the same
samples. The API, which draws nothing, streams the file through ``Analyzer.classify``. Everything is local:
analytics off, no share links, system fonts (no web-font CDN).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioDecodeError, MusicGenreError, ParameterError, Reason
from ..genres import descriptive_tags
from ..output import unknown_note
from ..prediction import Prediction, Predictor
from .queue import AnalysisQueue

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

QUICK_SECONDS = 30.0


def import_gradio() -> ModuleType:
    """gradio, imported with its usage analytics off: it reads ``GRADIO_ANALYTICS_ENABLED`` once, when it is
    first imported, so the variable is set here, right before (a listed exception to "no environment writes
    from library code": docs/architecture.md). Every import of gradio in the package goes through this."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio

    return gradio

MODES = ("Whole track", f"First {QUICK_SECONDS:g} s (quick)")


@dataclass(frozen=True)
class Limits:
    """Upload and load limits (configurable with ``serve`` flags); documented in the README."""

    max_upload_mb: float = 100.0
    max_seconds: float = 20 * 60.0  # longer tracks: only the first 20 min are analysed
    workers: int = 1  # analyses at once (the model already uses every core)
    queue: int = 8  # analyses waiting; more get 503 + Retry-After
    timeout_s: float = 300.0  # per request, waiting included
    cache_minutes: float = 10.0  # the page's uploads are deleted after this long

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)

    def queue_for_jobs(self) -> AnalysisQueue:
        return AnalysisQueue(workers=self.workers, queue_size=self.queue, timeout_s=self.timeout_s)


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise ParameterError(f"port {port} on {host} is already in use; choose another with --port") from None


class Analyzer:
    """The app's single entry to the model: limits, the queue, the quick/whole choice, and the figures."""

    def __init__(self, classifier: Predictor, limits: Limits = Limits(), jobs: AnalysisQueue | None = None) -> None:
        self.clf = classifier
        self.limits = limits
        self.jobs = jobs or limits.queue_for_jobs()

    def _limit(self, src: str | bytes, quick: bool) -> float:
        """The upload size checked; -> the seconds to analyse."""
        size = len(src) if isinstance(src, bytes) else Path(src).stat().st_size
        if size > self.limits.max_upload_mb * 1e6:
            raise ParameterError(
                f"the file is {size / 1e6:.0f} MB; the upload limit is {self.limits.max_upload_mb:g} MB"
            )
        return min(QUICK_SECONDS, self.limits.max_seconds) if quick else self.limits.max_seconds

    def classify(self, src: str | bytes, *, quick: bool = False) -> tuple[Prediction, float, bool]:
        """-> (Prediction, seconds taken, whether the duration limit cut the analysis); the file is streamed
        (flat memory; the decoder is the one process a stopped request kills)."""
        limit = self._limit(src, quick)
        t0 = time.perf_counter()
        pred = self.clf.predict(src, max_seconds=limit)
        return pred, time.perf_counter() - t0, pred.duration >= limit - self.clf.window_seconds

    def classify_upload(self, path: str, *, quick: bool = False) -> tuple[Prediction, float, bool, Upload]:
        """``classify`` for the page: the file decoded once (``decode_upload``), the prediction made from the
        decoded samples, which come back too, for the figures. A request stopped while the file decodes kills
        its decoder as before; the model then runs on what was decoded (at most the analysis limit)."""
        limit = self._limit(path, quick)
        t0 = time.perf_counter()
        upload = decode_upload(path, sr=model_rate(self.clf), max_seconds=limit)
        try:
            # the samples already stop at the limit: nothing more to cut (a limit would only add a warning)
            pred = self.clf.predict((upload.samples, upload.sr), max_seconds=upload.seconds + self.clf.window_seconds)
        except AudioDecodeError as e:  # too short, no music: named as the file, not as "<array>"
            raise type(e)(upload.name, e.reason, e.detail) from None
        pred.source, pred.warnings = upload.name, [*upload.warnings, *pred.warnings]
        return pred, time.perf_counter() - t0, pred.duration >= limit - self.clf.window_seconds, upload

    def analyze(self, path: str | None, mode: str) -> tuple[Any, ...]:
        """Gradio handler: -> (top-5 label dict, spectrogram, timeline, tags, status markdown)."""
        gr = import_gradio()

        if not path:
            raise gr.Error("Upload a file or record from the microphone first.")

        def job() -> tuple[Any, float, bool, np.ndarray, Any]:
            pred, seconds, cut, upload = self.classify_upload(path, quick=mode != MODES[0])
            return pred, seconds, cut, spectrogram_image(upload.samples, upload.sr), timeline_figure(pred)

        try:
            pred, seconds, cut, spec, timeline = self.jobs.run(job, paths=(str(path),))
        except AudioDecodeError as e:
            if e.reason in CANNOT_JUDGE:  # a recording too short or too quiet: said on the page, no genre shown
                return {}, None, None, {}, cannot_judge(e)
            raise gr.Error(str(e).replace(str(path), Path(path).name)) from None
        except MusicGenreError as e:
            raise gr.Error(str(e).replace(str(path), Path(path).name)) from None
        note = ""
        if cut:
            note = f" Only the first {pred.duration:.0f} s were analysed" + (
                " (quick mode)." if mode != MODES[0] else f" (the {self.limits.max_seconds:.0f}-s limit).")
        sure = ("a confident call" if pred.status == "confident"
                else "**uncertain**: a guess, the top genres are close")
        answer = f"**{pred.label}** ({sure}; {pred.agreement:.0%} of the windows agree)"
        if pred.status == "unknown":
            answer = f"**Unknown**: {unknown_note(pred)}"
        status = (f"{answer} — {pred.duration:.1f} s "
                  f"of audio in {len(pred.segments)} windows, analysed in {seconds:.2f} s.{note}")
        top5 = dict(pred.top(5))
        # no genre word of the model's beside the answer (the CLI's table does the same; the API keeps all)
        tags = dict(list(descriptive_tags(pred.tags, pred.scores).items())[:10])
        return top5, spec, timeline, tags, status


CANNOT_JUDGE = (Reason.TOO_SHORT, Reason.NO_MUSIC)


def cannot_judge(e: AudioDecodeError) -> str:
    """The page's status for audio that gets no genre: too short (under ``windows.MIN_SECONDS``), or silent or not
    music (``pipeline``'s evidence rule; a recording whose peak stays below -60 dBFS is silent to it)."""
    if e.reason is Reason.TOO_SHORT:
        head = "**Too short to judge**: no genre given"
        hint = "record or upload a few seconds or more (a genre needs at least one 3-s window to be sure of)"
    else:
        head = "**Too quiet to judge** (or no music in it): no genre given"
        hint = "record closer to the music or turn it up, then try again"
    return f"{head} ({e.detail or e.reason.value}); {hint}."


@dataclass(frozen=True)
class Upload:
    """One upload decoded once: mono float32 ``samples`` at ``sr`` (at most the analysis limit), its printable
    ``name`` and what the decoder reported (truncated, damaged)."""

    name: str
    samples: np.ndarray
    sr: int
    warnings: list[str]

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sr


def model_rate(predictor: Predictor) -> int:
    """The sample rate the model reads (an ensemble's highest), at which the page decodes an upload."""
    from ..features import FeatureConfig

    members = getattr(predictor, "members", None)
    if members:
        return max(model_rate(m) for m in members)
    features = getattr(getattr(predictor, "model", None), "features", None)
    return int(getattr(features, "sr", FeatureConfig.sr))


def decode_upload(path: str, *, sr: int, max_seconds: float) -> Upload:
    """Decode ``path`` once, whole, at ``sr`` (at most ``max_seconds``): the samples the prediction and the
    figures share."""
    from ..audio import stream_audio

    decoded = stream_audio(path, sr=sr, max_seconds=max_seconds)
    blocks = list(decoded.blocks)
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return Upload(decoded.name, samples, sr, decoded.info.warnings)


def spectrogram_image(samples: np.ndarray, sr: int) -> np.ndarray:
    """Log-mel of the analysed audio (at most its first 2 minutes) as an RGB image, low frequencies
    at the bottom."""
    from matplotlib import colormaps

    from ..features import FeatureConfig, log_mel

    cfg = FeatureConfig(sr=sr)
    mel = log_mel(samples[: int(120.0 * sr)], cfg=cfg).T[::-1]  # (n_mels, frames)
    mel = (mel - mel.min()) / (np.ptp(mel) + 1e-9)
    step = max(1, mel.shape[1] // 1200)  # keep the image a sensible width
    rgb = colormaps["magma"](mel[:, ::step])[..., :3]
    return (np.repeat(rgb, 3, axis=0) * 255).astype(np.uint8)


def timeline_figure(pred: Prediction) -> Figure:
    """Genre-over-time: the probability of the track's top-5 genres in each analysis window (its length
    comes from the model: ``Predictor.window_seconds``). Drawn on a bare Figure: no global
    backend, nothing left in pyplot's registry."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.subplots()
    starts = [s.start for s in pred.segments]
    for genre, _ in pred.top(5):
        ax.plot(starts, [s.scores[genre] for s in pred.segments], marker="o" if len(starts) < 30 else None,
                label=genre)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize=8, ncol=5)
    ax.set_title("Genre over time" + (" (one window: play a longer track)" if len(starts) < 2 else ""))
    fig.tight_layout()
    return fig
