"""Open-set detection: the status "unknown" for audio unlike every genre a model was trained on.

The backbone's own tags (MSD MusiCNN's 50 include electronic, dance, house, ambient, soul, funk, folk, punk)
already say what kind of music a recording is, also for genres the genre head never saw. A model's genre words
fall in two sets, fitted on its in-vocabulary training clips only (nothing learns what "unknown" sounds like):

- ``own`` for each of the model's genres: the genre tags that name it (``genres.is_genre_tag``: rock, hard rock,
  indie rock for rock), and those that are the strongest genre tag of at least ``OWN_SHARE`` of its training
  clips (MSD's "soul" on GTZAN reggae, "punk" on metal, "jazz" on classical): the tags that genre is known to wear;
- ``foreign``: the genre tags no genre of the model owns (for the ten-genre model: electronic, dance, house,
  ambient, folk, ...).

A track called genre g has the novelty ``P(any foreign tag) - P(any tag g owns)``, each a noisy-or (``1 - prod(1 -
p)``) of its tag probabilities, which are the mean over its analysed windows (the one aggregation, so a long track
is judged as a whole). Music that wears several foreign tags at once (electronic, electronica, chillout, ambient)
counts as more foreign than a rock song with a touch of folk, and a call whose own tags are absent (a "reggae" call
that wears no reggae tag) has nothing to outweigh them. It is "unknown" when its novelty exceeds the threshold for
its number of windows: the ``1 - quantile`` quantile of the novelty of the training clips' runs of that many
windows (each under its own genre; a lone window is noisier than a mean of ten, as with the length temperatures),
so about ``quantile`` of in-vocabulary inputs are called unknown. Chosen on the validation partitions among
variants (experiments/openset_choice.py, docs/models.md). Numpy only; no second backbone pass (the tags come with
the genres). This module applies a detector (inference, the core); ``evaluation.openset`` fits and reports one.

A card written before the detector took the called genre into account (method ``foreign-tags``: the strongest
foreign tag minus the strongest tag any genre owns) is still read and judged as it was fitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import WeightsError

OWN_SHARE = 0.2  # a tag that is the strongest genre tag of this share of one label's training clips is "own"
QUANTILE = 0.025  # share of in-vocabulary training inputs (at each length) called unknown
MAX_WINDOWS = 10  # thresholds for 1..MAX_WINDOWS windows; longer inputs use the last


METHOD = "foreign-tags-by-genre"
METHOD_V1 = "foreign-tags"  # the first cards' method: max foreign - max own over every genre's own tags


def evidence(p: Sequence[float], how: str) -> float:
    """How strongly a track wears at least one of these tags: a noisy-or of their probabilities, or the largest."""
    if how == "max":
        return max(p)
    return 1.0 - float(np.prod(1.0 - np.asarray(p, np.float64)))


@dataclass(frozen=True)
class OpenSet:
    """A fitted detector (``fit``), stored in the model card's ``open_set`` key. ``own_by_genre[i]`` are the tags
    ``genres[i]`` owns; ``own`` is every genre's (a v1 card has no ``genres`` and uses ``own`` for every call)."""

    foreign: tuple[str, ...]
    own: tuple[str, ...]
    thresholds: tuple[float, ...]  # thresholds[n - 1]: the novelty above which n windows are "unknown"
    quantile: float = QUANTILE
    genres: tuple[str, ...] = ()
    own_by_genre: tuple[tuple[str, ...], ...] = ()

    @property
    def method(self) -> str:
        return METHOD if self.genres else METHOD_V1

    def owned(self, genre: str | None) -> tuple[str, ...]:
        """The tags the called ``genre`` owns (``own`` for a v1 card, or a genre the detector does not know)."""
        if genre in self.genres:
            return self.own_by_genre[self.genres.index(genre)]
        return self.own

    def novelty(self, tags: Mapping[str, float], genre: str | None = None) -> float | None:
        """How much more a track called ``genre`` wears the foreign tags than its own (module docstring); None
        without those tags."""
        foreign = [tags[t] for t in self.foreign if t in tags]
        own = [tags[t] for t in self.owned(genre) if t in tags]
        if not foreign or (not own and not self.genres):
            return None
        how = "noisy-or" if self.genres else "max"
        return evidence(foreign, how) - (evidence(own, how) if own else 0.0)

    def threshold(self, n_windows: int) -> float:
        """The novelty threshold for an input of ``n_windows`` analysed windows."""
        return self.thresholds[min(max(n_windows, 1), len(self.thresholds)) - 1]

    def is_unknown(self, tags: Mapping[str, float], n_windows: int, genre: str | None = None) -> bool:
        """Whether a track of ``n_windows`` windows with these tag probabilities, called ``genre``, is none of the
        model's genres."""
        score = self.novelty(tags, genre)
        return score is not None and score > self.threshold(n_windows)

    def closest(self, tags: Mapping[str, float], genre: str | None = None, k: int = 2) -> list[str]:
        """The foreign genre tags stronger than every tag the called ``genre`` owns, strongest first (at most
        ``k``): what the recording sounds like instead ("electronic", "dance")."""
        strongest_own = max((tags[t] for t in self.owned(genre) if t in tags), default=0.0)
        foreign = sorted((t for t in self.foreign if tags.get(t, 0.0) > strongest_own), key=lambda t: -tags[t])
        return foreign[:k]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "foreign": list(self.foreign), "own": list(self.own)}
        if self.genres:
            d["own_by_genre"] = {g: list(o) for g, o in zip(self.genres, self.own_by_genre)}
        return {**d, "quantile": self.quantile, "thresholds_by_windows": [round(t, 5) for t in self.thresholds]}

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "config.json") -> OpenSet:
        """Read the card's ``open_set`` entry; a malformed one is a ``WeightsError`` naming ``where``."""
        try:
            if d.get("method") not in (METHOD, METHOD_V1):
                raise ValueError(f"unknown method {d.get('method')!r}")
            foreign = tuple(str(t) for t in d["foreign"])
            own = tuple(str(t) for t in d["own"])
            thresholds = tuple(float(t) for t in d["thresholds_by_windows"])
            by_genre = d["own_by_genre"] if d["method"] == METHOD else {}
            if not foreign or not own or not thresholds or (d["method"] == METHOD and not by_genre):
                raise ValueError("empty foreign, own, own_by_genre or thresholds_by_windows")
            return cls(foreign, own, thresholds, float(d.get("quantile", QUANTILE)), tuple(str(g) for g in by_genre),
                       tuple(tuple(str(t) for t in o) for o in by_genre.values()))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise WeightsError(f"{where}: key 'open_set' is invalid ({e})") from None
