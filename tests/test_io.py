"""_io.write_atomic: one way to write files, safe for regular files and for devices/FIFOs."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from musicgenre._io import write_atomic


def test_write_atomic_replaces_a_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_atomic(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_atomic(target, boom)
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]  # previous version survives


def test_write_atomic_writes_through_a_fifo_instead_of_replacing_it(tmp_path):
    """`-o /dev/null` or a pipe must never turn the special file into a regular one."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, "hello")
    reader.join(10)
    assert got == [b"hello"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
