"""The HTTP server: Gradio page at ``/`` plus ``POST /api/classify`` for clients that are not Python.

No ``from __future__ import annotations`` here: FastAPI reads the endpoint's annotations at run time.
"""

import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from .errors import MusicGenreError
from .web import Analyzer, Limits, build_app


def build_server(classifier: Any, limits: Limits = Limits()) -> FastAPI:
    """FastAPI app: ``POST /api/classify`` (multipart field ``file``) -> ``Prediction.to_dict()`` JSON."""
    import gradio as gr

    analyzer = Analyzer(classifier, limits)
    app = FastAPI(title="musicgenre", docs_url="/api/docs", openapi_url="/api/openapi.json")

    @app.post("/api/classify")
    async def classify(
        file: UploadFile = File(...),
        quick: bool = Query(False, description="analyse only the first 30 s"),
        segments: bool = Query(True, description="include per-window scores"),
    ) -> dict[str, Any]:
        name = Path(file.filename or "upload").name
        data = await file.read(int(limits.max_upload_mb * 1e6) + 1)  # one byte over: enough to refuse
        suffix = Path(name).suffix if len(Path(name).suffix) <= 8 else ""
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:  # a real path lets ffmpeg probe the container
            tmp.write(data)
            tmp.flush()
            try:
                pred, seconds, cut = await run_in_threadpool(analyzer.classify, tmp.name, quick=quick)
            except MusicGenreError as e:
                raise HTTPException(status_code=422, detail=str(e).replace(tmp.name, name)) from None
        out = pred.to_dict(segments=segments)
        out.update(source=name, seconds=round(seconds, 3), truncated=cut)
        return out

    return gr.mount_gradio_app(app, build_app(classifier, limits), path="/",
                               max_file_size=int(limits.max_upload_mb * 1e6))
