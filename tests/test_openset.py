"""The "unknown" status: the open-set detector (openset.py), its card entry, and every writer leaving it out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicgenre.errors import WeightsError
from musicgenre.evaluation.openset import fit, own_tags, runs
from musicgenre.openset import QUANTILE, OpenSet
from musicgenre.output import render
from musicgenre.prediction import Prediction, confidence

TAGS = ["rock", "jazz", "electronic", "dance", "soul", "guitar", "mellow"]
LABELS = ["rock", "jazz", "reggae"]


def _clips(rng: np.random.Generator, n: int = 60) -> tuple[list[np.ndarray], list[int]]:
    """Tag probabilities of in-vocabulary clips: rock wears rock, jazz jazz, reggae mostly soul (a tag the model
    has no label for, so only the data can make it "own"); electronic and dance stay low."""
    clips, ys = [], []
    for i in range(n):
        y = i % 3
        p = rng.uniform(0.0, 0.15, (10, len(TAGS)))
        p[:, {0: 0, 1: 1, 2: 4}[y]] += 0.5
        clips.append(p)
        ys.append(y)
    return clips, ys


def test_fit_splits_genre_tags_into_own_and_foreign_from_names_and_data():
    det = fit(*_clips(np.random.default_rng(0)), TAGS, LABELS)
    assert det is not None
    assert set(det.own) == {"rock", "jazz", "soul"}  # soul: the strongest genre tag of most reggae clips
    assert set(det.foreign) == {"electronic", "dance"}  # moods and instruments are no genre words
    assert det.genres == tuple(LABELS) and det.own_by_genre == (("rock",), ("jazz",), ("soul",))
    assert len(det.thresholds) == 10 and det.quantile == QUANTILE


def test_novelty_weighs_the_called_genres_own_tags_and_every_foreign_tag():
    det = OpenSet(("electronic", "chillout"), ("rock", "jazz", "soul"), (0.2,), genres=("rock", "jazz", "reggae"),
                  own_by_genre=(("rock",), ("jazz",), ("soul",)))
    tags = {"electronic": 0.3, "chillout": 0.2, "jazz": 0.35, "soul": 0.02, "rock": 0.01}
    # called jazz, its own jazz tag outweighs the foreign ones; called reggae, nothing of reggae's is there
    assert not det.is_unknown(tags, 3, "jazz") and det.is_unknown(tags, 3, "reggae")
    assert det.novelty(tags, "reggae") == pytest.approx(1 - 0.7 * 0.8 - 0.02)  # noisy-or: 0.44 - 0.02
    assert det.closest(tags, "reggae") == ["electronic", "chillout"] and det.closest(tags, "jazz") == []
    # a v1 card (method foreign-tags): max foreign - max own over every genre's tags, whatever the call
    v1 = OpenSet.from_dict({"method": "foreign-tags", "foreign": ["electronic", "chillout"], "own": ["rock", "jazz"],
                            "thresholds_by_windows": [0.2]})
    assert v1.genres == () and v1.novelty(tags, "reggae") == pytest.approx(0.3 - 0.35)


def test_scene_words_are_no_genre_and_top_widens_own():
    """"indie" and "alternative" name a scene worn by rock, pop, folk and electronic alike: never foreign. With
    ``top=2`` a tag second on enough of a label's clips is own too (the comparison in openset_choice.py)."""
    tags = TAGS + ["indie", "alternative"]
    clips, ys = _clips(np.random.default_rng(0))
    clips = [np.concatenate([p, np.full((len(p), 2), 0.4 if y == 0 else 0.0)], axis=1) for p, y in zip(clips, ys)]
    det = fit(clips, ys, tags, LABELS)
    assert det is not None and "indie" not in det.own + det.foreign and "alternative" not in det.foreign
    found = own_tags(clips, ys, tags, LABELS, words={"rock", "jazz", "soul", "electronic", "dance", "indie"}, top=2)
    assert found is not None
    words, owns = found
    wide_own = {t for o in owns for t in o}
    assert "indie" in wide_own and "indie" not in det.own and "electronic" in set(words) - wide_own


def test_in_vocabulary_inputs_are_rarely_unknown_and_foreign_ones_are():
    rng = np.random.default_rng(1)
    det = fit(*_clips(rng), TAGS, LABELS)
    assert det is not None
    fresh, _ = _clips(rng, 300)
    flagged = np.mean([det.is_unknown(dict(zip(TAGS, p[s].mean(0))), 3) for p in fresh for s in runs(10, 3)])
    assert flagged < 3 * QUANTILE  # about QUANTILE of in-vocabulary inputs, by construction
    techno = dict(zip(TAGS, [0.05, 0.02, 0.7, 0.5, 0.05, 0.1, 0.1]))
    assert det.is_unknown(techno, 1) and det.is_unknown(techno, 10)
    assert det.closest(techno) == ["electronic", "dance"]
    assert det.novelty({"mellow": 0.9}) is None and not det.is_unknown({"mellow": 0.9}, 1)


def test_no_detector_without_foreign_genre_words():
    clips, ys = _clips(np.random.default_rng(2))
    assert fit(clips, ys, ["rock", "jazz", "guitar"], ["rock", "jazz", "reggae"]) is None


