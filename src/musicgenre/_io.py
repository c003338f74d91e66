"""File writing and hashing, defined once: every file musicgenre writes goes through ``write_atomic``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[IO[bytes]], None]) -> None:
    """Write ``data`` (text, bytes, or a function that writes to a binary file) to a temporary file in the
    same folder, fsync it, then rename it over ``path``: an interrupted run never leaves a half-written file,
    and the previous version survives until the new one is complete."""
    path = Path(path)
    if path.exists() and not path.is_file():  # /dev/null, a FIFO, a terminal: write through, never replace
        with open(path, "wb") as dev:
            if callable(data):
                data(dev)
            else:
                dev.write(data.encode() if isinstance(data, str) else data)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600: keep the old file's mode, else the umask's
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Pretty JSON, written atomically (config files, reports)."""
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MB blocks (model weights, ONNX graphs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """A matplotlib ``Figure`` as PNG, written atomically (no pyplot: no process-wide backend state)."""
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
