"""The web app's analysis core: upload or record a song, see its genres. ``musicgenre serve`` runs it.

One FastAPI app (server.py) serves both the Gradio page (ui.py, at ``/``) and a plain JSON endpoint
(``POST /api/classify``); both go through one ``AnalysisQueue`` (queue.py: bounded concurrency,
bounded queue, time limit) and ``Analyzer.classify`` to ``Classifier.predict``. Everything is local:
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

from ..errors import MusicGenreError, ParameterError
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

    def classify(self, src: str | bytes, *, quick: bool = False) -> tuple[Prediction, float, bool]:
        """-> (Prediction, seconds taken, whether the duration limit cut the analysis)."""
        size = len(src) if isinstance(src, bytes) else Path(src).stat().st_size
        if size > self.limits.max_upload_mb * 1e6:
            raise ParameterError(
                f"the file is {size / 1e6:.0f} MB; the upload limit is {self.limits.max_upload_mb:g} MB"
            )
        limit = min(QUICK_SECONDS, self.limits.max_seconds) if quick else self.limits.max_seconds
        t0 = time.perf_counter()
        pred = self.clf.predict(src, max_seconds=limit)
        return pred, time.perf_counter() - t0, pred.duration >= limit - self.clf.window_seconds

    def analyze(self, path: str | None, mode: str) -> tuple[Any, ...]:
        """Gradio handler: -> (top-5 label dict, spectrogram, timeline, tags, status markdown)."""
        gr = import_gradio()

        if not path:
            raise gr.Error("Upload a file or record from the microphone first.")

        def job() -> tuple[Any, float, bool, np.ndarray, Any]:
            pred, seconds, cut = self.classify(path, quick=mode != MODES[0])
            return pred, seconds, cut, spectrogram_image(path, pred.duration), timeline_figure(pred)

        try:
            pred, seconds, cut, spec, timeline = self.jobs.run(job, paths=(str(path),))
        except MusicGenreError as e:
            raise gr.Error(str(e).replace(str(path), Path(path).name)) from None
        note = ""
        if cut:
            note = f" Only the first {pred.duration:.0f} s were analysed" + (
                " (quick mode)." if mode != MODES[0] else f" (the {self.limits.max_seconds:.0f}-s limit).")
        sure = ("a confident call" if pred.status == "confident"
                else "**uncertain**: a guess, the top genres are close")
        status = (f"**{pred.label}** ({sure}; {pred.agreement:.0%} of the windows agree) — {pred.duration:.1f} s "
                  f"of audio in {len(pred.segments)} windows, analysed in {seconds:.2f} s.{note}")
        top5 = dict(pred.top(5))
        tags = dict(list(pred.tags.items())[:10])
        return top5, spec, timeline, tags, status


def spectrogram_image(path: str, seconds: float) -> np.ndarray:
    """Log-mel of the analysed audio (at most its first 2 minutes) as an RGB image, low frequencies
    at the bottom."""
    from matplotlib import colormaps

    from ..audio import stream_audio
    from ..features import FeatureConfig, log_mel

    cfg = FeatureConfig()
    limit = int(min(seconds, 120.0) * cfg.sr)
    blocks, n = [], 0
    stream = stream_audio(path, sr=cfg.sr).blocks
    for block in stream:
        blocks.append(block)
        n += len(block)
        if n >= limit:
            stream.close()
            break
    mel = log_mel(np.concatenate(blocks)[:limit]).T[::-1]  # (n_mels, frames)
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
