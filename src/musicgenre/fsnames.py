"""File names that are not valid UTF-8 (e.g. a Latin-1 byte): kept exactly, shown safely.

Python hands such names around as ``str`` with surrogate escapes (``os.fsdecode``). SQLite text and
Parquet strings must be UTF-8, so:
- the library database keys a path by its text when it is valid UTF-8 (every normal name, and
  every database written before this rule) and by its exact bytes (a BLOB) otherwise: ``db_key``;
- exports and messages show undecodable bytes as ``\\xNN`` escapes: ``display``;
- decoders that cannot take such a name are given an ASCII-named symlink to the file: ``decodable``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


def display(path: str | bytes | os.PathLike) -> str:
    """A printable, UTF-8-safe form of a path: undecodable bytes become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


@contextmanager
def decodable(paths: list[Path]) -> Iterator[list[str]]:
    """Paths a decoder can open: the path itself when its name is valid UTF-8, else an ASCII-named
    symlink to it in a private temporary folder (removed on exit)."""
    if all(is_utf8(p) for p in paths):
        yield [str(p) for p in paths]
        return
    with tempfile.TemporaryDirectory(prefix="musicgenre-names-") as tmp:
        out = []
        for i, p in enumerate(paths):
            if is_utf8(p):
                out.append(str(p))
            else:
                alias = Path(tmp) / f"{i:06d}{display(p.suffix)}"
                alias.symlink_to(Path(p).absolute())
                out.append(str(alias))
        yield out
