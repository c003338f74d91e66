"""The Gradio page: upload or record a song, see its top genres, tags, spectrogram and timeline."""

from __future__ import annotations

from typing import Any

from ..prediction import Predictor
from .analyzer import MODES, Analyzer, Limits, import_gradio
from .queue import AnalysisQueue


def build_app(classifier: Predictor, limits: Limits = Limits(), jobs: AnalysisQueue | None = None, *,
              library: bool = False) -> Any:
    """The Gradio Blocks page; its analyses go through ``jobs`` (shared with the JSON API). ``library``: link the
    Library view (``serve --db``)."""
    gr = import_gradio()

    analyzer = Analyzer(classifier, limits, jobs)
    cache_s = int(limits.cache_minutes * 60)
    with gr.Blocks(title="musicgenre", analytics_enabled=False, delete_cache=(max(60, cache_s // 4), cache_s)) as demo:
        gr.Markdown(
            f"# musicgenre\nUpload a song (MP3, WAV, FLAC, OGG, Opus, M4A) or record one, then press **Analyze**. "
            f"Model: `{classifier.name}` ({len(classifier.labels)} genres). "
            f"Limits: {limits.max_upload_mb:g} MB per file, the first {limits.max_seconds / 60:g} min are analysed."
            + (" Your library: [Library view](/library)." if library else "")
        )
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Song", elem_id="song")
                mode = gr.Radio(list(MODES), value=MODES[0], label="Analyse")
                button = gr.Button("Analyze", variant="primary", elem_id="analyze")
                status = gr.Markdown(elem_id="status")
            with gr.Column():
                top5 = gr.Label(num_top_classes=5, label="Top 5 genres", elem_id="top5")
                # tags beside the answer: never one of the model's genres (genres.descriptive_tags), and no
                # heading, so that no tag reads as a second answer
                tags = gr.Label(num_top_classes=10, label="Descriptive tags (moods, instruments, eras, other styles)",
                                elem_id="tags", show_heading=False)
        spec = gr.Image(label="Log-mel spectrogram of the analysed audio", type="numpy", interactive=False)
        timeline = gr.Plot(label="Genre over time")
        # Gradio admits as many as the shared queue holds; the queue decides who runs and who waits.
        button.click(analyzer.analyze, [audio, mode], [top5, spec, timeline, tags, status], api_name="classify",
                     concurrency_limit=limits.workers + limits.queue)
    demo.queue(max_size=limits.workers + limits.queue)
    return demo
