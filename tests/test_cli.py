"""The command line, run in-process through main(argv)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from musicgenre.cli import main

from .conftest import EXAMPLES

JAZZ = str(EXAMPLES / "jazz_vibe_ace.ogg")


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def test_table(capsys):
    assert main(["predict", JAZZ, "--top-k", "3"]) == 0
    out = capsys.readouterr().out  # 3.0 finds none of its genres in this jazz clip: it says so before the scores
    assert "Jazz" in out and out.count("%") == 3 and "tags:" in out and ", unknown," in out
    assert "none of this model's genres (closest tags: electronic" in out


def test_tags_line_never_shows_a_genre_word_json_keeps_every_tag(capsys):
    """The jazz clip's top tag is "jazz", beside the answer "Pop": the table leaves the model's genre words
    out of its tags: line (and their styles, heavy metal, indie rock ...); JSON keeps every tag."""
    from musicgenre.genres import is_genre_tag

    assert main(["predict", JAZZ, "-f", "json"]) == 0
    d = json.loads(capsys.readouterr().out)[0]
    assert next(iter(d["tags"])) == "jazz" and len(d["tags"]) == 10
    assert main(["predict", JAZZ, "--top-k", "3"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  tags: "))
    shown = [item.rsplit(" ", 1)[0] for item in line.removeprefix("  tags: ").split(", ")]
    assert len(shown) == 10 and "instrumental" in shown
    assert not [t for t in shown if is_genre_tag(t, list(d["scores"]))], line
    assert not {"jazz", "pop", "rock", "metal", "blues", "hip-hop", "country"} & {w.lower() for w in shown}, line


def test_json_and_output_file(tmp_path, capsys):
    target = tmp_path / "out.json"
    assert main(["predict", str(EXAMPLES), "--format", "json", "--output", str(target), "--segments"]) == 0
    data = json.loads(target.read_text())
    assert len(data) == 4 and all(len(d["scores"]) == 5 for d in data)
    assert all(d["segments"] for d in data)
    assert capsys.readouterr().out == ""


def test_jsonl(capsys):
    assert main(["predict", JAZZ, JAZZ, "-f", "jsonl", "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "segments" not in json.loads(lines[0])
    assert len(json.loads(lines[0])["scores"]) == 2


def test_csv(capsys):
    assert main(["predict", JAZZ, "-f", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"] and rows[0]["source"] == JAZZ
    assert float(rows[0]["score"]) >= float(rows[1]["score"])


def test_bad_files_are_named_and_batch_goes_on(tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rc = main(["predict", str(bad), JAZZ, str(tmp_path / "missing.flac"), "-f", "jsonl"])
    captured = capsys.readouterr()
    assert rc == 1
    assert len(captured.out.strip().splitlines()) == 1  # the good file still got classified
    assert "broken.wav" in captured.err and "missing.flac: file not found" in captured.err
    assert "Traceback" not in captured.err and "2 of 3 inputs failed" in captured.err


def test_usage_errors_exit_2(capsys):
    assert main(["predict"]) == 2
    assert main(["predict", JAZZ, "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["predict", JAZZ, "--top-k", "0"]) == 2
    assert main(["predict", JAZZ, "--device", "cuda"]) == 2


def test_unwritable_output_is_one_line(tmp_path, capsys):
    assert main(["predict", JAZZ, "-f", "json", "-o", str(tmp_path / "no" / "such" / "dir.json")]) == 1
    err = capsys.readouterr().err
    assert "No such file or directory" in err and "Traceback" not in err


def test_models_and_help(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "musicnn-gtzan (default)" in out and "crnn" in out and "musicnn_genre" not in out  # not `train ARCH`
    assert main(["--help"]) == 0
    assert main(["predict", "--help"]) == 0


def test_missing_optional_dependency_names_the_extra(monkeypatch, capsys, tmp_path):
    """A light install (no torch) gets one line naming the extra to install, not a traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if not installed
    monkeypatch.delitem(sys.modules, "musicgenre.train.explain", raising=False)
    code = main(["explain", str(EXAMPLES / "jazz_vibe_ace.ogg"), "-o", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'musicgenre[train]'" in err and "Traceback" not in err


def test_reader_that_leaves_early_is_not_an_error():
    """`musicgenre predict ... | head -1`: when the reader closes the pipe, we stop without a traceback or
    an error line (only the exit status says the output was cut short)."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        proc = subprocess.run([sys.executable, "-m", "musicgenre", "models"], stdout=write_end,
                              stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == b""
