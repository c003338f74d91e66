"""What a user already has keeps working when the default model changes (musicnn-gtzan 2.3 -> 3.0, a levelled
front end):

- a model directory that ``musicgenre learn`` wrote from a 2.3 library (``tests/fixtures/learned-2.3``, made by
  the 2.3 release from a synthetic library, with its scores on the example clips then) loads and predicts as
  before, on both backends: it keeps its own front end (its card's ``features``) and its own ONNX graph;
- a library scanned with 2.3 holds 2.3's features: ``scan`` analyses those files again and says so once;
- ``learn`` never mixes features of two front ends: on a 2.3 library it stops with one line naming the command
  that fixes it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

import musicgenre
from musicgenre.cli import main
from musicgenre.features import FeatureConfig, feature_identity

from .conftest import load_benchmark, tone, write_audio

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "learned-2.3"
SCORES = json.loads((ROOT / "tests" / "fixtures" / "learned-2.3-scores.json").read_text())
OLD_FEATURES = ("MSD_musicnn", "0.1.0")  # what musicnn-gtzan 2.3 stored (the backbone's own front end)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_model_learned_from_a_2_3_library_predicts_as_before(backend: str) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    clf = musicgenre.load(FIXTURE, backend=backend)
    assert clf.model.features.level_db is None  # its own front end, not the new default's
    assert clf.feature_backbone == OLD_FEATURES
    for name, want in SCORES["clips"].items():
        got = clf.predict(ROOT / "examples" / name)
        assert got.label == want[backend]["label"], name
        assert got.scores == pytest.approx(want[backend]["scores"], abs=1e-4), name


def test_levelled_features_have_their_own_identity() -> None:
    levelled = FeatureConfig(level_db=-5.0)
    assert feature_identity(OLD_FEATURES, FeatureConfig()) == OLD_FEATURES
    assert feature_identity(OLD_FEATURES, levelled) == ("MSD_musicnn", "0.1.0+level-5dB-window")
    assert feature_identity(OLD_FEATURES, FeatureConfig(level_db=-5.0, level_span="track"))[1].endswith("-track")


def test_the_default_model_records_its_front_end_in_its_features() -> None:
    clf = musicgenre.load()
    assert clf.feature_backbone == feature_identity(OLD_FEATURES, clf.model.features)


def test_scan_reanalyses_a_library_of_the_previous_model_and_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    music = tmp_path / "music"
    music.mkdir()
    for i in range(2):
        write_audio(music / f"t{i}.wav", tone(4.0, sr=16000, freq=330.0 * (i + 1)), 16000)
    db = tmp_path / "lib.db"
    assert main(["scan", "--db", str(db), str(music), "-q"]) == 0
    con = sqlite3.connect(db)  # as a 2.3 scan left it: its model version and its features' identity
    con.execute("UPDATE tracks SET model_version = '2.3'")
    con.execute("UPDATE features SET backbone_version = ?", (OLD_FEATURES[1],))
    con.commit()
    con.close()
    with caplog.at_level(logging.WARNING, logger="musicgenre"):
        assert main(["scan", "--db", str(db), str(music), "-q"]) == 0
    said = [r.getMessage() for r in caplog.records if "re-analysing" in r.getMessage()]
    assert said == [f"re-analysing 2 files analysed before (2 by musicnn-gtzan 2.3) with musicnn-gtzan "
                    f"{musicgenre.load().version}"]
    con = sqlite3.connect(db)
    versions = con.execute("SELECT DISTINCT backbone_version FROM features").fetchall()
    con.close()
    assert versions == [(musicgenre.load().feature_backbone[1],)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="musicgenre"):
        assert main(["scan", "--db", str(db), str(music), "-q"]) == 0
    assert not [r for r in caplog.records if "re-analysing" in r.getMessage()]  # once: nothing left to redo


def test_learn_on_a_2_3_library_names_the_command_that_fixes_it(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("onnx")
    db = tmp_path / "lib.db"
    load_benchmark("bench_learn").synthetic_library(db, 30, genres=3, rare=False, backbone=OLD_FEATURES)
    out = tmp_path / "m"
    assert main(["learn", "--db", str(db), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MSD_musicnn 0.1.0 (30 files)" in err[0] and f"musicgenre scan --db {db}" in err[0]
    assert not out.exists()
