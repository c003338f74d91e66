"""A library that changes under the scan, and a disk that says no while tags are written.

Every case ends with the same checks: no crash, the failure recorded in the database as one line, no audio
file damaged (byte-identical where we did not write it), exactly one row per file and no stale row, and a
clean follow-up run that classifies (or tags) what is there now.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import musicgenre.library.scan as scan_mod
import musicgenre.library.tags as tags_mod
from musicgenre.errors import AudioDecodeError, Reason
from musicgenre.genres import display
from musicgenre.library.db import file_hash, read_rows
from musicgenre.library.scan import RETRY, scan
from musicgenre.library.tags import TagWriter, read_genre

from .conftest import tone, write_audio

ROOT = Path(__file__).resolve().parents[1]
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def make_library(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_audio(folder / f"t{i}{ext}", tone(3.5, 22050, 220 + 60 * i), 22050)
            for i, ext in enumerate([".wav", ".flac", ".mp3", ".ogg"])]


def listed(lib: Path) -> list[Path]:
    return sorted(p for p in lib.rglob("*") if p.is_file() and p.suffix in (".wav", ".flac", ".mp3", ".ogg"))


def rows(db: Path) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in read_rows(db)}


def assert_no_stale_row(db: Path, lib: Path) -> None:
    """One row per audio file there is, none for a file there is not; every row's size and mtime are the
    file's, and its hash is the file's (or the retry marker, with the error recorded in one line)."""
    got = list(read_rows(db))
    paths = [Path(r["path"]) for r in got]
    assert len(paths) == len(set(paths))
    assert {p.resolve() for p in paths} == {p.resolve() for p in listed(lib)}
    for r in got:
        p = Path(r["path"])
        st = p.stat()
        assert (r["size"], r["mtime"]) == (st.st_size, st.st_mtime), p.name
        if r["content_hash"] == RETRY:
            assert r["error"] and "\n" not in r["error"], p.name
        else:
            assert r["content_hash"] == file_hash(p), p.name
        if r["error"] is None:
            assert r["label"] is not None


def after_plan(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` once the scan has listed and stat-ed its files, before any is decoded."""
    real = scan_mod.plan

    def hooked(*args, **kwargs):
        todo = real(*args, **kwargs)
        action()
        return todo

    monkeypatch.setattr(scan_mod, "plan", hooked)


@pytest.fixture
def library(classifier, tmp_path):
    """A scanned library whose target file (the FLAC) was then rewritten, so the next scan decodes it."""
    lib = tmp_path / "lib"
    files = make_library(lib)
    db = tmp_path / "db.sqlite"
    assert scan(listed(lib), db, classifier).done == 4
    target = files[1]
    write_audio(target, tone(4.0, 22050, 700), 22050)
    return lib, db, target


def truncate(p: Path) -> None:
    with open(p, "r+b") as f:
        f.truncate(p.stat().st_size // 3)


def replace_with_other(p: Path) -> None:
    other = write_audio(p.with_name("other.tmp.flac"), tone(5.0, 22050, 1234), 22050)
    os.replace(other, p)


def into_folder(p: Path) -> None:
    p.unlink()
    p.mkdir()


@pytest.mark.parametrize("change", [truncate, replace_with_other, Path.unlink, into_folder],
                         ids=["truncated", "replaced", "deleted", "folder"])
def test_file_changes_between_listing_and_decoding(classifier, library, monkeypatch, change):
    lib, db, target = library
    files = listed(lib)
    after_plan(monkeypatch, lambda: change(target))
    s = scan(files, db, classifier)  # never raises
    got = rows(db)
    others = {f.name for f in files} - {target.name}
    assert all(got[n]["error"] is None for n in others)
    assert s.failed == 1 and len(s.failures) == 1 and target.name in s.failures[0] and "\n" not in s.failures[0]
    if change in (Path.unlink, into_folder):
        assert target.name not in got  # the row of a file that is gone is gone (it would be stale)
    else:
        row = got[target.name]
        assert row["content_hash"] == RETRY and "changed while it was being classified" in row["error"]
        assert row["label"] is None  # the old label is not kept for new content
    assert_no_stale_row(db, lib)
    monkeypatch.undo()
    again = scan(listed(lib), db, classifier)  # the next run classifies what is there now
    got = rows(db)
    if change is replace_with_other:
        assert again.done == 1 and abs(got[target.name]["duration"] - 5.0) < 0.01
    elif change is truncate:
        assert again.done + again.failed == 1 and got[target.name]["content_hash"] == file_hash(target)
    else:
        assert target.name not in got and again.skipped == 3
    assert_no_stale_row(db, lib)


def test_file_changes_while_it_is_classified(classifier, library, monkeypatch):
    """Size and mtime change after the model has read the file, before its row is written."""
    lib, db, target = library
    real = classifier.predict

    def predict_then_append(src, **kw):
        pred = real(src, **kw)
        if Path(src).name == target.name:
            with open(target, "ab") as f:
                f.write(b"\0" * 100)
        return pred

    monkeypatch.setattr(classifier, "predict", predict_then_append)
    s = scan(listed(lib), db, classifier)
    assert s.failed == 1 and "changed while it was being classified" in rows(db)[target.name]["error"]
    assert_no_stale_row(db, lib)
    monkeypatch.undo()
    write_audio(target, tone(4.5, 22050, 640), 22050)
    s = scan(listed(lib), db, classifier)
    assert (s.done, s.skipped) == (1, 3) and abs(rows(db)[target.name]["duration"] - 4.5) < 0.01
    assert_no_stale_row(db, lib)


def test_file_changed_after_it_was_classified(classifier, library):
    """A new size or a new mtime after the row was written: the next scan classifies the new content."""
    lib, db, _ = library
    scan(listed(lib), db, classifier)
    target = lib / "t0.wav"
    old = target.stat()
    write_audio(target, tone(3.5, 22050, 300), 22050)  # same length and format: same size, new mtime
    assert target.stat().st_size == old.st_size
    s = scan(listed(lib), db, classifier)
    assert (s.done, s.skipped, s.touched) == (1, 3, 0)
    assert rows(db)[target.name]["content_hash"] == file_hash(target)
    assert_no_stale_row(db, lib)
    write_audio(target, tone(6.0, 22050, 300), 22050)  # new size, mtime set back to the old one
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))
    s = scan(listed(lib), db, classifier)
    assert s.done == 1 and abs(rows(db)[target.name]["duration"] - 6.0) < 0.01
    assert_no_stale_row(db, lib)


