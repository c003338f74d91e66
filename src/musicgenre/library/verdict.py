"""What a genre writer does with one call, decided once for every writer: ``TagWriter`` (the files' own tags,
``scan --write-tags``) and the beets plugin (the library's fields).

- ``album_vote``: one call for an album, the mean probability over its tracks, unknown when most tracks are;
- ``pick``: the genres a call asks for, or why it asks for none (``UNKNOWN``, ``UNCERTAIN``);
- ``keep_or_replace``: the ladder between those genres and the ones already there (``KEPT`` unless ours or
  forced; forced with ``keep_existing``: the existing ones first, the new ones after, up to ``count``);
- ``standing``: what stands without classifying at all (kept, or already done by this model);
- ``unchanged_reason``: the one line that says why a call changed nothing;
- ``Rules``: a writer's settings, checked once, applying the ladder (``decide``, ``standing``, ``in_album``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Call", "Rules", "SET", "UNCERTAIN", "UNKNOWN", "KEPT", "DONE", "album_vote", "pick", "keep_or_replace",
           "standing", "unchanged_reason"]

SET, UNCERTAIN, UNKNOWN, KEPT, DONE = "set", "uncertain", "unknown", "kept", "done"


@dataclass(frozen=True)
class Call:
    """One classified file or album: its genre scores and, when the model found it unlike all its genres
    (status "unknown"), the genre tags it sounds like instead."""

    scores: Mapping[str, float]
    unknown: bool = False
    closest: tuple[str, ...] = field(default=())

    @classmethod
    def from_prediction(cls, pred: Any) -> Call:
        """From a ``Prediction`` (or anything with ``scores``, ``status`` and ``closest_tags``)."""
        return cls(dict(pred.scores), getattr(pred, "status", "") == "unknown",
                   tuple(getattr(pred, "closest_tags", None) or ()))

    @property
    def top(self) -> tuple[str, float]:
        """(label, probability) of the most probable genre."""
        return max(self.scores.items(), key=lambda kv: kv[1])


def album_vote(calls: Sequence[Call]) -> Call:
    """The album judged as a whole: the mean probability of each genre over its tracks' calls; unknown when
    most of its tracks are (the closest tags of the first unknown one)."""
    if not calls:
        raise ValueError("an album vote needs at least one call")
    labels = list(calls[0].scores)
    mean = np.mean([[c.scores[k] for k in labels] for c in calls], axis=0).tolist()
    unknown = [c for c in calls if c.unknown]
    return Call(dict(zip(labels, mean)), 2 * len(unknown) > len(calls), unknown[0].closest if unknown else ())


def pick(call: Call, *, min_confidence: float, count: int, title_case: bool, unknown: bool = True
         ) -> tuple[str, list[str]]:
    """(``SET``, genres) for a confident call (``genres.pick_genres``), else (``UNKNOWN`` or ``UNCERTAIN``, []).
    ``unknown=False``: an unknown call counts as its nearest genre, like any other."""
    from ..genres import pick_genres

    if unknown and call.unknown:
        return UNKNOWN, []
    genres = pick_genres(call.scores, min_confidence=min_confidence, count=count, title_case=title_case)
    return (UNCERTAIN, []) if genres is None else (SET, genres)


def keep_or_replace(new: list[str], *, existing: Sequence[str], ours: bool, force: bool,
                    keep_existing: bool = False, count: int = 1) -> tuple[str, list[str]]:
    """(``KEPT``, existing) where genres someone else set stay (unless ``force``), else (``SET``, what to set):
    ``new``, or with ``force`` and ``keep_existing`` the existing genres followed by the new ones, ``count`` at
    most."""
    existing = list(existing)
    if existing and not ours and not force:
        return KEPT, existing
    if existing and force and keep_existing:
        seen = {g.lower() for g in existing}
        return SET, (existing + [g for g in new if g.lower() not in seen])[:max(count, 1)]
    return SET, list(new)


def standing(*, existing: Sequence[str], ours: bool, current: bool, force: bool) -> str | None:
    """None where the object should be classified, else the outcome that stands without classifying:
    ``DONE`` (ours, by the model that would run now: ``current``) or ``KEPT`` (someone else's genres)."""
    if force or not existing:
        return None
    if ours:
        return DONE if current else None
    return KEPT


def unchanged_reason(call: Call, min_confidence: float) -> str:
    """Why ``call`` changes nothing: "unknown (none of the model's genres; closest tags: ...)" or
    "uncertain (Jazz 0.47 < 0.80)"."""
    from ..genres import display

    if call.unknown:
        hint = f"; closest tags: {', '.join(call.closest)}" if call.closest else ""
        return f"unknown (none of the model's genres{hint})"
    label, score = call.top
    return f"uncertain ({display(label)} {score:.2f} < {min_confidence:.2f})"


@dataclass(frozen=True)
class Rules:
    """A writer's settings (lastgenre's names): ``min_confidence`` (None: the model's confident threshold),
    ``count`` genres at most, ``title_case``, ``force`` (replace genres someone else set), ``keep_existing``
    (with ``force``: keep them first). ``checked`` raises ``ParameterError`` on a bad value."""

    min_confidence: float
    count: int = 1
    title_case: bool = True
    force: bool = False
    keep_existing: bool = False

    @classmethod
    def checked(cls, *, min_confidence: Any = None, count: Any = 1, title_case: Any = True, force: Any = False,
                keep_existing: Any = False) -> Rules:
        from ..prediction import check_min_confidence

        return cls(check_min_confidence(min_confidence), int(count), bool(title_case), bool(force), bool(keep_existing))

    def decide(self, call: Call, *, existing: Sequence[str], ours: bool) -> tuple[str, list[str]]:
        """(outcome, genres to set): ``pick``, then ``keep_or_replace``."""
        outcome, genres = pick(call, min_confidence=self.min_confidence, count=self.count, title_case=self.title_case)
        if outcome != SET:
            return outcome, genres
        return keep_or_replace(genres, existing=existing, ours=ours, force=self.force,
                               keep_existing=self.keep_existing, count=self.count)

    def standing(self, *, existing: Sequence[str], ours: bool, current: bool) -> str | None:
        return standing(existing=existing, ours=ours, current=current, force=self.force)

    def in_album(self, album_outcome: str, *, existing: Sequence[str], ours: bool) -> str:
        """A track of an album voted ``album_outcome``: ``SET`` (it inherits the vote) unless the album set
        nothing or the track keeps genres someone else gave it."""
        if album_outcome != SET:
            return album_outcome
        return KEPT if existing and not ours and not self.force else SET
