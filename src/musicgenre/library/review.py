"""What the owner decided while reviewing likely mis-tags: the keep list, and the library's paths a page may touch.

The keep list is its own table, ``review_keep`` (created idempotently, ``CREATE TABLE IF NOT EXISTS``, beside the
scan's tables, whose rows it never touches): one row per file whose tag the owner listened to and kept, with the
tag value kept. A file is no longer listed as a suspect while its tag is still the one kept; once its tag changes
(a correction, a rescan of a retagged file), the keep no longer applies.

``library_file`` is the one rule for which paths the web page may play or write: a path stored in the database
(``tracks.path``, which ``scan`` records resolved), given as an absolute path with no ``..``, that is still a
regular file and still resolves to itself (a file since replaced by a link, to anywhere, is refused).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import datetime, timezone
from pathlib import Path

from ..errors import MusicGenreError
from .db import db_key

KEEP_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_keep (
    path    TEXT PRIMARY KEY,  -- as tracks.path
    genre   TEXT NOT NULL,     -- the tag kept, as the file held it (several genres joined by "; ")
    kept_at TEXT NOT NULL      -- UTC, ISO 8601
);
"""
BUSY_TIMEOUT_S = 10.0  # a scan commits every few seconds: a page's write waits for it, then says "busy"


class NotInLibrary(MusicGenreError):
    """The path is not a file of this library (or no longer one): the page answers 404."""


class LibraryBusy(MusicGenreError):
    """Another writer (a scan) held the database past the busy timeout; nothing was changed."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_db(db: Path, *, timeout: float | None = None) -> sqlite3.Connection:
    """A connection to an existing library database (never creates one), with the review tables in place; a write
    waits ``timeout`` seconds (default ``BUSY_TIMEOUT_S``) for another writer's lock."""
    if not Path(db).is_file():
        raise MusicGenreError(f"{db}: database not found; scan the library first: `musicgenre scan --db {db} DIR`")
    try:
        con = sqlite3.connect(str(db), timeout=BUSY_TIMEOUT_S if timeout is None else timeout)
        if "tracks" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
            con.close()
            raise MusicGenreError(f"{db}: not a musicgenre library database (no tracks table)")
        con.executescript(KEEP_SCHEMA)
    except sqlite3.OperationalError as e:
        raise busy(db, e) from None
    except sqlite3.DatabaseError as e:
        raise MusicGenreError(f"{db}: not a musicgenre library database ({e})") from None
    return con


def busy(db: Path, e: sqlite3.OperationalError) -> MusicGenreError:
    """The one message for a database another writer (a scan) holds past the busy timeout."""
    if "locked" in str(e) or "busy" in str(e):
        return LibraryBusy(f"{db}: the library database is busy (a scan is writing to it); nothing was changed, "
                               "try again when it has finished")
    return MusicGenreError(f"{db}: {e}")


def library_file(con: sqlite3.Connection, path: str) -> str:
    """``path`` if it is a file of this library (module docstring), else ``NotInLibrary``."""
    if not path or not os.path.isabs(path) or ".." in Path(path).parts or "\0" in path:
        raise NotInLibrary(f"{path!r}: not a file of this library")
    row = con.execute("SELECT path FROM tracks WHERE path = ?", (db_key(path),)).fetchone()
    if row is None:
        raise NotInLibrary(f"{path!r}: not a file of this library")
    try:
        st = os.lstat(path)
        real = os.path.realpath(path)
    except OSError:
        raise NotInLibrary(f"{path!r}: no longer there") from None
    if not stat.S_ISREG(st.st_mode) or real != os.path.abspath(path):
        raise NotInLibrary(f"{path!r}: no longer a regular file of this library")
    return path


def keep(con: sqlite3.Connection, path: str, genre: str) -> None:
    """Remember that the owner keeps ``genre`` on ``path`` (replacing an earlier keep of that file)."""
    con.execute("INSERT OR REPLACE INTO review_keep (path, genre, kept_at) VALUES (?, ?, ?)",
                (db_key(path), genre, now()))
    con.commit()


def kept(con: sqlite3.Connection) -> dict[str, str]:
    """path -> the tag kept on it."""
    from .db import from_db

    return {from_db(p): g for p, g in con.execute("SELECT path, genre FROM review_keep")}


def file_genres(con: sqlite3.Connection, path: str) -> list[str]:
    """The genres the database holds for the file's own tags (``file_tags.genres`` of its current content)."""
    import json

    row = con.execute("SELECT ft.genres FROM file_tags ft JOIN tracks t ON t.path = ft.path AND "
                      "t.content_hash = ft.content_hash WHERE t.path = ?", (db_key(path),)).fetchone()
    return list(json.loads(row[0]) or []) if row and row[0] else []


def genre_counts(con: sqlite3.Connection) -> tuple[dict[str, int], int, int]:
    """({genre value as the files spell it: files}, files without a genre tag, classified files): what the files'
    own tags say now (``file_tags`` of each track's current content), most files first. Values our writer put
    there (``genre_ours``) count as untagged here, as ``learn`` never reads them."""
    import json
    from collections import Counter

    counts: Counter[str] = Counter()
    untagged = total = 0
    for genres, ours in con.execute("SELECT ft.genres, ft.genre_ours FROM tracks t LEFT JOIN file_tags ft ON "
                                    "ft.path = t.path AND ft.content_hash = t.content_hash WHERE t.error IS NULL"):
        total += 1
        values = [] if ours else list(json.loads(genres) or []) if genres else []
        if not values:
            untagged += 1
        counts.update(dict.fromkeys(values, 1))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold()))), untagged, total
