"""Tagging a music library: an incremental scan into the SQLite library database (``db.py``).

A file is re-classified only if its size/mtime changed *and* its content hash changed, or if the model
(name, version) differs; a touched but identical file only gets its mtime refreshed. ``--write-tags``
also tags files that an earlier scan classified but did not tag.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._names import printable_name
from ..errors import MusicGenreError
from ..pipeline import predict_many
from .db import COMMIT_EVERY, connect, db_key, file_hash, row_from_prediction, upsert
from .tags import ALREADY, WOULD, WRITTEN, remove_temp_copies

log = logging.getLogger(__name__)


@dataclass
class ScanSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    touched: int = 0  # mtime changed, content identical: not re-classified
    tagged: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f", {self.touched} touched (unchanged content)" if self.touched else ""
        tags = f", {self.tagged} files tagged" if self.tagged else ""
        return f"{self.done} classified, {self.skipped} skipped (unchanged), {self.failed} failed{extra}{tags}"


def plan(con: sqlite3.Connection, files: list[Path], model: str, version: str,
         summary: ScanSummary) -> list[tuple[Path, os.stat_result]]:
    """Which files need classifying. Unchanged files are skipped; touched-but-identical ones get
    their new mtime recorded without re-classifying."""
    todo = []
    for f in files:
        path = db_key(f.resolve())
        try:
            st = f.stat()
        except OSError as e:  # vanished since it was listed
            summary.failed += 1
            summary.failures.append(f"{printable_name(f)}: {e.strerror}")
            continue
        row = con.execute(
            "SELECT size, mtime, content_hash, model, model_version FROM tracks WHERE path = ?", (path,)
        ).fetchone()
        if row is None or (row[3], row[4]) != (model, version):
            todo.append((f, st))
        elif (row[0], row[1]) == (st.st_size, st.st_mtime):
            summary.skipped += 1
        elif row[0] == st.st_size and file_hash(f) == row[2]:
            con.execute("UPDATE tracks SET mtime = ? WHERE path = ?", (st.st_mtime, path))
            summary.touched += 1
            summary.skipped += 1
        else:
            todo.append((f, st))
    con.commit()
    return todo


def scan(
    files: list[Path], db: Path, classifier: Any, *, workers: int = 2, progress: bool = False,
    tagger: Any | None = None,
) -> ScanSummary:
    """Classify every file of ``files`` not already in ``db`` with this model; see module docstring.
    ``tagger`` (a ``TagWriter``) writes each new result into the file's own tags."""
    summary = ScanSummary()
    model, version = classifier.name, classifier.version
    files = remove_temp_copies(files)  # never classify our own temporary copies
    con = connect(db)
    try:
        todo = plan(con, files, model, version, summary)
        bar = None
        if progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="file", desc="scan", dynamic_ncols=True)
        results: Iterator[Any] = predict_many(classifier, [str(f) for f, _ in todo], workers=workers,
                                              on_error="return")
        batch: list[dict[str, Any]] = []
        last_commit = time.monotonic()
        for (f, st), result in zip(todo, results):
            error = None
            if isinstance(result, MusicGenreError):
                error, result = str(result), None
                summary.failed += 1
                summary.failures.append(error)
                (bar.write if bar else log.warning)(f"failed: {error}")
            else:
                summary.done += 1
            try:
                digest = file_hash(f)
            except OSError as e:  # vanished or unreadable since it was listed
                digest, error = "", error or f"{printable_name(f)}: {e.strerror}"
            batch.append(row_from_prediction(f.resolve(), st, digest, model, version, result, error))
            if len(batch) >= COMMIT_EVERY or time.monotonic() - last_commit > 5:
                upsert(con, batch)
                con.commit()
                batch, last_commit = [], time.monotonic()
            if bar:
                bar.update()
        upsert(con, batch)
        con.commit()
        if bar:
            bar.close()
        if tagger is not None:
            tag_pending(con, files, tagger, model, version, summary)
    finally:
        con.close()
    return summary


def tag_pending(con: sqlite3.Connection, files: list[Path], tagger: Any, model: str, version: str,
                summary: ScanSummary) -> None:
    """Write tags into every listed file whose row (this model) is classified but not tagged with its
    label: new results and those of earlier scans alike. Each file's new size/mtime/hash and
    ``tagged`` are committed right after its write, so a killed run never tags a file twice."""
    for f in files:
        key = db_key(f.resolve())
        row = con.execute(
            "SELECT label, scores FROM tracks WHERE path = ? AND error IS NULL AND label IS NOT NULL "
            "AND model = ? AND model_version = ? AND (tagged IS NULL OR tagged != label)", (key, model, version),
        ).fetchone()
        if row is None:
            continue
        outcome = tagger.tag(f, SimpleNamespace(label=row[0], scores=json.loads(row[1])))
        if outcome in (WRITTEN, WOULD):
            summary.tagged += 1
        if outcome not in (WRITTEN, ALREADY):
            continue
        try:
            st = f.stat()
            digest = file_hash(f)
        except OSError:
            continue
        con.execute("UPDATE tracks SET size = ?, mtime = ?, content_hash = ?, tagged = label WHERE path = ?",
                    (st.st_size, st.st_mtime, digest, key))
        con.commit()
