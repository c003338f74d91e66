"""The HTTP server: Gradio page at ``/`` plus ``POST /api/classify`` for clients that are not Python.

Uploads are read as a stream: a Content-Length over the limit is refused before any byte is read,
and the bytes are counted as they arrive, so an oversized body is refused (413, limit stated) after
at most the limit, never buffered whole. The file goes to the server's private folder, the analysis
through the shared ``AnalysisQueue`` (503 + Retry-After when full, 504 past the time limit).
Connections themselves are bounded by ``connections.py`` (header and body timeouts, a connection cap).

Each server keeps its temporary files in one private folder (``musicgenre-web-*`` in the temp dir) with a
``server.lock`` file it holds locked (flock) while it runs; a server killed with ``kill -9`` cannot
remove its folder, so every start removes the folders whose lock nobody holds, never a live server's.

No ``from __future__ import annotations`` here: FastAPI reads the endpoint's annotations at run time.
"""

import fcntl
import logging
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from ..errors import MusicGenreError
from ..prediction import Predictor
from .analyzer import Analyzer, Limits, check_port_free, import_gradio
from .connections import ConnectionLimits, guarded_protocol
from .queue import Abandoned, AnalysisQueue, Busy, TimedOut
from .ui import build_app

if TYPE_CHECKING:
    from .library_view import LibraryConfig

log = logging.getLogger(__name__)

MULTIPART_SLACK = 64 * 1024  # multipart framing around the file: boundaries, part headers, small fields
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class _TooLarge(Exception):
    pass


Message = MutableMapping[str, Any]


def _counting(receive: Callable[[], Awaitable[Message]], limit: int) -> Callable[[], Awaitable[Message]]:
    """Wrap an ASGI ``receive`` so that reading more than ``limit`` body bytes raises ``_TooLarge``."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _TooLarge
        return message

    return wrapped


def build_server(classifier: Predictor, limits: Limits = Limits(), *, jobs: AnalysisQueue | None = None,
                 workdir: Path | None = None, library: Optional["LibraryConfig"] = None) -> FastAPI:
    """FastAPI app: ``POST /api/classify`` (multipart field ``file``) -> ``Prediction.to_dict()`` JSON.
    ``jobs`` is shared with the Gradio page; ``workdir`` holds uploads while they are analysed; ``library`` adds
    the Library view and its API (``library_view.py``)."""
    gr = import_gradio()

    jobs = jobs or limits.queue_for_jobs()
    analyzer = Analyzer(classifier, limits, jobs)
    app = FastAPI(title="musicgenre", docs_url="/api/docs", openapi_url="/api/openapi.json")
    too_large = f"the upload is larger than the {limits.max_upload_mb:g} MB limit"

    @app.exception_handler(RequestValidationError)
    async def short_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the offending input back (a whole upload, say): name the field only
        fields = sorted({".".join(str(x) for x in e.get("loc", ())[1:]) or "request" for e in exc.errors()})
        return JSONResponse({"detail": f"invalid value for: {', '.join(fields)}"}, status_code=422)

    @app.get("/api/health")
    async def health() -> dict[str, int]:
        """Analyses running and waiting, and the limits."""
        return jobs.status()

    @app.post("/api/classify", openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"],
                   "properties": {"file": {"type": "string", "format": "binary"}}}}}}})
    async def classify(
        request: Request,
        quick: bool = Query(False, description="analyse only the first 30 s"),
        segments: bool = Query(True, description="include per-window scores"),
    ) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_upload_bytes + MULTIPART_SLACK:
            raise HTTPException(status_code=413, detail=too_large)
        streamed = Request(request.scope, _counting(request.receive, limits.max_upload_bytes + MULTIPART_SLACK))
        try:
            form = await streamed.form(max_files=1, max_fields=4)
        except _TooLarge:
            raise HTTPException(status_code=413, detail=too_large) from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise HTTPException(status_code=400,
                                    detail="send the audio as the multipart field 'file', with a file name")
            name = Path(upload.filename).name or "upload"
            suffix = Path(name).suffix if _SAFE_SUFFIX.match(Path(name).suffix) else ""
            # a real path lets ffmpeg probe the container; the name we make up never reaches ffmpeg
            with tempfile.NamedTemporaryFile(suffix=suffix, dir=workdir, prefix="upload-") as tmp:
                size = 0
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > limits.max_upload_bytes:
                        raise HTTPException(status_code=413, detail=too_large)
                    tmp.write(chunk)
                tmp.flush()
                try:
                    pred, seconds, cut = await jobs.run_async(
                        lambda: analyzer.classify(tmp.name, quick=quick), paths=(tmp.name,),
                        disconnected=request.is_disconnected)
                except Busy as e:
                    raise HTTPException(status_code=503, detail=str(e),
                                        headers={"Retry-After": str(e.retry_after)}) from None
                except TimedOut as e:
                    raise HTTPException(status_code=504, detail=str(e)) from None
                except Abandoned as e:
                    raise HTTPException(status_code=499, detail=str(e)) from None
                except MusicGenreError as e:
                    raise HTTPException(status_code=422, detail=str(e).replace(tmp.name, name)) from None
        finally:
            await form.close()
        out = pred.to_dict(segments=segments)
        out.update(source=name, seconds=round(seconds, 3), truncated=cut)
        return out

    if library is not None:  # before the page is mounted at "/", which would answer every other path
        from .library_view import build_router

        app.include_router(build_router(library))
    return gr.mount_gradio_app(app, build_app(classifier, limits, jobs, library=library is not None), path="/",
                               max_file_size=limits.max_upload_bytes)


WORKDIR_PREFIX = "musicgenre-web-"
LOCK_NAME = "server.lock"


def make_workdir(parent: Path | None = None) -> tuple[Path, int]:
    """A new private folder for this server and the descriptor of its lock, held until the process ends
    (the kernel drops a flock when its holder dies, even by SIGKILL). The lock is taken on a staging name
    and then renamed into place, so no other start ever sees an unlocked ``server.lock`` of a live server."""
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=parent))
    staging = workdir / f".{LOCK_NAME}.new"
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.replace(staging, workdir / LOCK_NAME)
    return workdir, fd


def remove_dead_workdirs(parent: Path | None = None) -> list[Path]:
    """Delete the private folders of servers that died (``kill -9``, power loss): ``musicgenre-web-*`` folders
    in ``parent`` (the temp dir) owned by this user whose ``server.lock`` nobody holds. A live server's folder
    (its lock is held) and folders without a lock file are left alone. Returns the folders removed."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live server
            os.close(fd)
            continue
        try:  # the lock is ours while we delete: two starts never remove the same folder twice
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


