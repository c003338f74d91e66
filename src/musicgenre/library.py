"""Tagging a music library: an incremental scan into SQLite, and genre tags written into the files.

The database is the source of truth and is only ever added to or updated row by row:
- WAL journal, rows committed in batches; a killed scan loses at most the batch in flight, which the
  next run redoes (``path`` is the primary key, so nothing is ever duplicated);
- a file is re-classified only if its size/mtime changed *and* its content hash changed, or if the
  model (name, version) differs; a touched but identical file only gets its mtime refreshed;
- ``tagged`` records the genre last written into (or found in) the file's own tags, so a later
  ``--write-tags`` run tags files that an earlier scan classified but did not tag;
- ``path`` is the file's text when its name is valid UTF-8 and its exact bytes (a BLOB) when not
  (see fsnames.py); ``read_rows`` gives both back as ``str`` that opens the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .errors import MusicGenreError
from .file_tags import ALREADY, WOULD, WRITTEN, remove_temp_copies
from .fsnames import db_key, decodable, display, from_db
from .pipeline import predict_many

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    path          TEXT PRIMARY KEY,
    size          INTEGER NOT NULL,
    mtime         REAL NOT NULL,
    content_hash  TEXT NOT NULL,
    duration      REAL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    label         TEXT,
    score         REAL,
    scores        TEXT,   -- JSON {genre: probability}, all genres, highest first
    tags          TEXT,   -- JSON {tag: probability}, top 20
    error         TEXT,   -- NULL when classified; the reason when the file could not be
    scanned_at    TEXT NOT NULL,
    tagged        TEXT    -- the genre our tags in the file hold; NULL when not (yet) tagged
);
CREATE INDEX IF NOT EXISTS tracks_label ON tracks(label);
"""
COLUMNS = ("path", "size", "mtime", "content_hash", "duration", "model", "model_version", "label", "score",
           "scores", "tags", "error", "scanned_at", "tagged")
COMMIT_EVERY = 16  # rows per transaction: small enough that a kill loses little


def connect(db: Path) -> sqlite3.Connection:
    """Open (or create) a library database; anything else at that path is refused, never touched."""
    try:
        con = sqlite3.connect(str(db), timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(SCHEMA)
        _migrate(con)
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"{db}: not a musicgenre library database ({e})") from None
    return con


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a database written by an older version up to ``SCHEMA`` without touching its rows."""
    have = {r[1] for r in con.execute("PRAGMA table_info(tracks)")}
    if "tagged" not in have:
        con.execute("ALTER TABLE tracks ADD COLUMN tagged TEXT")
        con.commit()


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def row_from_prediction(path: str | bytes | os.PathLike, stat: os.stat_result, digest: str, model: str, version: str,
                        pred: Any | None, error: str | None) -> dict[str, Any]:
    """One ``tracks`` row; shared by the local scan and the Ray job so both write the same thing."""
    return {
        "path": db_key(path), "size": stat.st_size, "mtime": stat.st_mtime, "content_hash": digest,
        "duration": None if pred is None else round(pred.duration, 3),
        "model": model, "model_version": version,
        "label": None if pred is None else pred.label,
        "score": None if pred is None else pred.scores[pred.label],
        "scores": None if pred is None else json.dumps(pred.scores),
        "tags": None if pred is None else json.dumps(dict(list(pred.tags.items())[:20])),
        "error": error, "scanned_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tagged": None,
    }


def upsert(con: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
    con.executemany(
        f"INSERT OR REPLACE INTO tracks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [tuple(r.get(c) for c in COLUMNS) for r in rows],
    )


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
            summary.failures.append(f"{display(f)}: {e.strerror}")
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
        with decodable([f for f, _ in todo]) as names:
            results: Iterator[Any] = predict_many(classifier, names, workers=workers, on_error="return")
            batch: list[dict[str, Any]] = []
            last_commit = time.monotonic()
            for (f, st), name, result in zip(todo, names, results):
                error = None
                if isinstance(result, MusicGenreError):
                    error, result = str(result).replace(name, display(f)), None
                    summary.failed += 1
                    summary.failures.append(error)
                    (bar.write if bar else log.warning)(f"failed: {error}")
                else:
                    summary.done += 1
                try:
                    digest = file_hash(f)
                except OSError as e:  # vanished or unreadable since it was listed
                    digest, error = "", error or f"{display(f)}: {e.strerror}"
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


def read_rows(source: Path) -> Iterator[dict[str, Any]]:
    """Every row of a library: a SQLite database, or a folder of Parquet shards from the Ray engine.
    JSON columns (scores, tags) are decoded."""
    source = Path(source)
    if source.is_dir():
        yield from _decode_json(_read_shards(source))
        return
    if not source.is_file():
        raise MusicGenreError(f"{source}: database not found")
    con = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        con.row_factory = sqlite3.Row
        yield from _decode_json(dict(r) for r in con.execute("SELECT * FROM tracks ORDER BY CAST(path AS BLOB)"))
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"{source}: not a musicgenre library database ({e})") from None
    finally:
        con.close()


def _decode_json(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in rows:
        d["path"] = from_db(d["path"])
        d.setdefault("tagged", None)
        for k in ("scores", "tags"):
            d[k] = json.loads(d[k]) if d[k] else None
        yield d


def _read_shards(folder: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MusicGenreError("reading Parquet shards needs pyarrow (pip install 'musicgenre[distributed]')") from None
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise MusicGenreError(f"{folder}: no Parquet shards found")
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    # shards hold every path as bytes (Arrow strings must be UTF-8); the database keys them by db_key
    out = [{**{c: r.get(c) for c in COLUMNS}, "path": db_key(from_db(r["path"]))} for r in rows]
    return sorted(out, key=lambda r: os.fsencode(from_db(r["path"])))


def import_shards(folder: Path, db: Path) -> int:
    """Upsert the rows of a folder of Parquet shards into a library database; returns the row count."""
    rows = _read_shards(folder)
    con = connect(db)
    try:
        for i in range(0, len(rows), 500):
            upsert(con, rows[i : i + 500])
            con.commit()
    finally:
        con.close()
    return len(rows)
