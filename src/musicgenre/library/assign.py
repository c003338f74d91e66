"""Genres for the objects of another library (the beets plugin's items and albums): which of them to classify,
the album vote, what each one gets under the writer's ``verdict.Rules``, and the outcome counts of a run. The
caller maps its objects onto ``Subject``s, classifies what ``assign`` asks for and stores the ``Change``s."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .verdict import DONE, KEPT, SET, UNCERTAIN, UNKNOWN, Call, Rules, album_vote, unchanged_reason

__all__ = ["Subject", "Change", "Run", "assign", "classify", "FAILED"]

FAILED = "failed"


@dataclass(frozen=True)
class Subject:
    """One object as the ladder sees it: ``key`` (the caller's id), its own ``existing`` genres, whether they are
    ``ours`` and, if so, set by the model that would run now (``current``)."""

    key: Any
    existing: Sequence[str] = ()
    ours: bool = False
    current: bool = False


@dataclass(frozen=True)
class Change:
    """What one object gets: ``outcome`` (``SET``: ``genres`` at ``confidence``, ``from_album``: the album's vote
    inherited), the ``call`` behind it, and ``say``: whether the caller should list it (uncertain, unknown, kept)."""

    key: Any
    outcome: str
    genres: list[str] = field(default_factory=list)
    confidence: float = 0.0
    call: Call | None = None
    from_album: bool = False
    say: bool = True

    def note(self, min_confidence: float) -> str:
        """Why nothing changed, after the object's name: kept genres, uncertain, unknown."""
        if self.outcome == KEPT:
            return f"keeps its genres {self.genres} (use --force to replace them)"
        return f"{unchanged_reason(self.call, min_confidence) if self.call else self.outcome}; keeps its genres"


@dataclass
class Run:
    changes: list[Change] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, change: Change, n: int = 1) -> None:
        self.changes.append(change)
        self.counts[change.outcome] = self.counts.get(change.outcome, 0) + n

    def merge(self, other: Run) -> None:
        self.changes += other.changes
        for k, n in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + n

    def line(self, *, pretend: bool = False) -> str:
        """"3 set, 1 uncertain and 0 unknown (kept as they were), 2 kept their own genres, 0 already done, 0 failed"."""
        n = {k: self.counts.get(k, 0) for k in (SET, UNCERTAIN, UNKNOWN, KEPT, DONE, FAILED)}
        return (f"{n[SET]} {'would be set' if pretend else 'set'}, {n[UNCERTAIN]} uncertain and {n[UNKNOWN]} unknown "
                f"(kept as they were), {n[KEPT]} kept their own genres, {n[DONE]} already done, {n[FAILED]} failed")


def classify(classifier: Any, paths: Sequence[str], *, workers: int = 2, progress: bool = False,
             fail: Callable[[str], None] = lambda line: None) -> dict[int, Call]:
    """index in ``paths`` -> its ``Call`` (``pipeline.predict_many``); a file that fails is left out and ``fail``
    gets one line naming it and why."""
    from ..pipeline import predict_many

    results: Any = predict_many(classifier, list(paths), workers=workers, on_error="return")
    if progress and len(paths) > 1:
        from tqdm import tqdm

        results = tqdm(results, total=len(paths), unit="file", desc="musicgenre", dynamic_ncols=True)
    out = {}
    for i, (path, result) in enumerate(zip(paths, results)):
        if isinstance(result, Exception):
            fail(str(result) if path in str(result) else f"{path}: {result}")
        else:
            out[i] = Call.from_prediction(result)
    return out


def _decide(rules: Rules, subject: Subject, call: Call, *, say: bool = True) -> Change:
    outcome, genres = rules.decide(call, existing=subject.existing, ours=subject.ours)
    return Change(subject.key, outcome, genres, round(call.top[1], 4), call, say=say)


def assign(rules: Rules, items: Sequence[Subject], *, predict: Callable[[list[Any]], Mapping[Any, Call]],
           album: Subject | None = None, per_track: bool = True) -> Run:
    """Classify ``items`` each on its own (no ``album``), or as ``album``: one vote (``verdict.album_vote``) for
    the album, inherited by its tracks without genres of their own (``per_track``: each track its own call).
    ``predict(keys)``: index in ``keys`` -> ``Call`` of the objects to classify (``classify``; a failed one
    left out: ``FAILED``). An album's
    ``Change`` comes first, with the count of its tracks when it stands without classifying."""
    run = Run()
    per_track = per_track or album is None
    standing = {s.key: rules.standing(existing=s.existing, ours=s.ours, current=s.current) for s in items} \
        if per_track else {}
    vote = None if album is None else rules.standing(existing=album.existing, ours=album.ours, current=album.current)
    if album is not None and vote is not None and None not in standing.values():
        run.add(Change(album.key, vote, list(album.existing)), len(items))
        return run
    todo = [s for s in items if album is not None or standing[s.key] is None]
    for s in items:
        if album is None and standing[s.key] is not None:
            run.add(Change(s.key, str(standing[s.key]), list(s.existing)))
    found = predict([s.key for s in todo]) if todo else {}
    calls = {todo[i].key: call for i, call in found.items()}
    run.counts[FAILED] = len(todo) - len(calls)
    if album is not None and calls and vote is None:
        change = _decide(rules, album, album_vote(list(calls.values())))
        vote = change.outcome
        run.changes.append(change)  # counted by its tracks
    for s in (s for s in todo if s.key in calls):
        if per_track:
            run.add(_decide(rules, s, calls[s.key], say=album is None))
        else:
            run.add(Change(s.key, rules.in_album(str(vote), existing=s.existing, ours=s.ours), from_album=True,
                           say=False))
    return run
