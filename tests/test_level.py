"""The default model gives the same genre at any playback level (musicnn-gtzan 3.0's levelled front end): the
same recording 6, 15 and 25 dB quieter gets the same label, status and scores to float precision, as a user
sees them through ``predict`` (decode, windows, model, calibration, the unknown detector).

The validation clips of ../shared (GTZAN fault-filtered valid, Emotify valid: the partitions the model card
reports on) are checked in full where the shared data is present; the example clips always."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import musicgenre
from musicgenre.data.corpus import read_emotify_clips, read_gtzan_clips

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
QUIETER_DB = (6, 15, 25)
SCORE_TOL = 1e-4  # float32 arithmetic on levelled windows; a level dependence moves scores by far more


@pytest.fixture(scope="module")
def classifier() -> musicgenre.Classifier:
    return musicgenre.load()


def same_at_every_level(clf: musicgenre.Classifier, y: np.ndarray, sr: int, name: str) -> None:
    ref = clf.predict((y, sr))
    for db in QUIETER_DB:
        got = clf.predict(((y * 10 ** (-db / 20)).astype(np.float32), sr))
        assert (got.label, got.status) == (ref.label, ref.status), f"{name} {db} dB quieter"
        assert got.scores == pytest.approx(ref.scores, abs=SCORE_TOL), f"{name} {db} dB quieter"


def test_the_default_model_is_levelled(classifier: musicgenre.Classifier) -> None:
    assert classifier.model.features.level_db is not None


@pytest.mark.parametrize("clip", sorted((ROOT / "examples").glob("*.ogg")), ids=lambda p: p.stem)
def test_example_clips_keep_their_label_when_played_quieter(classifier: musicgenre.Classifier, clip: Path) -> None:
    sr = classifier.model.features.sr
    same_at_every_level(classifier, musicgenre.load_audio(clip, sr=sr), sr, clip.name)


@pytest.mark.slow
def test_every_validation_clip_keeps_its_label_when_played_quieter(classifier: musicgenre.Classifier) -> None:
    if not (SHARED / "gtzan").is_dir() or not (SHARED / "emotify").is_dir():
        pytest.skip(f"{SHARED} is absent: the validation clips are the shared GTZAN and Emotify audio")
    clips = [c for c in read_gtzan_clips([SHARED / "gtzan", SHARED / "gtzan-extra"]) if c.split == "valid"]
    clips += [c for c in read_emotify_clips(SHARED / "emotify", {"classical": "classical", "rock": "rock"})
              if c.split == "valid"]
    assert len(clips) == 96  # GTZAN fault-filtered valid 67 + Emotify valid classical and rock 29
    sr = classifier.model.features.sr
    for c in clips:
        same_at_every_level(classifier, musicgenre.load_audio(c.path, sr=sr), sr, c.path)
