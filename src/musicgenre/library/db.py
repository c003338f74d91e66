"""The library database (SQLite): schema, migration, rows, reading back, Ray shard import.

The database is the source of truth and is only ever added to or updated row by row:
- WAL journal, rows committed in batches; a killed scan loses at most the batch in flight, which the
  next run redoes (``path`` is the primary key, so nothing is ever duplicated);
- ``tagged`` records the genre last written into (or found in) the file's own tags, ``tag_error`` why the
  last attempt to write them failed (NULL once they are written);
- ``content_hash`` is empty when the file could not be read whole and unchanged (it changed during the
  scan, or was unreadable): such a row is classified again by the next scan;
- ``path`` is the file's text when its name is valid UTF-8 (every normal name, and every database written
  before this rule) and its exact bytes (a BLOB) when not: SQLite text must be UTF-8, and a file name need
  not be. ``read_rows`` gives both back as a ``str`` (surrogate-escaped) that opens the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import MusicGenreError

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
    tagged        TEXT,   -- the genre our tags in the file hold; NULL when not (yet) tagged
    tag_error     TEXT    -- why the last tag write failed (one line); NULL when none failed
);
CREATE INDEX IF NOT EXISTS tracks_label ON tracks(label);
"""
COLUMNS = ("path", "size", "mtime", "content_hash", "duration", "model", "model_version", "label", "score",
           "scores", "tags", "error", "scanned_at", "tagged", "tag_error")
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
    if "tag_error" not in have:
        con.execute("ALTER TABLE tracks ADD COLUMN tag_error TEXT")
    con.commit()


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """True when nothing about a file's identity or content changed between two stats (ctime moves on every
    write, rename and chmod, and no program can set it back)."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


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
        "tagged": None, "tag_error": None,
    }


def upsert(con: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
    con.executemany(
        f"INSERT OR REPLACE INTO tracks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [tuple(r.get(c) for c in COLUMNS) for r in rows],
    )


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
        d.setdefault("tag_error", None)
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


def is_utf8(path: str | bytes | os.PathLike) -> bool:
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def db_key(path: str | bytes | os.PathLike) -> str | bytes:
    """The value stored in ``tracks.path``: text when valid UTF-8, else the file system's exact bytes."""
    s = os.fsdecode(path)
    return s if is_utf8(s) else os.fsencode(s)


def from_db(value: str | bytes) -> str:
    """``tracks.path`` -> a path string that opens the same file (surrogate-escaped where needed)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value