def test_file_made_unreadable_between_listing_and_decoding(classifier, library, monkeypatch):
    """chmod 000 after listing. Root reads through chmod 000, so as root the same failure is simulated:
    the decoder and the hashing both get 'permission denied' for that one file."""
    lib, db, target = library
    before = target.read_bytes()
    if AS_ROOT:
        real_predict, real_hash = classifier.predict, scan_mod.file_hash

        def predict(src, **kw):
            if Path(src).name == target.name:
                raise AudioDecodeError(target.name, Reason.PERMISSION_DENIED)
            return real_predict(src, **kw)

        def hash_(p):
            if Path(p).name == target.name:
                raise PermissionError(13, "Permission denied", str(p))
            return real_hash(p)

        monkeypatch.setattr(classifier, "predict", predict)
        monkeypatch.setattr(scan_mod, "file_hash", hash_)
    else:
        after_plan(monkeypatch, lambda: target.chmod(0))
    try:
        s = scan(listed(lib), db, classifier)
    finally:
        target.chmod(0o644)
    row = rows(db)[target.name]
    assert s.failed == 1 and "ermission denied" in row["error"] and "\n" not in row["error"]
    assert row["content_hash"] == RETRY and row["label"] is None
    assert target.read_bytes() == before
    assert_no_stale_row(db, lib)
    monkeypatch.undo()
    s = scan(listed(lib), db, classifier)  # readable again, same size and mtime: still retried
    assert (s.done, s.skipped) == (1, 3) and rows(db)[target.name]["error"] is None
    assert_no_stale_row(db, lib)


# ---- tag writing when the disk says no -------------------------------------------------------------------


