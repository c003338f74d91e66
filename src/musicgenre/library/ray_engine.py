"""`musicgenre scan --engine ray`: the same classification as a Ray Data job.

A pool of actors, each holding one Classifier, classifies the files where they live (each actor
opens the path on its own node, so the library must be mounted at the same path on every node).
Every actor batch becomes rows (``db.row_from_prediction``: the ``tracks`` columns, the backbone features and
the file's own tags, as the local scan writes them) written as Parquet shards; the driver then upserts the
shards into the SQLite database. Files already in the database unchanged are skipped
before the job starts, so an interrupted job is simply run again.

``quiet=True`` (``scan -q``) keeps Ray's own output off the terminal: its progress and execution logs (Ray
Data), its start-up warnings and its workers' output; they still go to Ray's session log files
(``/tmp/ray/session_*/logs``). What Ray's C++ core writes straight to file descriptor 2 while the job runs is
held back too, and shown only if the job fails. Without it, Ray prints as it does by default.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._names import printable_name
from ..errors import MusicGenreError
from .db import connect, db_key, delete_paths, file_hash, import_shards, read_rows, row_from_prediction, same_file
from .filetags import read_file_tags
from .scan import RETRY, ScanSummary, plan, tag_pending
from .tags import remove_temp_copies


class ClassifyBatch:
    """Ray actor: one Classifier per actor; a batch of paths -> a batch of ``tracks`` rows."""

    def __init__(self, model: str | None, device: str) -> None:
        from ..pipeline import load

        # One core per actor (each is its own process, one per CPU): two ONNX Runtime threads in each of
        # two actors on two cores would fight over them (with torch, the runtime sets its process-wide count).
        self.clf = load(model, device=device, threads=1)
        self.version = self.clf.version

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = []
        for raw in batch["path"]:
            path = os.fsdecode(bytes(raw))  # paths travel as bytes: a name need not be UTF-8
            pred, error = None, None
            try:
                before: os.stat_result | None = os.stat(path)
            except OSError:
                before = None
            try:
                pred = self.clf.predict(path)
            except MusicGenreError as e:
                error = str(e)
            file_tags = None
            try:
                st, digest = os.stat(path), file_hash(Path(path))
                file_tags = None if pred is None else read_file_tags(path)  # before the last stat: same content
                if before is None or not same_file(before, os.stat(path)):  # as in the local scan: retried
                    digest, pred = RETRY, None
                    error = f"{printable_name(path)}: changed while it was being classified; it will be retried"
            except OSError as e:  # gone rows are deleted by the driver after the import
                st, digest, error = os.stat_result((0,) * 10), RETRY, error or f"{printable_name(path)}: {e.strerror}"
                pred = None
            row = row_from_prediction(path, st, digest, self.clf.name, self.version, pred, error, file_tags)
            rows.append({**row, "path": os.fsencode(path)})
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def scan_ray(
    files: list[Path], db: Path, model: str | None, *, address: str | None = None, shards: Path | None = None,
    device: str = "cpu", actors: int | None = None, batch_size: int = 8, tagger: Any | None = None,
    quiet: bool = False,
) -> ScanSummary:
    try:
        import ray  # noqa: F401 (only checks that Ray is installed)
    except ImportError:
        raise MusicGenreError("--engine ray needs Ray: pip install 'musicgenre[distributed]'") from None
    from ..modeldir import identity

    name, version = identity(model)
    want = _feature_backbone(model, device)
    summary = ScanSummary()
    shards = Path(shards or f"{db}.shards")
    if shards.is_dir() and any(shards.glob("*.parquet")):
        # shards of a run that stopped before its import: keep their work, then clear the folder
        import_shards(shards, db)
        for f in shards.glob("*.parquet"):
            f.unlink()
    files = remove_temp_copies(files)
    con = connect(db)
    try:
        todo = [os.fsencode(f.resolve()) for f, _ in plan(con, files, name, version, summary, want)]
    finally:
        con.close()
    if todo:
        with _ray_quiet() if quiet else _as_is():
            _run_job(todo, shards, db, model, device, address, actors, batch_size, summary)
    if tagger is not None:
        con = connect(db)
        try:
            tag_pending(con, files, tagger, name, version, summary)
        finally:
            con.close()
    return summary


def _feature_backbone(model: str | None, device: str) -> tuple[str, str] | None:
    """The features the actors' model will give (``Classifier.feature_backbone``), from the same model on the
    backend they will choose (torch for CUDA), loaded here on the CPU; None when it cannot be loaded here
    (e.g. no torch on the driver): then missing features alone start no reclassification."""
    from ..pipeline import load

    try:
        clf = load(model, device="cpu", backend="torch" if device == "cuda" else "auto", threads=1)
    except MusicGenreError:
        return None
    return getattr(clf, "feature_backbone", None)


def _run_job(todo: list[bytes], shards: Path, db: Path, model: str | None, device: str, address: str | None,
             actors: int | None, batch_size: int, summary: ScanSummary) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    n = actors or max(1, int(ray.available_resources().get("CPU", 1)))
    ds: Any = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=max(1, min(len(todo), 4 * n)))
    ds = ds.map_batches(ClassifyBatch, fn_constructor_kwargs={"model": model, "device": "cpu" if device == "auto"
                        else device}, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=n), num_cpus=1)
    ds.write_parquet(str(shards))
    import_shards(shards, db)
    gone = [p for p in todo if not os.path.isfile(p)]  # deleted or turned into a folder during the job
    if gone:
        con = connect(db)
        try:
            delete_paths(con, [db_key(p) for p in gone])
            con.commit()
        finally:
            con.close()
    for r in read_rows(shards):
        if r["error"]:
            summary.failed += 1
            summary.failures.append(r["error"])
        else:
            summary.done += 1


@contextmanager
def _as_is() -> Iterator[None]:
    yield


# Ray's progress and execution messages, switched off while a quiet job runs (restored afterwards).
_QUIET_DATA_CONTEXT = {"enable_progress_bars": False, "enable_operator_progress_bars": False,
                       "print_on_execution_start": False, "enable_auto_log_stats": False, "verbose_stats_logs": False}


@contextmanager
def _ray_quiet() -> Iterator[None]:
    """While the job runs: Ray Data without progress bars or progress logs, the console handlers of Ray's
    loggers ("ray", "ray.data") silent (their file handlers still write Ray's session logs), and file
    descriptor 2 (where Ray's C++ core logs) in a temporary file, replayed onto stderr only if the job fails."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved_ctx = {k: getattr(ctx, k) for k in _QUIET_DATA_CONTEXT if hasattr(ctx, k)}
    consoles = [h for name in ("ray", "ray.data") for h in logging.getLogger(name).handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                and getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)]
    saved_levels = [h.level for h in consoles]
    for k in saved_ctx:
        setattr(ctx, k, _QUIET_DATA_CONTEXT[k])
    for h in consoles:
        h.setLevel(logging.CRITICAL + 1)
    failed = True
    sys.stderr.flush()
    held, fd2 = tempfile.TemporaryFile(), os.dup(2)
    os.dup2(held.fileno(), 2)
    try:
        yield
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(fd2, 2)
        os.close(fd2)
        if failed:
            held.seek(0)
            os.write(2, held.read())
        held.close()
        for h, level in zip(consoles, saved_levels):
            h.setLevel(level)
        for k, v in saved_ctx.items():
            setattr(ctx, k, v)
