"""Finding audio files: folders walked (sorted, symlink loops cut), and the OS errors of a path as the fixed
``Reason`` values."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._names import printable_name
from ..errors import AudioDecodeError, Reason

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".aif", ".aiff", ".au", ".wma", ".webm"}
)


def find_audio_files(paths: list[Any], *, errors: list[str]) -> Iterator[Path]:
    """Files as given; directories walked recursively (sorted) for audio extensions.

    Inputs that cannot be used (missing, symlink loop, permission denied) are reported in
    ``errors`` as one printable line each and skipped; unreadable subfolders are skipped too.
    """
    for raw in paths:
        p = Path(raw)
        problem = stat_problem(p)
        if problem is None and p.is_dir():
            found: list[Path] = []
            seen: set[tuple[int, int]] = set()  # folders already walked: symlinked folders may loop
            walk = os.walk(p, followlinks=True, onerror=lambda e: errors.append(_os_error_line(e)))
            for root, dirs, files in walk:
                try:
                    st = os.stat(root)
                except OSError as e:
                    errors.append(_os_error_line(e))
                    dirs.clear()
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    dirs.clear()
                    continue
                seen.add((st.st_dev, st.st_ino))
                dirs.sort()
                found.extend(Path(root) / f for f in files if Path(f).suffix.lower() in AUDIO_EXTENSIONS)
            found.sort()
            if not found:
                errors.append(f"{printable_name(p)}: no audio files found")
            yield from found
        elif problem is None or problem[0] is Reason.NOT_A_REGULAR_FILE:
            yield p  # a FIFO or device is refused by stream_audio with the same wording
        else:
            errors.append(str(AudioDecodeError(printable_name(p), *problem)))


def _os_error_line(e: OSError) -> str:
    reason, detail = reason_for_oserror(e)
    return str(AudioDecodeError(printable_name(e.filename or "?"), reason, detail))


def reason_for_oserror(e: OSError) -> tuple[Reason, str | None]:
    """An OS error as one of the fixed ``Reason`` values (and a short detail)."""
    if e.errno == errno.ELOOP:
        return Reason.SYMLINK_LOOP, None
    if e.errno in (errno.EACCES, errno.EPERM):
        return Reason.PERMISSION_DENIED, None
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return Reason.FILE_NOT_FOUND, None
    if e.errno == errno.ENAMETOOLONG:
        return Reason.FILE_NOT_FOUND, "name too long"
    return Reason.CORRUPT, e.strerror or type(e).__name__


def stat_problem(path: Path) -> tuple[Reason, str | None] | None:
    """Why ``path`` cannot be read as an input (missing, loop, permission, not a file), or None."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOENT and os.path.islink(path):
            return Reason.FILE_NOT_FOUND, "broken symlink"
        return reason_for_oserror(e)
    except ValueError:  # embedded NUL byte
        return Reason.FILE_NOT_FOUND, "invalid name"
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return None
    return Reason.NOT_A_REGULAR_FILE, None