def uvicorn_config(app: Any, *, host: str, port: int, connections: ConnectionLimits | None = None) -> Any:
    """uvicorn's settings for our app: the guarded HTTP protocol (connections.py); open page connections
    (server-sent events) would otherwise hold a graceful shutdown forever, hence the 3-s limit."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3,
                          http=guarded_protocol(connections or ConnectionLimits()))


def serve(classifier: Predictor, *, host: str, port: int, limits: Limits = Limits(),
          connections: ConnectionLimits | None = None, library: Optional["LibraryConfig"] = None) -> None:
    """Run the server until SIGINT/SIGTERM; then stop running analyses (their decoders are killed)
    and delete every temporary file: API uploads and the page's upload cache live in one private
    folder, removed on the way out (and by the next start if this process is killed)."""
    import uvicorn

    check_port_free(host, port)
    # uvicorn handles SIGTERM itself, then re-raises it once it has stopped: turn that second one into
    # a normal exit so the clean-up below runs (exit status 0, as systemd expects after a stop)
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    for dead in remove_dead_workdirs():
        log.warning("removed %s, left by a server that did not stop normally", dead)
    workdir, lock = make_workdir()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(workdir / "gradio"))  # gradio reads it when the app is built
    jobs = limits.queue_for_jobs()
    try:
        app = build_server(classifier, limits, jobs=jobs, workdir=workdir, library=library)
        print(f"musicgenre web app on http://{host}:{port}/  (JSON API: POST http://{host}:{port}/api/classify)",
              flush=True)
        if library is not None:
            writes = "writes on" if library.allow_writes else "read-only: --allow-writes to write tags"
            print(f"library view on http://{host}:{port}/library  ({library.db}; {writes})", flush=True)
        uvicorn.Server(uvicorn_config(app, host=host, port=port, connections=connections)).run()
    finally:
        jobs.close()
        shutil.rmtree(workdir, ignore_errors=True)
        os.close(lock)
        signal.signal(signal.SIGTERM, previous)
        log.info("stopped; removed %s", workdir)


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)
