"""Tagging a music library: an incremental scan into the SQLite library database (``db.py``).

A file is re-classified only if its size/mtime changed *and* its content hash changed, or if the model
(name, version) differs, or if the model gives backbone features (``Classifier.feature_backbone``) and the
file's are missing or another backbone's; a touched but identical file only gets its mtime refreshed. Each
row is written with the prediction's features and the file's own tags (``filetags``), from the same decode
and backbone pass. ``--write-tags`` also tags files that an earlier scan classified but did not tag.

Files may change while a scan runs. A row is written only for content that stayed put: the file is
stat-ed when the scan is planned and again after it was decoded and hashed; if anything changed
(truncated, rewritten, replaced by another file) the row records that as its error with no content hash,
which makes the next scan classify the file again (as it does after a transient failure such as
"permission denied"). A file deleted or turned into a folder in the meantime keeps no row at all.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat as stat_mode
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._names import printable_name
from ..errors import AudioDecodeError, MusicGenreError, Reason
from ..pipeline import predict_many
from .db import COMMIT_EVERY, connect, db_key, delete_paths, file_hash, rehash, row_from_prediction, same_file, upsert
from .filetags import read_file_tags
from .tags import ALREADY, FAILED, WOULD, WRITTEN, remove_temp_copies

log = logging.getLogger(__name__)


@dataclass
class ScanSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    touched: int = 0  # mtime changed, content identical: not re-classified
    tagged: int = 0
    failures: list[str] = field(default_factory=list)
    # files classified before by another model or version, or whose stored features came from another backbone
    # or front end: analysed again ("model version" or "backbone version" of what they held -> files)
    reanalysed: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        extra = f", {self.touched} touched (unchanged content)" if self.touched else ""
        tags = f", {self.tagged} files tagged" if self.tagged else ""
        return f"{self.done} classified, {self.skipped} skipped (unchanged), {self.failed} failed{extra}{tags}"


def plan(con: sqlite3.Connection, files: list[Path], model: str, version: str,
         summary: ScanSummary, features: tuple[str, str] | None = None) -> list[tuple[Path, os.stat_result]]:
    """Which files need classifying. Unchanged files are skipped; touched-but-identical ones get
    their new mtime recorded without re-classifying. ``features``: the (backbone, version) of the features
    this model's predictions carry (``Classifier.feature_backbone``; None: it gives none): a classified file
    without current features of that backbone (none stored, another backbone or version, or computed from
    other content) is classified again, which fills them in."""
    todo = []
    for f in files:
        path = db_key(f.resolve())
        try:
            st = f.stat()
        except OSError as e:  # vanished (or its folder became unreadable) since it was listed
            _fail(summary, f"{printable_name(f)}: {e.strerror}", None)
            if _gone(e):
                delete_paths(con, [path])
            continue
        if not stat_mode.S_ISREG(st.st_mode):  # a folder now, say: no row for it
            _fail(summary, f"{printable_name(f)}: no longer a regular file", None)
            delete_paths(con, [path])
            continue
        row = con.execute(
            "SELECT t.size, t.mtime, t.content_hash, t.model, t.model_version, t.error, f.backbone, "
            "f.backbone_version, f.content_hash FROM tracks t LEFT JOIN features f ON f.path = t.path "
            "WHERE t.path = ?", (path,)
        ).fetchone()
        if row is None or (row[3], row[4]) != (model, version) or row[2] == RETRY:
            todo.append((f, st))
            if row is not None and row[2] != RETRY and (row[3], row[4]) != (model, version):
                _count(summary.reanalysed, f"{row[3]} {row[4]}")
        elif features is not None and row[5] is None and ((row[6], row[7]) != features or row[8] != row[2]):
            todo.append((f, st))  # classified, but its features are missing or not this backbone's
            if row[6] is not None and (row[6], row[7]) != features:
                _count(summary.reanalysed, f"features of {row[6]} {row[7]}")
        elif (row[0], row[1]) == (st.st_size, st.st_mtime):
            summary.skipped += 1
        elif row[0] == st.st_size and _hash_or_none(f) == row[2]:
            con.execute("UPDATE tracks SET mtime = ? WHERE path = ?", (st.st_mtime, path))
            summary.touched += 1
            summary.skipped += 1
        else:
            todo.append((f, st))
    con.commit()
    if summary.reanalysed:  # said once per scan: why a library scanned before is analysed again
        was = ", ".join(f"{n} by {what}" for what, n in sorted(summary.reanalysed.items()))
        log.warning("re-analysing %d files analysed before (%s) with %s %s",
                    sum(summary.reanalysed.values()), was, model, version)
    return todo


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


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
        todo = plan(con, files, model, version, summary, getattr(classifier, "feature_backbone", None))
        bar = None
        if progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="file", desc="scan", dynamic_ncols=True)
        results: Iterator[Any] = predict_many(classifier, [str(f) for f, _ in todo], workers=workers,
                                              on_error="return")
        batch: list[dict[str, Any]] = []
        last_commit = time.monotonic()
        for (f, st), result in zip(todo, results):
            row = checked_row(f, st, result, model, version)
            if row is None:  # deleted or no longer a file: a row would be stale
                upsert(con, batch)  # keep the order: an earlier row of this path must not come back
                batch = []
                delete_paths(con, [db_key(f.resolve())])
                _fail(summary, f"{printable_name(f)}: deleted or replaced by a folder during the scan; no row kept",
                      bar)
            elif row["error"]:
                _fail(summary, row["error"], bar)
            else:
                summary.done += 1
            if row is not None:
                batch.append(row)
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


RETRY = ""  # content_hash of a row whose file could not be read whole and unchanged: classified again next scan


def _fail(summary: ScanSummary, line: str, bar: Any) -> None:
    summary.failed += 1
    summary.failures.append(line)
    (bar.write if bar else log.warning)(f"failed: {line}")


def _hash_or_none(f: Path) -> str | None:
    try:
        return file_hash(f)
    except OSError:  # unreadable: classified (and the failure recorded) like a changed file
        return None


def _gone(e: OSError) -> bool:
    return isinstance(e, (FileNotFoundError, NotADirectoryError))


def checked_row(f: Path, st: os.stat_result, result: Any, model: str, version: str) -> dict[str, Any] | None:
    """The row for ``f`` after classifying it, if the file the result came from is still the one stat-ed
    as ``st`` when the scan was planned; else a row that makes the next scan retry it (``RETRY`` hash),
    or None when the path no longer holds a file (deleted, now a folder)."""
    error = str(result) if isinstance(result, MusicGenreError) else None
    pred = None if error else result
    key = f.resolve()
    try:
        after = f.stat()
        if not stat_mode.S_ISREG(after.st_mode):
            return None
        digest = file_hash(f)
        file_tags = None if pred is None else read_file_tags(f)  # before the last stat: same content
        after = f.stat()
    except OSError as e:
        if _gone(e) or isinstance(e, IsADirectoryError):
            return None
        # unreadable now (permission denied...): recorded, and retried by the next scan
        return row_from_prediction(key, st, RETRY, model, version, None,
                                   error or f"{printable_name(f)}: {e.strerror}; it will be retried")
    if not same_file(st, after):
        return row_from_prediction(key, after, RETRY, model, version, None,
                                   f"{printable_name(f)}: changed while it was being classified; "
                                   "it will be classified again on the next scan")
    if isinstance(result, AudioDecodeError) and result.reason is Reason.PERMISSION_DENIED:
        digest = RETRY  # unreadable to the decoder: tried again once permissions are fixed
    return row_from_prediction(key, st, digest, model, version, pred, error, file_tags)


def tag_pending(con: sqlite3.Connection, files: list[Path], tagger: Any, model: str, version: str,
                summary: ScanSummary) -> None:
    """Write tags into every listed file whose row (this model) is classified but not tagged with its
    label: new results and those of earlier scans alike. Each file's new size/mtime/hash and
    ``tagged`` are committed right after its write, so a killed run never tags a file twice."""
    for f in files:
        key = db_key(f.resolve())
        row = con.execute(
            "SELECT label, scores, content_hash, status FROM tracks WHERE path = ? AND error IS NULL "
            "AND label IS NOT NULL AND model = ? AND model_version = ? AND (tagged IS NULL OR tagged != label)",
            (key, model, version),
        ).fetchone()
        if row is None:
            continue
        outcome = tagger.tag(f, SimpleNamespace(label=row[0], scores=json.loads(row[1]), status=row[3] or "",
                                                closest_tags=[]))
        if outcome in (WRITTEN, WOULD):
            summary.tagged += 1
        if outcome == FAILED:  # recorded in one line and tried again by the next --write-tags run
            con.execute("UPDATE tracks SET tag_error = ? WHERE path = ?",
                        (getattr(tagger, "last_error", None) or "tags not written", key))
            con.commit()
        if outcome not in (WRITTEN, ALREADY):
            continue
        try:
            st = f.stat()
            digest = file_hash(f)
            file_tags = read_file_tags(f)
            if not same_file(st, f.stat()):
                continue  # changed again right after our write: the next scan sees a changed file
        except OSError:
            continue
        con.execute("UPDATE tracks SET size = ?, mtime = ?, content_hash = ?, tagged = label, tag_error = NULL "
                    "WHERE path = ?", (st.st_size, st.st_mtime, digest, key))
        rehash(con, key, row[2], digest, file_tags)  # the audio is unchanged: its features still hold
        con.commit()
