"""The owner's genre corrections, written into the file and the database together, and undone the same way.

``write_genre`` sets a library file's genre to the owner's choice through the tag writer's ``write_genres``
(a verified copy swapped in atomically, every other tag kept, no ``MUSICGENRE_CONFIDENCE`` mark: the genre is the
owner's, so ``learn`` reads it as a label). The database follows in one transaction: the track's size, time and
content hash, ``tracks.tagged`` (NULL: the file no longer holds our prediction), its features re-keyed to the new
hash (the audio is unchanged) and its ``file_tags`` read again, and a row in the undo log ``review_log`` (created
idempotently) with what the file held before. ``undo`` puts that back, file and database, and marks the row
undone; ``musicgenre library undo`` and the page's Undo button call it.

Order, so that nothing is ever lost: the database's write lock is taken first (``BEGIN IMMEDIATE``: a scan holding
it makes the write wait up to ``review.BUSY_TIMEOUT_S``, then fail before the file is touched); the file is
checked to be the content the database describes (else: rescan first); then the file is written; then the rows
are committed. Should that commit fail, the file's old tags are written back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._names import printable_name
from ..errors import MusicGenreError
from .db import db_key, file_hash, from_db, rehash, same_file
from .filetags import read_file_tags
from .review import busy, library_file, now, open_db
from .tags import read_genres, write_genres

log = logging.getLogger(__name__)

LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    path           TEXT NOT NULL,     -- as tracks.path
    old_genres     TEXT NOT NULL,     -- JSON list: the file's genre values before the write
    old_confidence TEXT,              -- its MUSICGENRE_CONFIDENCE before (NULL: none, the genres were the owner's)
    old_tagged     TEXT,              -- tracks.tagged before
    new_genres     TEXT NOT NULL,     -- JSON list: what was written
    written_at     TEXT NOT NULL,     -- UTC, ISO 8601
    undone_at      TEXT               -- NULL until undone
);
"""


@dataclass(frozen=True)
class Edit:
    """One row of the undo log."""

    id: int
    path: str
    old_genres: list[str]
    new_genres: list[str]
    written_at: str
    undone_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": printable_name(self.path), "old_genres": self.old_genres,
                "new_genres": self.new_genres, "written_at": self.written_at, "undone_at": self.undone_at}


_EDIT_COLUMNS = "id, path, old_genres, new_genres, written_at, undone_at"


def _edit(row: tuple[Any, ...]) -> Edit:
    return Edit(int(row[0]), from_db(row[1]), json.loads(row[2]), json.loads(row[3]), row[4], row[5])


def _open(db: Path) -> sqlite3.Connection:
    con = open_db(db)
    try:
        con.executescript(LOG_SCHEMA)
    except sqlite3.OperationalError as e:
        con.close()
        raise busy(db, e) from None
    return con


def edits(db: Path, *, limit: int = 50) -> list[Edit]:
    """The latest ``limit`` rows of the undo log, newest first."""
    con = _open(db)
    try:
        return [_edit(r) for r in con.execute(f"SELECT {_EDIT_COLUMNS} FROM review_log ORDER BY id DESC LIMIT ?",
                                              (limit,))]
    finally:
        con.close()


def _begin(con: sqlite3.Connection, db: Path) -> None:
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise busy(db, e) from None


def _current(con: sqlite3.Connection, path: str) -> tuple[str, str | None]:
    """(content_hash, tagged) of the file's row, checked against the file itself: refused when it changed since
    the last scan (its stored features and tags would not be this content's)."""
    content_hash, tagged = con.execute("SELECT content_hash, tagged FROM tracks WHERE path = ?",
                                       (db_key(path),)).fetchone()
    try:
        if file_hash(Path(path)) != content_hash:
            raise MusicGenreError(f"{printable_name(path)}: changed since the last scan; rescan it first "
                                  "(`musicgenre scan`), nothing was changed")
    except OSError as e:
        raise MusicGenreError(f"{printable_name(path)}: {e.strerror or e}; nothing was changed") from None
    return content_hash, tagged


def _record(con: sqlite3.Connection, path: str, old_hash: str, tagged: str | None) -> None:
    """The track's row after our write changed the file's bytes (not its audio)."""
    key = db_key(path)
    st = Path(path).stat()
    digest = file_hash(Path(path))
    tags = read_file_tags(path)
    if not same_file(st, Path(path).stat()):
        raise MusicGenreError(f"{printable_name(path)}: changed by another program right after the write")
    con.execute("UPDATE tracks SET size = ?, mtime = ?, content_hash = ?, tagged = ?, tag_error = NULL "
                "WHERE path = ?", (st.st_size, st.st_mtime, digest, tagged, key))
    rehash(con, key, old_hash, digest, tags)


