"""Error hierarchy: every user-facing failure is a MusicGenreError with a readable message.

Decode failures carry one of a small, fixed set of reasons (``Reason``), so that every failed file
prints as one line ``NAME: <reason>[ (short detail)]`` and callers can branch on ``err.reason``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class Reason(str, Enum):
    """Why an input gave no prediction. The value is the text shown to users."""

    FILE_NOT_FOUND = "file not found"
    PERMISSION_DENIED = "permission denied"
    NOT_A_REGULAR_FILE = "not a regular file"
    SYMLINK_LOOP = "symlink loop"
    EMPTY_FILE = "empty file"
    NOT_AUDIO = "not audio"
    UNSUPPORTED_CODEC = "unsupported codec"
    CORRUPT = "corrupt or truncated"
    TOO_SHORT = "too short"
    TOO_LONG = "too long"
    NO_MUSIC = "no music detected"
    INVALID_INPUT = "invalid input"  # Python API: wrong type, shape or sample rate


class MusicGenreError(Exception):
    """Root of all musicgenre errors."""


class AudioDecodeError(MusicGenreError):
    """The input could not be turned into usable audio (missing, corrupt, empty, silent, too short).

    ``AudioDecodeError(source, reason, detail)`` builds the standard one-line message; a plain
    ``AudioDecodeError("message")`` still works (its reason is ``Reason.NOT_AUDIO``).
    ``source`` is the printable input name, ``detail`` a short human hint or None.
    """

    def __init__(self, source: str, reason: Reason | None = None, detail: str | None = None) -> None:
        if reason is None:  # legacy form: one preformatted message
            message, source, reason = source, "", Reason.NOT_AUDIO
        else:
            message = f"{source}: {reason.value}" + (f" ({detail})" if detail else "")
        super().__init__(message)
        self.source = source
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # keeps reason/detail across pickling (Ray, processes)
        if not self.source:
            return (type(self), (str(self),))
        return (type(self), (self.source, self.reason, self.detail))


class NoMusicError(AudioDecodeError):
    """The input decoded, but holds silence, DC, isolated clicks or noise: no genre is given."""

    def __init__(self, source: str, reason: Reason | None = Reason.NO_MUSIC, detail: str | None = None) -> None:
        super().__init__(source, reason, detail)


class ParameterError(MusicGenreError, ValueError):
    """An argument has an invalid value."""


class WeightsError(MusicGenreError):
    """Model weights are missing, unreadable, or fail their checksum."""
