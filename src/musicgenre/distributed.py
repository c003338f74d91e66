"""`musicgenre scan --engine ray`: the same classification as a Ray Data job.

A pool of actors, each holding one Classifier, classifies the files where they live (each actor
opens the path on its own node, so the library must be mounted at the same path on every node).
Every actor batch becomes rows of the ``tracks`` table written as Parquet shards; the driver then
upserts the shards into the SQLite database. Files already in the database unchanged are skipped
before the job starts, so an interrupted job is simply run again.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .errors import MusicGenreError
from .library import ScanSummary, connect, file_hash, import_shards, plan, read_rows, row_from_prediction


class ClassifyBatch:
    """Ray actor: one Classifier per actor; a batch of paths -> a batch of ``tracks`` rows."""

    def __init__(self, model: str | None, device: str) -> None:
        import torch

        from .pipeline import load

        torch.set_num_threads(1)  # one core per actor (its own process): Ray schedules the parallelism
        self.clf = load(model, device=device)
        self.version = self.clf.version

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = []
        for path in batch["path"]:
            path = str(path)
            pred, error = None, None
            try:
                pred = self.clf.predict(path)
            except MusicGenreError as e:
                error = str(e)
            try:
                st, digest = os.stat(path), file_hash(Path(path))
            except OSError as e:
                st, digest, error = os.stat_result((0,) * 10), "", error or f"{path}: {e.strerror}"
            rows.append(row_from_prediction(path, st, digest, self.clf.name, self.version, pred, error))
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def scan_ray(
    files: list[Path], db: Path, model: str | None, *, address: str | None = None, shards: Path | None = None,
    device: str = "cpu", actors: int | None = None, batch_size: int = 8, tagger: Any | None = None,
) -> ScanSummary:
    try:
        import ray
    except ImportError:
        raise MusicGenreError("--engine ray needs Ray: pip install 'musicgenre[distributed]'") from None
    from .hub import model_identity

    name, version = model_identity(model)
    summary = ScanSummary()
    shards = Path(shards or f"{db}.shards")
    if shards.is_dir() and any(shards.glob("*.parquet")):
        # shards of a run that stopped before its import: keep their work, then clear the folder
        import_shards(shards, db)
        for f in shards.glob("*.parquet"):
            f.unlink()
    con = connect(db)
    try:
        todo = [str(f.resolve()) for f, _ in plan(con, files, name, version, summary)]
    finally:
        con.close()
    if not todo:
        return summary
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    n = actors or max(1, int(ray.available_resources().get("CPU", 1)))
    ds: Any = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=max(1, min(len(todo), 4 * n)))
    ds = ds.map_batches(ClassifyBatch, fn_constructor_kwargs={"model": model, "device": "cpu" if device == "auto"
                        else device}, batch_size=batch_size, concurrency=n, num_cpus=1)
    ds.write_parquet(str(shards))
    import_shards(shards, db)
    done = {r["path"]: r for r in read_rows(shards)}
    for r in done.values():
        if r["error"]:
            summary.failed += 1
            summary.failures.append(r["error"])
        else:
            summary.done += 1
    if tagger is not None:
        _tag_from_rows(tagger, done.values(), db, summary)
    return summary


def _tag_from_rows(tagger: Any, rows: Any, db: Path, summary: ScanSummary) -> None:
    """Write tags on the driver from the job's rows, then record the files' new size/mtime/hash."""
    con = connect(db)
    try:
        for r in rows:
            if r["error"] or not tagger.write(Path(r["path"]), SimpleNamespace(label=r["label"], scores=r["scores"])):
                continue
            summary.tagged += 1
            st = os.stat(r["path"])
            con.execute("UPDATE tracks SET size = ?, mtime = ?, content_hash = ? WHERE path = ?",
                        (st.st_size, st.st_mtime, file_hash(Path(r["path"])), r["path"]))
        con.commit()
    finally:
        con.close()
