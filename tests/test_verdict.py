"""The one keep/skip ladder and album vote (library.verdict) and the run over another library's objects
(library.assign), which TagWriter and the beets plugin share."""

from __future__ import annotations

import pytest

from musicgenre.library.assign import FAILED, Subject, assign
from musicgenre.library.verdict import (
    DONE,
    KEPT,
    SET,
    UNCERTAIN,
    UNKNOWN,
    Call,
    Rules,
    album_vote,
    keep_or_replace,
    pick,
)

JAZZ = Call({"jazz": 0.9, "rock": 0.1})
ROCK = Call({"jazz": 0.2, "rock": 0.8})
ODD = Call({"jazz": 0.6, "rock": 0.4}, unknown=True, closest=("polka",))


def test_album_vote_is_the_mean_and_unknown_only_by_majority():
    vote = album_vote([JAZZ, ROCK, ODD])
    assert vote.scores == pytest.approx({"jazz": (0.9 + 0.2 + 0.6) / 3, "rock": (0.1 + 0.8 + 0.4) / 3})
    assert not vote.unknown
    assert album_vote([ODD, ODD, JAZZ]).unknown and album_vote([ODD, ODD, JAZZ]).closest == ("polka",)
    with pytest.raises(ValueError):
        album_vote([])


def test_pick_and_the_ladder():
    assert pick(ODD, min_confidence=0.5, count=1, title_case=True) == (UNKNOWN, [])
    assert pick(ODD, min_confidence=0.5, count=1, title_case=True, unknown=False) == (SET, ["Jazz"])
    assert pick(ROCK, min_confidence=0.85, count=1, title_case=True) == (UNCERTAIN, [])
    assert keep_or_replace(["Jazz"], existing=["Bebop"], ours=False, force=False) == (KEPT, ["Bebop"])
    assert keep_or_replace(["Jazz"], existing=["Bebop"], ours=True, force=False) == (SET, ["Jazz"])
    assert keep_or_replace(["Jazz", "bebop"], existing=["Bebop"], ours=False, force=True, keep_existing=True,
                           count=2) == (SET, ["Bebop", "Jazz"])


def test_rules_standing_and_album_inheritance():
    rules = Rules.checked(min_confidence=0.5)
    assert rules.standing(existing=["Bebop"], ours=False, current=False) == KEPT
    assert rules.standing(existing=["Jazz"], ours=True, current=True) == DONE
    assert rules.standing(existing=["Jazz"], ours=True, current=False) is None
    assert rules.in_album(SET, existing=["Bebop"], ours=False) == KEPT
    assert rules.in_album(UNCERTAIN, existing=[], ours=False) == UNCERTAIN
    with pytest.raises(ValueError, match="min_confidence"):
        Rules.checked(min_confidence=7)


def test_assign_an_album_classifies_every_track_and_counts_by_track():
    asked = []

    def predict(keys):
        asked.append(keys)
        return {0: JAZZ, 1: ROCK}  # the third track failed

    tracks = [Subject("a"), Subject("b", ["Bebop"]), Subject("c")]
    run = assign(Rules.checked(min_confidence=0.5), tracks, album=Subject("album"), per_track=False, predict=predict)
    assert asked == [["a", "b", "c"]]
    album, *rest = run.changes
    assert album.key == "album" and album.outcome == SET and album.genres == ["Jazz"]  # mean 0.55
    assert [(c.key, c.outcome, c.from_album) for c in rest] == [("a", SET, True), ("b", KEPT, True)]
    assert run.counts == {SET: 1, KEPT: 1, FAILED: 1}
    assert run.line().startswith("1 set, 0 uncertain and 0 unknown")


def test_assign_items_skips_what_stands():
    run = assign(Rules.checked(min_confidence=0.5), [Subject("a", ["Bebop"]), Subject("b")],
                 predict=lambda keys: {0: ROCK} if keys == ["b"] else {})
    assert [(c.key, c.outcome) for c in run.changes] == [("a", KEPT), ("b", SET)]
    assert run.changes[0].note(0.5) == "keeps its genres ['Bebop'] (use --force to replace them)"
