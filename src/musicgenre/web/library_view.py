"""The Library view (``/library``) and its JSON API (``/api/library/...``), served beside the classify page when
``musicgenre serve`` is given ``--db``.

The page is one static HTML file (``library.html``: no framework, no web font, nothing fetched from elsewhere) that
reads the JSON API: the library's genres (as its files spell them; with ``--model`` a model from ``learn``, its
out-of-fold figures), the likely mis-tags (``learn.review``: the model's call on each file's stored windows, read by
``library.learning.read_stored``, against its tag now), similar tracks (``library.similar``), the map (``library.map``)
and the undo log (``library.undo``). Every file it plays or writes passes ``library.review.library_file`` (a path stored
in the database, still a regular file resolving to itself; anything else is 404). Writes (a genre, a keep, an undo)
answer 403 unless the server was started with ``--allow-writes``; a database a scan holds answers 503 with Retry-After,
nothing changed.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time.
"""

import logging
import mimetypes
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel

from .._names import printable_name
from ..errors import MusicGenreError

log = logging.getLogger(__name__)

READ_ONLY = ("this server is read-only: restart it with `musicgenre serve --db ... --allow-writes` to write tags, "
             "keep tags or undo")
MAX_K = 100


@dataclass(frozen=True)
class LibraryConfig:
    """What ``serve --db`` was given: the database, a model directory from ``learn`` (None: no suspects), and
    whether the page may write."""

    db: Path
    model: Path | None = None
    allow_writes: bool = False


class TagRequest(BaseModel):
    path: str
    genre: str


class KeepRequest(BaseModel):
    path: str


class UndoRequest(BaseModel):
    id: int | None = None


def page_html() -> str:
    return resources.files(__package__).joinpath("library.html").read_text(encoding="utf-8")


class LibraryState:
    """The server's view of one library: the learned model (loaded once), the map and the scored suspects,
    each recomputed only when the library's content changes (``library.map.content_key``)."""

    def __init__(self, config: LibraryConfig) -> None:
        from ..library.map import MapCache
        from ..library.review import open_db

        self.config = config
        open_db(config.db).close()  # exists, is a library database, review tables in place: fail at start
        self.model: Any = None
        if config.model is not None:
            from ..learn.review import LearnedModel

            self.model = LearnedModel.load(config.model)
        self.maps = MapCache()
        self._scored: tuple[str, list[dict[str, Any]]] | None = None
        self.problem: str | None = None  # why the library has no suspects to show (no windows of this backbone)
        self._lock = threading.Lock()
        self.relearning: dict[str, Any] = {"state": "idle"}
        self._job: threading.Thread | None = None

    def relearn(self) -> dict[str, Any]:
        """Start learning the model again from the library as it is now (the owner's corrections included), in
        the background, with the options its card records (``LearnOptions.from_card``); the running job's state
        when one runs already."""
        with self._lock:
            if self._job is not None and self._job.is_alive():
                return dict(self.relearning)
            self.relearning = {"state": "running", "started": _now()}
            self._job = threading.Thread(target=self._relearn, name="musicgenre-relearn", daemon=True)
            self._job.start()
            return dict(self.relearning)

    def _relearn(self) -> None:
        from functools import partial

        from ..learn.options import LearnOptions
        from ..learn.review import LearnedModel
        from ..learn.run import learn
        from ..library.learning import read_stored
        from ..modeldir import read

        path = self.model.path
        try:
            options = LearnOptions.from_card(read(path).get("training") or {}, db=self.config.db, out=path)
            learned = learn(options, read=partial(read_stored, self.config.db), say=log.info)
            model = LearnedModel.load(path)  # learn replaced the directory whole (write, then rename)
        except MusicGenreError as e:  # ParameterError too: the model directory is as it was
            log.warning("relearning %s failed: %s", printable_name(path), e)
            with self._lock:
                self.relearning = {**self.relearning, "state": "failed", "error": str(e), "finished": _now()}
            return
        except Exception as e:  # noqa: BLE001 - a thread's error would otherwise vanish; the old model stays
            log.exception("relearning %s failed", printable_name(path))
            with self._lock:
                self.relearning = {**self.relearning, "state": "failed", "error": f"{type(e).__name__}: {e}",
                                   "finished": _now()}
            return
        with self._lock:
            self.model, self._scored = model, None
            self.relearning = {**self.relearning, "state": "done", "finished": _now(), "validation": model.validation,
                               "genres": len(learned.report.genres)}

    def suspects(self) -> list[dict[str, Any]]:
        """The model's likely mis-tags now, the files the owner kept left out."""
        if self.model is None:
            return []
        import sqlite3

        from ..learn.review import review
        from ..library.learning import read_stored
        from ..library.map import content_key
        from ..library.review import kept, open_db

        con = open_db(self.config.db)
        try:
            keep = kept(con)
            key = content_key(con)
        finally:
            con.close()
        with self._lock:
            if self._scored is None or self._scored[0] != key:
                try:
                    stored = read_stored(self.config.db, self.model.backbone)
                except sqlite3.DatabaseError as e:
                    raise MusicGenreError(f"{self.config.db}: {e}") from None
                except MusicGenreError as e:  # nothing to judge (no classified file, another backbone): say why
                    self.problem, self._scored = str(e), (key, [])
                else:
                    self.problem, self._scored = None, (key, review(stored, self.model))
            scored = self._scored[1]
        return [s for s in scored if keep.get(s["path"]) != s["genre"]]


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def audio_url(path: str) -> str:
    from urllib.parse import quote

    return "/api/library/audio?path=" + quote(path, safe="")