@pytest.fixture
def classified(classifier, tmp_path):
    """A scanned FLAC + MP3 library, not yet tagged; returns (lib, db, flac)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    noisy = tone(3.5, 44100, 330, channels=2) + np.random.default_rng(0).normal(0, 0.05, (154350, 2))
    flac = write_audio(lib / "song.flac", noisy.astype(np.float32), 44100)  # noise: ~1 MB, FLAC cannot shrink it
    write_audio(lib / "other.mp3", tone(3.5, 22050, 440), 22050)
    db = tmp_path / "db.sqlite"
    assert scan(listed(lib), db, classifier).done == 2
    return lib, db, flac


def tag_run(classifier, lib: Path, db: Path):
    """A --write-tags scan that tags every classified file (no confidence threshold: these are test tones)."""
    messages: list[str] = []
    s = scan(listed(lib), db, classifier, tagger=TagWriter(report=messages.append, min_confidence=0.0))
    return s, messages


def check_tag_failure(db: Path, lib: Path, flac: Path, before: bytes, messages: list[str], why: str) -> None:
    assert flac.read_bytes() == before  # byte-identical
    assert not [p for p in lib.iterdir() if tags_mod.is_temp_copy(p)]  # no copy left
    row = rows(db)[flac.name]
    assert row["tagged"] is None and why in row["tag_error"] and "\n" not in row["tag_error"]
    assert flac.name in row["tag_error"] and ".musicgenre-tmp" not in row["tag_error"]
    assert any(why in m for m in messages)
    assert rows(db)["other.mp3"]["tagged"]  # the batch went on
    assert_no_stale_row(db, lib)


def test_read_only_file_is_not_tagged_then_retried(classifier, classified):
    lib, db, flac = classified
    before = flac.read_bytes()
    flac.chmod(0o444)
    s, messages = tag_run(classifier, lib, db)
    check_tag_failure(db, lib, flac, before, messages, "the file is read-only")
    flac.chmod(0o644)
    s, _ = tag_run(classifier, lib, db)
    row = rows(db)[flac.name]
    assert s.tagged == 1 and row["tagged"] == row["label"] and row["tag_error"] is None
    assert display(row["label"]) == read_genre(flac)[0]
    assert_no_stale_row(db, lib)


def test_read_only_folder_is_not_tagged_then_retried(classifier, classified):
    lib, db, flac = classified
    before = flac.read_bytes()
    (lib / "other.mp3").rename(lib.parent / "other.mp3")  # this case: the only file in a read-only folder
    scan([flac], db, classifier)
    lib.chmod(0o555)
    try:
        messages: list[str] = []
        scan([flac], db, classifier, tagger=TagWriter(report=messages.append, min_confidence=0.0))
    finally:
        lib.chmod(0o755)
    assert flac.read_bytes() == before and not [p for p in lib.iterdir() if tags_mod.is_temp_copy(p)]
    row = rows(db)[flac.name]
    assert row["tagged"] is None and "its folder is read-only" in row["tag_error"]
    s = scan([flac], db, classifier, tagger=TagWriter(report=messages.append, min_confidence=0.0))
    assert s.tagged == 1 and rows(db)[flac.name]["tag_error"] is None


def test_file_size_limit_during_the_temporary_copy(classifier, classified):
    """RLIMIT_FSIZE (a stand-in for a full disk) set in a child process below the FLAC's size: the copy
    fails part-way, the original is untouched, and a run without the limit tags it."""
    lib, db, flac = classified
    before = flac.read_bytes()
    limit = len(before) // 2
    assert os.path.getsize(db) < limit // 4 and limit > 200_000
    child = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from musicgenre.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    rc = subprocess.run([sys.executable, "-c", child, "scan", str(lib), "--db", str(db), "--write-tags", "-q",
                         "--min-confidence", "0"],
                        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert rc.returncode in (0, 1), rc.stderr  # a normal end, not a signal (SIGXFSZ) or a traceback
    assert "Traceback" not in rc.stderr
    check_tag_failure(db, lib, flac, before, rc.stderr.splitlines(), "File too large")
    s, _ = tag_run(classifier, lib, db)
    assert s.tagged == 1 and display(rows(db)[flac.name]["tagged"]) == read_genre(flac)[0]


def test_file_replaced_while_its_tags_are_written(classifier, classified, monkeypatch, tmp_path):
    """Another program replaces the file after our copy was made: its file stays as it wrote it; the next
    scan classifies the new content, and tags it."""
    lib, db, flac = classified
    new = write_audio(tmp_path / "new.flac", tone(5.0, 44100, 500, channels=2), 44100)
    new_bytes = new.read_bytes()
    real_set = tags_mod._set

    def set_then_replace(path, *args):
        real_set(path, *args)
        shutil.copyfile(new, lib / "incoming.part")
        os.replace(lib / "incoming.part", flac)

    monkeypatch.setattr(tags_mod, "_set", set_then_replace)
    s, messages = tag_run(classifier, lib, db)
    assert flac.read_bytes() == new_bytes  # the other writer's file, byte-identical
    row = rows(db)[flac.name]
    assert row["tagged"] is None and "changed while its tags were being written" in row["tag_error"]
    assert not [p for p in lib.iterdir() if tags_mod.is_temp_copy(p)]
    monkeypatch.undo()
    s, _ = tag_run(classifier, lib, db)
    row = rows(db)[flac.name]
    assert (s.done, s.tagged) == (1, 1) and abs(row["duration"] - 5.0) < 0.01
    assert display(row["tagged"]) == read_genre(flac)[0] and row["tag_error"] is None
    assert_no_stale_row(db, lib)


def test_failures_are_one_line_in_the_database(classifier, classified):
    lib, db, flac = classified
    flac.chmod(0o444)
    tag_run(classifier, lib, db)
    flac.chmod(0o644)
    con = sqlite3.connect(db)
    for (err,) in con.execute("SELECT tag_error FROM tracks WHERE tag_error IS NOT NULL"):
        assert "\n" not in err and len(err) < 400