def test_card_entry_round_trips_and_a_bad_one_names_the_file():
    det = OpenSet(("electronic",), ("rock",), (0.2, 0.1), genres=("rock", "jazz"), own_by_genre=(("rock",), ()))
    assert OpenSet.from_dict(json.loads(json.dumps(det.to_dict()))) == det
    v1 = OpenSet(("electronic",), ("rock",), (0.2, 0.1))
    assert OpenSet.from_dict(json.loads(json.dumps(v1.to_dict()))) == v1 and v1.to_dict()["method"] == "foreign-tags"
    assert det.threshold(1) == 0.2 and det.threshold(50) == 0.1
    for bad in ({}, {"method": "foreign-tags", "foreign": [], "own": ["rock"], "thresholds_by_windows": [0.1]},
                {"method": "foreign-tags-by-genre", "foreign": ["x"], "own": ["rock"], "thresholds_by_windows": [0.1]},
                {"method": "energy"}, [1, 2]):
        with pytest.raises(WeightsError, match="x/config.json.*open_set"):
            OpenSet.from_dict(bad, where="x/config.json")


def test_status_unknown_outranks_confident_and_is_shown_plainly():
    det = OpenSet(("electronic", "dance"), ("rock", "jazz"), (0.1,))
    scores = {"rock": 0.95, "jazz": 0.05}
    tags = {"electronic": 0.6, "dance": 0.4, "rock": 0.1, "jazz": 0.02}
    assert confidence(scores, ["rock"] * 4, 0.8, det, tags) == ("unknown", 1.0, ["electronic", "dance"])
    assert confidence(scores, ["rock"] * 4, 0.8, det, {"rock": 0.5, "electronic": 0.1})[0] == "confident"
    assert confidence(scores, ["rock"] * 4, 0.8)[0] == "confident"  # a model without a detector
    # the called genre's own tags decide: the same tags are "jazz" when jazz is the call, unknown when rock is
    by_genre = OpenSet(("electronic", "dance"), ("rock", "jazz"), (0.3,), genres=("rock", "jazz"),
                       own_by_genre=(("rock",), ("jazz",)))
    jazzy = {"electronic": 0.3, "dance": 0.1, "jazz": 0.5, "rock": 0.01}
    assert confidence({"jazz": 0.9, "rock": 0.1}, ["jazz"], 0.8, by_genre, jazzy)[0] == "confident"
    assert confidence({"rock": 0.9, "jazz": 0.1}, ["rock"], 0.8, by_genre, jazzy) == ("unknown", 1.0,
                                                                                ["electronic", "dance"])
    pred = Prediction("a.mp3", scores, tags=tags, status="unknown", closest_tags=["electronic", "dance"])
    d = json.loads(render([pred], "json", top_k=2))[0]
    assert d["status"] == "unknown" and d["closest_tags"] == ["electronic", "dance"] and d["scores"]
    table = render([pred], "table", top_k=2)
    assert "unknown" in table and "none of this model's genres (closest tags: electronic, dance)" in table
    assert render([pred], "csv", top_k=1).splitlines()[1].endswith(",unknown")


def test_scan_never_writes_an_unknown_call(tmp_path, have_ffmpeg):
    import mutagen

    from musicgenre.library.tags import UNKNOWN, TagWriter, read_genre
    from tests.test_library import tone, write_audio

    path = write_audio(tmp_path / "song.mp3", tone(2.0, 44100), 44100)
    before = path.read_bytes()
    pred = Prediction(str(path), {"jazz": 0.97, "rock": 0.03}, status="unknown", closest_tags=["electronic"])
    msgs: list[str] = []
    writer = TagWriter(report=msgs.append)
    assert writer.tag(path, pred) == UNKNOWN
    assert path.read_bytes() == before and read_genre(path) == (None, None) and mutagen.File(path) is not None
    assert "unknown (none of the model's genres; closest tags: electronic)" in msgs[0]
    # scan --write-tags --no-unknown: written under its nearest genre like any other call
    assert TagWriter(report=msgs.append, unknown=False).tag(path, pred) == "written"
    assert read_genre(path) == ("Jazz", "0.970")


def test_shipped_model_carries_a_detector():
    from musicgenre.modeldir import read, resolve

    card = read(resolve(None))
    assert card.open_set is not None and "electronic" in card.open_set.foreign
    assert not set(card.open_set.foreign) & {"rock", "jazz", "hip-hop", "country", "blues", "metal"}
    figures = card.extra["metrics"]["valid"]["all"]["open_set"]["valid"]
    assert figures["whole"]["unknown_genres"]["n"] == 15 and figures["1"]["known"]["n"] == 960


def test_stats_count_unknown_calls_apart(tmp_path):
    from musicgenre.library.db import COLUMNS, connect, upsert
    from musicgenre.library.export import UNKNOWN_ROW, stats_text

    db = tmp_path / "lib.sqlite"
    con = connect(db)
    base = dict.fromkeys(COLUMNS)
    upsert(con, [{**base, "path": f"/m/{i}.mp3", "size": 1, "mtime": 1.0, "content_hash": f"{i}", "duration": 30.0,
                  "model": "m", "model_version": "1", "label": "rock", "score": 0.9, "scores": '{"rock": 0.9}',
                  "scanned_at": "2026-01-01", "status": status}
                 for i, status in enumerate(["confident", "unknown", "unknown", None])])
    con.commit()
    con.close()
    text = stats_text(db)
    assert text.startswith("4 tracks classified")
    assert any(line.split()[:2] == [UNKNOWN_ROW, "2"] for line in text.splitlines())
    assert any(line.split()[:2] == ["rock", "2"] for line in text.splitlines())
