"""Library scanning: incremental, resumable after kill -9, tag writing, export, stats."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from musicgenre.cli import main
from musicgenre.genres import display
from musicgenre.library.db import read_rows
from musicgenre.library.scan import scan
from musicgenre.library.tags import TagWriter, read_genre

from .conftest import EXAMPLES, tone, write_audio


def make_library(folder: Path, n: int = 4, seconds: float = 3.5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = [".wav", ".flac", ".mp3", ".ogg"]
    files = [write_audio(folder / f"t{i:03d}{suffixes[i % 4]}", tone(seconds, 22050, 200 + 37 * i), 22050)
             for i in range(n)]
    return files


def rows(db: Path) -> list[dict]:
    return list(read_rows(db))


def test_scan_is_incremental(classifier, tmp_path):
    lib = tmp_path / "lib"
    files = make_library(lib)
    (lib / "broken.mp3").write_bytes(b"ID3" + b"\x00" * 50)
    db = tmp_path / "library.sqlite"
    s = scan(sorted(lib.iterdir()), db, classifier)
    assert (s.done, s.failed, s.skipped) == (4, 1, 0)
    got = {Path(r["path"]).name: r for r in rows(db)}
    assert len(got) == 5 and "broken.mp3" in got["broken.mp3"]["error"]
    ok = got["t000.wav"]
    assert ok["label"] in classifier.labels and ok["model"] == "musicnn-gtzan"
    assert ok["model_version"] == classifier.model.card.version
    assert abs(ok["duration"] - 3.5) < 0.01 and len(ok["scores"]) == 10 and ok["tags"] and len(ok["content_hash"]) == 32

    s = scan(sorted(lib.iterdir()), db, classifier)
    assert (s.done, s.failed, s.skipped) == (0, 0, 5)

    os.utime(files[0], (time.time() + 10, time.time() + 10))  # touched, same content
    write_audio(files[1], tone(4.0, 22050, 999), 22050)  # really changed
    new = write_audio(lib / "new.flac", tone(3.5, 22050, 500), 22050)
    s = scan(sorted(lib.iterdir()), db, classifier)
    assert (s.done, s.skipped, s.touched) == (2, 4, 1)
    got = {Path(r["path"]).name: r for r in rows(db)}
    assert len(got) == 6 and abs(got["t001.flac"]["duration"] - 4.0) < 0.01 and new.name in got


def test_db_path_that_is_not_a_database_is_refused_and_untouched(classifier, tmp_path, capsys):
    precious = tmp_path / "thesis.docx"
    precious.write_bytes(b"PK\x03\x04 my thesis" * 100)
    before = precious.read_bytes()
    assert main(["scan", str(EXAMPLES), "--db", str(precious)]) == 1
    assert "not a musicgenre library database" in capsys.readouterr().err
    assert precious.read_bytes() == before


def test_other_model_reclassifies(classifier, tmp_path):
    import shutil

    from musicgenre import Classifier
    from musicgenre.modeldir import weights_dir

    lib = tmp_path / "lib"
    make_library(lib, n=2)
    db = tmp_path / "db.sqlite"
    scan(sorted(lib.iterdir()), db, classifier)
    other = tmp_path / "other"
    shutil.copytree(weights_dir() / "musicnn_gtzan", other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "name": "other", "version": "2"}))
    s = scan(sorted(lib.iterdir()), db, Classifier.from_pretrained(other, device="cpu"))
    assert s.done == 2 and {r["model"] for r in rows(db)} == {"other"}


def test_kill_and_resume_every_file_exactly_once(tmp_path):
    lib = tmp_path / "lib"
    make_library(lib, n=48, seconds=3.1)
    db = tmp_path / "db.sqlite"
    cmd = [sys.executable, "-m", "musicgenre", "scan", str(lib), "--db", str(db), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        count = 0
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if db.exists():
                try:
                    count = sqlite3.connect(db).execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
                except sqlite3.OperationalError:
                    count = 0
                if count >= 16:
                    break
        assert proc.poll() is None, "the scan finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert 16 <= count < 48
    rc = subprocess.run(cmd, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert "skipped" in rc.stderr
    con = sqlite3.connect(db)
    paths = [p for (p,) in con.execute("SELECT path FROM tracks")]
    assert len(paths) == len(set(paths)) == 48
    assert con.execute("SELECT COUNT(*) FROM tracks WHERE error IS NOT NULL").fetchone()[0] == 0
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class _Pred:
    label = "jazz"
    scores = {"jazz": 0.8123, "blues": 0.1877}
    status = "confident"
    closest_tags: list[str] = []


@pytest.mark.parametrize("suffix", [".mp3", ".flac", ".ogg", ".opus", ".m4a"])
def test_tag_writing_each_format(tmp_path, suffix, have_ffmpeg):
    from musicgenre import load_audio

    sr = 48000 if suffix == ".opus" else 44100
    path = write_audio(tmp_path / f"song{suffix}", tone(2.0, sr), sr)
    before = load_audio(path, sr=16000)
    msgs: list[str] = []
    assert TagWriter(dry_run=True, report=msgs.append).write(path, _Pred()) == 1
    assert read_genre(path) == (None, None) and "would set" in msgs[0]
    assert TagWriter(report=msgs.append).write(path, _Pred()) == 1
    assert read_genre(path) == ("Jazz", "0.812")  # the display name (genres.display), not the label id
    after = load_audio(path, sr=16000)
    assert abs(len(after) - len(before)) < 2000 and np.abs(after).max() > 0.3
    assert not list(tmp_path.glob(".*musicgenre-tmp*"))  # no temporary copies left behind


def test_existing_genre_is_kept_unless_asked(tmp_path):
    import mutagen

    path = write_audio(tmp_path / "song.flac", tone(2.0, 44100), 44100)
    f = mutagen.File(path)
    f["GENRE"] = ["Bebop"]
    f["ARTIST"] = ["Someone"]
    f.save()
    msgs: list[str] = []
    assert TagWriter(report=msgs.append).write(path, _Pred()) == 0
    assert read_genre(path) == ("Bebop", None) and "keeps its GENRE" in msgs[0]
    assert TagWriter(overwrite=True, report=msgs.append).write(path, _Pred()) == 1
    assert read_genre(path) == ("Jazz", "0.812") and mutagen.File(path)["ARTIST"] == ["Someone"]


def test_failed_tag_write_leaves_file_intact(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "song.ogg", tone(2.0, 44100), 44100)
    original = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("musicgenre.library.tags._set", boom)
    msgs: list[str] = []
    assert TagWriter(report=msgs.append).write(path, _Pred()) == 0
    assert path.read_bytes() == original and "unchanged" in msgs[0]


def test_cli_scan_write_tags_export_stats(tmp_path, capsys):
    import shutil

    lib = tmp_path / "lib"
    lib.mkdir()
    for f in EXAMPLES.glob("*.ogg"):
        shutil.copy(f, lib / f.name)
    db = tmp_path / "lib.sqlite"
    assert main(["scan", str(lib), "--db", str(db), "--dry-run"]) == 0
    assert "would set" in capsys.readouterr().err
    assert all(read_genre(f) == (None, None) for f in lib.iterdir())
    # the dry run classified them: this run tags them without classifying again
    assert main(["scan", str(lib), "--db", str(db), "--write-tags", "--min-confidence", "0.6"]) == 0
    err = capsys.readouterr().err  # only the two calls at >= 0.6 are written; the uncertain and unknown are listed
    assert "0 classified, 4 skipped (unchanged), 0 failed, 2 files tagged" in err
    assert err.count(": uncertain (") == 1 and "country_lets_go_fishin.ogg: uncertain (Rock 0.49 < 0.60)" in err
    assert "jazz_vibe_ace.ogg: unknown (none of the model's genres); keeps its tags" in err
    assert read_genre(lib / "classical_hungarian_dance_5.ogg")[0] == "Classical"
    assert read_genre(lib / "country_lets_go_fishin.ogg") == (None, None)
    assert main(["scan", str(lib), "--db", str(db), "--write-tags", "--min-confidence", "0.4"]) == 0
    err = capsys.readouterr().err  # an unknown call is never written, whatever the threshold
    assert "0 classified, 4 skipped (unchanged), 0 failed, 1 files tagged" in err and ": unknown (" in err
    assert read_genre(lib / "country_lets_go_fishin.ogg")[0] == "Rock"
    assert read_genre(lib / "jazz_vibe_ace.ogg") == (None, None)
    assert main(["scan", str(lib), "--db", str(db), "--write-tags"]) == 0  # tagged and recorded: nothing to do
    assert "0 classified, 4 skipped (unchanged), 0 failed\n" in capsys.readouterr().err
    assert main(["scan", str(lib), "--db", str(tmp_path / "fresh.sqlite"), "--write-tags"]) == 0
    err = capsys.readouterr().err
    assert "4 classified" in err and "tagged" not in err  # the files already hold these tags
    # the tagged files are recorded as they are now: a re-scan skips them all
    assert main(["scan", str(lib), "--db", str(tmp_path / "fresh.sqlite")]) == 0
    assert "0 classified, 4 skipped" in capsys.readouterr().err

    db = tmp_path / "fresh.sqlite"
    assert main(["export", "--db", str(db), "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("path,label,score") and len(out) == 5
    assert main(["export", "--db", str(db), "-f", "json", "-o", str(tmp_path / "x.json")]) == 0
    assert len(json.loads((tmp_path / "x.json").read_text())) == 4
    assert main(["export", "--db", str(db), "-f", "parquet", "-o", str(tmp_path / "x.parquet")]) == 0
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "x.parquet").num_rows == 4
    assert main(["stats", "--db", str(db), "--chart", str(tmp_path / "chart.png")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 tracks classified") and "classical" in out
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["stats", "--db", str(tmp_path / "missing.sqlite")]) == 1
    assert main(["export", "--db", str(db), "-f", "parquet"]) == 2


def test_old_database_is_migrated_and_tagged_later(classifier, tmp_path):
    lib = tmp_path / "lib"
    files = make_library(lib, n=2)
    db = tmp_path / "old.sqlite"
    scan(sorted(lib.iterdir()), db, classifier)
    con = sqlite3.connect(db)  # make it look like a database from before the `tagged` column
    con.execute("ALTER TABLE tracks DROP COLUMN tagged")
    con.commit()
    con.close()
    s = scan(sorted(lib.iterdir()), db, classifier, tagger=TagWriter(report=lambda m: None, min_confidence=0.0))
    assert (s.done, s.skipped, s.tagged) == (0, 2, 1)  # the WAV cannot be tagged; the FLAC is
    got = {Path(r["path"]).name: r for r in rows(db)}
    assert len(got) == 2 and got["t000.wav"]["tagged"] is None
    assert got["t001.flac"]["tagged"] == got["t001.flac"]["label"]
    assert read_genre(files[1]) == (display(got["t001.flac"]["label"]), f"{got['t001.flac']['score']:.3f}")
    s = scan(sorted(lib.iterdir()), db, classifier)  # the new size/mtime were recorded: nothing to redo
    assert (s.done, s.skipped) == (0, 2)


def test_symlink_is_written_through(tmp_path):
    real = write_audio(tmp_path / "real.flac", tone(2.0, 44100), 44100)
    link = tmp_path / "link.flac"
    link.symlink_to(real)
    msgs: list[str] = []
    assert TagWriter(report=msgs.append).write(link, _Pred()) == 1
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert read_genre(real) == ("Jazz", "0.812")
    loop = tmp_path / "loop.flac"
    loop.symlink_to(loop)
    assert TagWriter(report=msgs.append).write(loop, _Pred()) == 0
    assert "loop.flac: cannot follow the path" in msgs[-1] and loop.is_symlink()
    assert not list(tmp_path.glob(".*musicgenre-tmp*"))


def test_leftover_temp_copies_are_removed_not_scanned(classifier, tmp_path):
    import shutil

    lib = tmp_path / "lib"
    files = make_library(lib, n=2)
    leftover = lib / f".{files[1].name}.musicgenre-tmp{files[1].suffix}"
    shutil.copy(files[1], leftover)
    db = tmp_path / "db.sqlite"
    s = scan(sorted(lib.iterdir()), db, classifier, tagger=TagWriter(report=lambda m: None))
    assert (s.done, s.failed) == (2, 0) and not leftover.exists()
    assert sorted(Path(r["path"]).name for r in rows(db)) == ["t000.wav", "t001.flac"]
    msgs: list[str] = []
    assert TagWriter(report=msgs.append).write(leftover.with_name(".x.flac.musicgenre-tmp.flac"), _Pred()) == 0
    assert "temporary copy" in msgs[0]


@pytest.mark.slow
def test_kill_during_tagging_then_rescan(tmp_path):
    """kill -9 while tags are being written, then a rescan: no temp copy ingested or left, no file
    written twice, every file tagged and still decoding to its full length."""
    from musicgenre import load_audio

    lib = tmp_path / "lib"
    lib.mkdir()
    files = [write_audio(lib / f"t{i:02d}.flac", tone(20.0, 44100, 200 + 40 * i), 44100) for i in range(12)]
    db = tmp_path / "db.sqlite"
    assert main(["scan", str(lib), "--db", str(db), "-q"]) == 0  # classified, not tagged
    cmd = [sys.executable, "-m", "musicgenre", "scan", str(lib), "--db", str(db), "-q", "--write-tags",
           "--min-confidence", "0", "--no-unknown"]  # synthetic tones are uncertain or unknown: write them all
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if list(lib.glob(".*musicgenre-tmp*")):  # caught in the middle of a write
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the tagging run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    written_before = {f: f.stat().st_mtime_ns for f in files if read_genre(f)[0] is not None}
    assert len(written_before) < len(files)
    leftovers = list(lib.glob(".*musicgenre-tmp*"))
    rc = subprocess.run(cmd, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert not list(lib.glob(".*musicgenre-tmp*"))
    assert f"{len(files) - len(written_before)} files tagged" in rc.stderr, (rc.stderr, len(leftovers))
    for f, mtime in written_before.items():  # already tagged before the kill: not written again
        assert f.stat().st_mtime_ns == mtime, f
    got = list(read_rows(db))
    assert sorted(Path(r["path"]).name for r in got) == [f.name for f in files]
    assert all(r["tagged"] == r["label"] and read_genre(Path(r["path"]))[0] == display(r["label"]) for r in got)
    for f in files:
        assert abs(len(load_audio(f, sr=16000)) - 20 * 16000) < 200


def test_non_utf8_file_name_scans_exports_and_tags(classifier, tmp_path, capsys):
    lib = tmp_path / "lib"
    make_library(lib, n=2)
    odd = Path(os.fsdecode(os.fsencode(lib) + b"/caf\xe9.flac"))
    write_audio(lib / "plain.flac", tone(3.5, 22050, 300), 22050).rename(odd)  # soundfile cannot write that name
    db = tmp_path / "db.sqlite"
    s = scan(sorted(lib.iterdir()), db, classifier, tagger=TagWriter(report=lambda m: None, min_confidence=0.0))
    assert (s.done, s.failed, s.tagged) == (3, 0, 2)
    stored = sqlite3.connect(db).execute("SELECT path FROM tracks WHERE typeof(path) = 'blob'").fetchall()
    assert stored == [(os.fsencode(odd),)]  # the exact bytes
    got = {r["path"]: r for r in rows(db)}
    assert got[str(odd)]["label"] in classifier.labels and got[str(odd)]["tagged"]
    assert read_genre(odd)[0] == display(got[str(odd)]["label"])
    s = scan(sorted(lib.iterdir()), db, classifier)
    assert (s.done, s.skipped) == (0, 3)
    capsys.readouterr()
    assert main(["export", "--db", str(db), "-f", "csv"]) == 0
    assert "caf\\xe9.flac" in capsys.readouterr().out
    assert main(["export", "--db", str(db), "-f", "json", "-o", str(tmp_path / "x.json")]) == 0
    assert "caf\\xe9.flac" in {Path(r["path"]).name for r in json.loads((tmp_path / "x.json").read_text())}
    assert main(["export", "--db", str(db), "-f", "parquet", "-o", str(tmp_path / "x.parquet")]) == 0
    assert main(["stats", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("3 tracks classified")
