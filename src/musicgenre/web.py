"""Web app: upload or record a song, see its genres. ``musicgenre serve`` runs it.

One FastAPI app (web_api.py) serves both the Gradio page (at ``/``) and a plain JSON endpoint
(``POST /api/classify``); both go through ``Analyzer.classify`` to ``Classifier.predict``. Everything is local:
analytics off, no share links, system fonts (no web-font CDN).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MusicGenreError, ParameterError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported anywhere

QUICK_SECONDS = 30.0
MODES = ("Whole track", f"First {QUICK_SECONDS:g} s (quick)")


@dataclass(frozen=True)
class Limits:
    """Upload limits (configurable with ``serve`` flags); documented in the README."""

    max_upload_mb: float = 100.0
    max_seconds: float = 20 * 60.0  # longer tracks: only the first 20 min are analysed


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise ParameterError(f"port {port} on {host} is already in use; choose another with --port") from None


class Analyzer:
    """The app's single entry to the model: limits, the quick/whole choice, and the figures."""

    def __init__(self, classifier: Any, limits: Limits = Limits()) -> None:
        self.clf = classifier
        self.limits = limits

    def classify(self, src: str | bytes, *, quick: bool = False) -> tuple[Any, float, bool]:
        """-> (Prediction, seconds taken, whether the duration limit cut the analysis)."""
        size = len(src) if isinstance(src, bytes) else Path(src).stat().st_size
        if size > self.limits.max_upload_mb * 1e6:
            raise ParameterError(
                f"the file is {size / 1e6:.0f} MB; the upload limit is {self.limits.max_upload_mb:g} MB"
            )
        limit = min(QUICK_SECONDS, self.limits.max_seconds) if quick else self.limits.max_seconds
        t0 = time.perf_counter()
        pred = self.clf.predict(src, max_seconds=limit)
        return pred, time.perf_counter() - t0, pred.duration >= limit - self.clf.model.features.patch_seconds

    def analyze(self, path: str | None, mode: str) -> tuple[Any, ...]:
        """Gradio handler: -> (top-5 label dict, spectrogram, timeline, tags, status markdown)."""
        import gradio as gr

        if not path:
            raise gr.Error("Upload a file or record from the microphone first.")
        try:
            pred, seconds, cut = self.classify(path, quick=mode != MODES[0])
        except MusicGenreError as e:
            raise gr.Error(str(e).replace(str(path), Path(path).name)) from None
        note = ""
        if cut:
            note = f" Only the first {pred.duration:.0f} s were analysed" + (
                " (quick mode)." if mode != MODES[0] else f" (the {self.limits.max_seconds:.0f}-s limit).")
        status = (f"**{pred.label}** — {pred.duration:.1f} s of audio in {len(pred.segments)} windows, "
                  f"analysed in {seconds:.2f} s.{note}")
        top5 = dict(pred.top(5))
        tags = dict(list(pred.tags.items())[:10])
        return top5, spectrogram_image(path, pred.duration), timeline_figure(pred), tags, status


def spectrogram_image(path: str, seconds: float) -> np.ndarray:
    """Log-mel of the analysed audio (at most its first 2 minutes) as an RGB image, low frequencies
    at the bottom."""
    from matplotlib import colormaps

    from .audio import stream_audio
    from .features import FeatureConfig, log_mel

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


def timeline_figure(pred: Any) -> Any:
    """Genre-over-time: the probability of the track's top-5 genres in each 3-s window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
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
    plt.close(fig)
    return fig


def build_app(classifier: Any, limits: Limits = Limits()) -> Any:
    """The Gradio Blocks page."""
    import gradio as gr

    analyzer = Analyzer(classifier, limits)
    with gr.Blocks(title="musicgenre", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# musicgenre\nUpload a song (MP3, WAV, FLAC, OGG, Opus, M4A) or record one, then press **Analyze**. "
            f"Model: `{classifier.name}` ({len(classifier.labels)} genres). "
            f"Limits: {limits.max_upload_mb:g} MB per file, the first {limits.max_seconds / 60:g} min are analysed."
        )
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Song")
                mode = gr.Radio(list(MODES), value=MODES[0], label="Analyse")
                button = gr.Button("Analyze", variant="primary", elem_id="analyze")
                status = gr.Markdown(elem_id="status")
            with gr.Column():
                top5 = gr.Label(num_top_classes=5, label="Top 5 genres", elem_id="top5")
                tags = gr.Label(num_top_classes=10, label="Descriptive tags", elem_id="tags")
        spec = gr.Image(label="Log-mel spectrogram of the analysed audio", type="numpy", interactive=False)
        timeline = gr.Plot(label="Genre over time")
        button.click(analyzer.analyze, [audio, mode], [top5, spec, timeline, tags, status], api_name="classify",
                     concurrency_limit=1)
    demo.queue(max_size=64, default_concurrency_limit=1)  # one model, users wait in line
    return demo


def serve(classifier: Any, *, host: str, port: int, limits: Limits = Limits()) -> None:
    import uvicorn

    from .web_api import build_server

    check_port_free(host, port)
    app = build_server(classifier, limits)
    print(f"musicgenre web app on http://{host}:{port}/  (JSON API: POST http://{host}:{port}/api/classify)",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
