"""Error hierarchy: every user-facing failure is a MusicGenreError with a readable message."""


class MusicGenreError(Exception):
    """Root of all musicgenre errors."""


class AudioDecodeError(MusicGenreError):
    """The input could not be turned into usable audio (missing, corrupt, empty, silent, too short)."""


class ParameterError(MusicGenreError, ValueError):
    """An argument has an invalid value."""


class WeightsError(MusicGenreError):
    """Model weights are missing, unreadable, or fail their checksum."""