def build_router(config: LibraryConfig) -> APIRouter:
    """The page and the API for ``config``'s library."""
    from ..library import review as rv
    from ..library import undo as ud

    state = LibraryState(config)
    router = APIRouter()
    db = config.db

    def library_path(path: str) -> str:
        con = rv.open_db(db)
        try:
            return rv.library_file(con, path)
        except rv.NotInLibrary:
            raise HTTPException(status_code=404, detail="not a file of this library") from None
        finally:
            con.close()

    def writable() -> None:
        if not config.allow_writes:
            raise HTTPException(status_code=403, detail=READ_ONLY)

    def failed(e: MusicGenreError) -> HTTPException:
        if isinstance(e, rv.NotInLibrary):
            return HTTPException(status_code=404, detail="not a file of this library")
        if isinstance(e, rv.LibraryBusy):
            return HTTPException(status_code=503, detail=str(e), headers={"Retry-After": "5"})
        return HTTPException(status_code=409, detail=str(e))

    @router.get("/library", response_class=HTMLResponse, include_in_schema=False)
    def library_page() -> HTMLResponse:
        return HTMLResponse(page_html())

    @router.get("/api/library/genres")
    def genres() -> dict[str, Any]:
        """The genres as the files spell them (files each); with a learned model, its genres' figures."""
        con = rv.open_db(db)
        try:
            counts, untagged, total = rv.genre_counts(con)
        finally:
            con.close()
        model = state.model
        return {
            "database": printable_name(db), "files": total, "untagged": untagged,
            "genres": [{"genre": g, "files": n} for g, n in counts.items()],
            "model": None if model is None else {"name": model.name, "path": printable_name(model.path),
                                                 "validation": model.validation,
                                                 "genres": [{"genre": g, **model.figures[g]} for g in model.labels]},
            "writes": config.allow_writes,
        }

    @router.get("/api/library/suspects")
    def suspects() -> dict[str, Any]:
        """Likely mis-tags, most certain first, each with a URL to play it."""
        try:
            found = state.suspects()
        except MusicGenreError as e:
            raise failed(e) from None
        note = state.problem if state.model is not None else (
            "no likely mis-tags without a model from `musicgenre learn`: start the server with --model DIR")
        return {"model": None if state.model is None else state.model.name, "note": note,
                "suspects": [{**s, "path": printable_name(s["path"]), "audio": audio_url(s["path"])} for s in found]}

    @router.post("/api/library/tag")
    def tag(body: TagRequest) -> dict[str, Any]:
        """Write ``genre`` into the file's tags and the database (logged for undo)."""
        writable()
        try:
            edit = ud.write_genre(db, body.path, body.genre)
        except MusicGenreError as e:
            raise failed(e) from None
        return {"written": edit.as_dict()}

    @router.post("/api/library/keep")
    def keep(body: KeepRequest) -> dict[str, Any]:
        """Keep the file's tag as it is: it is not listed again while it holds that tag."""
        writable()
        path = library_path(body.path)
        con = rv.open_db(db)
        try:
            genre = "; ".join(rv.file_genres(con, path))
            if not genre:
                raise HTTPException(status_code=409, detail="the file has no genre tag to keep")
            try:
                rv.keep(con, path, genre)
            except Exception as e:  # sqlite3.OperationalError: a scan holds the database
                import sqlite3

                if isinstance(e, sqlite3.OperationalError):
                    raise failed(rv.busy(db, e)) from None
                raise
        finally:
            con.close()
        return {"kept": {"path": printable_name(path), "genre": genre}}

    @router.post("/api/library/undo")
    def undo(body: UndoRequest) -> dict[str, Any]:
        """Revert the latest write (or the one with ``id``), file and database."""
        writable()
        try:
            edit = ud.undo(db, edit_id=body.id)
        except MusicGenreError as e:
            raise failed(e) from None
        return {"undone": edit.as_dict()}

    @router.post("/api/library/learn", status_code=202)
    def relearn() -> dict[str, Any]:
        """Learn the model again from the library as it is now, in the background (``musicgenre learn`` with the
        options the model's card records); ``GET`` says how it goes, and the genres' figures and the suspects
        follow the new model once it is done."""
        writable()
        if state.model is None:
            raise HTTPException(status_code=409, detail="no model to learn again: start the server with --model DIR "
                                                        "(a model from `musicgenre learn`)")
        return {"learn": state.relearn()}

    @router.get("/api/library/learn")
    def relearn_state() -> dict[str, Any]:
        """The background learn: idle, running, done (with the new model's figures) or failed (with why)."""
        return {"learn": dict(state.relearning)}

    @router.get("/api/library/edits")
    def edits(limit: int = Query(20, ge=1, le=500)) -> dict[str, Any]:
        """The undo log, newest first."""
        return {"edits": [e.as_dict() for e in ud.edits(db, limit=limit)]}

    @router.get("/api/library/similar")
    def similar(path: str = Query(...), k: int = Query(10, ge=1, le=MAX_K)) -> dict[str, Any]:
        """The ``k`` library files nearest ``path`` (cosine of the stored mean embeddings), each playable."""
        from ..library.similar import similar as nearest

        path = library_path(path)
        try:
            found = nearest(db, path, k=k)
        except MusicGenreError as e:
            raise failed(e) from None
        return {"path": printable_name(path),
                "similar": [{**n.as_dict(), "audio": audio_url(n.path)} for n in found.neighbours]}

    @router.get("/api/library/map")
    def library_map() -> dict[str, Any]:
        """Every file in two dimensions (PCA of the stored mean embeddings), with its genre tag, the learned model's
        genre that tag names (spellings merged), the scan's label and whether it is a likely mis-tag."""
        try:
            m = state.maps.get(db)
            marked = {s["path"] for s in state.suspects()}
        except MusicGenreError as e:
            raise failed(e) from None
        named = state.model.label_of if state.model is not None else (lambda _: None)
        return {"method": "PCA of the L2-normalised mean embeddings", "explained": list(m.explained),
                "points": [{"path": printable_name(p), "x": round(float(x), 4), "y": round(float(y), 4),
                            "genre": g, "model_genre": named(g.split("; ")) if g else None, "label": lab,
                            "suspect": p in marked}
                           for p, (x, y), g, lab in zip(m.paths, m.xy.tolist(), m.genres, m.labels)]}

    @router.get("/api/library/audio")
    def audio(path: str = Query(...)) -> FileResponse:
        """The file itself, for the page's players: only files of this library (else 404)."""
        path = library_path(path)
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media)

    return router
