"""Printable names for any input: file names the file system allows but a terminal, JSON or CSV
writer may not (undecodable bytes, control characters)."""

from __future__ import annotations

import os
from typing import Any


def printable_name(src: Any) -> str:
    """A one-line, always-encodable name for ``src`` (a path, str or bytes path).

    Bytes that are not valid in the file-system encoding (kept by Python as lone surrogates,
    ``surrogateescape``) become ``\\xNN``; control characters such as newlines become escapes,
    so one name is always one line and never raises UnicodeEncodeError when printed.
    """
    if isinstance(src, (bytes, bytearray)):
        src = os.fsdecode(bytes(src))
    text = os.fspath(src) if isinstance(src, os.PathLike) else str(src)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a raw byte that was not valid UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ascii(ch)[1:-1])  # \n, \x1b, \u200b, \ud800 ...
    return "".join(out)