def _write_then_commit(con: sqlite3.Connection, db: Path, path: str, genres: list[str], confidence: str | None,
                       before: tuple[list[str], str | None], rows: Any) -> None:
    """Write the file, then ``rows(con)`` and commit; the file's ``before`` tags are written back if the database
    part fails."""
    try:
        write_genres(Path(path), genres, confidence=confidence)
    except OSError as e:
        raise MusicGenreError(f"{printable_name(path)}: tags not written ({e.strerror or e}); the file is "
                              "unchanged") from None
    except MusicGenreError as e:
        raise MusicGenreError(f"{printable_name(path)}: tags not written ({e}); the file is unchanged") from None
    try:
        rows(con)
        con.commit()
    except BaseException as e:
        con.rollback()
        try:
            write_genres(Path(path), before[0], confidence=before[1])
        except Exception as back:  # the file keeps the new genre: say so, never silently
            log.error("%s: the database was not updated and the old tags could not be written back (%s)",
                      printable_name(path), back)
            raise
        if isinstance(e, sqlite3.OperationalError):
            raise busy(db, e) from None
        raise


def write_genre(db: Path, path: str, genre: str) -> Edit:
    """Set ``path``'s genre to ``genre`` (the owner's word, as given) in the file and the database, logged for
    ``undo`` (module docstring). ``review.NotInLibrary`` for a path that is not a file of the library;
    MusicGenreError (one line, nothing changed) for a busy database, a file changed since its scan, a format
    without tags, a read-only file."""
    genre = genre.strip()
    if not genre or "\0" in genre or len(genre) > 200:
        raise MusicGenreError("give the genre as a non-empty name (at most 200 characters)")
    db = Path(db)
    con = _open(db)
    try:
        library_file(con, path)
        _begin(con, db)
        try:
            old_hash, tagged = _current(con, path)
            before = read_genres(Path(path))
            new = [genre]

            def rows(c: sqlite3.Connection) -> None:
                _record(c, path, old_hash, None)
                c.execute("INSERT INTO review_log (path, old_genres, old_confidence, old_tagged, new_genres, "
                          "written_at) VALUES (?, ?, ?, ?, ?, ?)",
                          (db_key(path), json.dumps(before[0], ensure_ascii=False), before[1], tagged,
                           json.dumps(new, ensure_ascii=False), now()))

            _write_then_commit(con, db, path, new, None, before, rows)
        finally:
            if con.in_transaction:
                con.rollback()
        row = con.execute(f"SELECT {_EDIT_COLUMNS} FROM review_log WHERE path = ? ORDER BY id DESC LIMIT 1",
                          (db_key(path),)).fetchone()
    finally:
        con.close()
    log.info("%s: GENRE %r -> %r (by the owner)", printable_name(path), "; ".join(before[0]), genre)
    return _edit(row)


def undo(db: Path, *, edit_id: int | None = None) -> Edit:
    """Revert one write (default: the latest not yet undone), file and database; returns it, marked undone.
    Refused (one line, nothing changed) when a later write to the same file is still in place, or when the file's
    genre is no longer the one written."""
    db = Path(db)
    con = _open(db)
    try:
        _begin(con, db)
        try:
            where, args = ("id = ?", (edit_id,)) if edit_id is not None else ("undone_at IS NULL", ())
            row = con.execute(f"SELECT {_EDIT_COLUMNS}, old_confidence, old_tagged FROM review_log WHERE {where} "
                              "ORDER BY id DESC LIMIT 1", args).fetchone()
            if row is None:
                raise MusicGenreError(f"no genre write with id {edit_id} in {db}" if edit_id is not None
                                      else f"{db}: nothing to undo")
            edit, old_conf, old_tagged = _edit(row[:6]), row[6], row[7]
            if edit.undone_at is not None:
                raise MusicGenreError(f"write {edit.id} ({printable_name(edit.path)}) was already undone")
            later = con.execute("SELECT id FROM review_log WHERE path = ? AND id > ? AND undone_at IS NULL",
                                (db_key(edit.path), edit.id)).fetchone()
            if later is not None:
                raise MusicGenreError(f"{printable_name(edit.path)}: write {later[0]} came after write {edit.id}; "
                                      f"undo it first")
            library_file(con, edit.path)
            old_hash, _ = _current(con, edit.path)
            now_genres = read_genres(Path(edit.path))
            if now_genres != (edit.new_genres, None):
                raise MusicGenreError(f"{printable_name(edit.path)}: its genre is now {'; '.join(now_genres[0])!r}, "
                                      f"not the {'; '.join(edit.new_genres)!r} written; nothing was changed")
            undone_at = now()

            def rows(c: sqlite3.Connection) -> None:
                _record(c, edit.path, old_hash, old_tagged)
                c.execute("UPDATE review_log SET undone_at = ? WHERE id = ?", (undone_at, edit.id))

            _write_then_commit(con, db, edit.path, edit.old_genres, old_conf, now_genres, rows)
        finally:
            if con.in_transaction:
                con.rollback()
    finally:
        con.close()
    log.info("%s: GENRE back to %r (undid write %d)", printable_name(edit.path), "; ".join(edit.old_genres), edit.id)
    return Edit(edit.id, edit.path, edit.old_genres, edit.new_genres, edit.written_at, undone_at)
