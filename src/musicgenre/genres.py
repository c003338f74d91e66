"""The one genre-name mapping: model label ids -> the names users, players and beets expect.

Every writer goes through here (``musicgenre scan --write-tags``, the beets plugin, the CLI's table):

- ``canonical(label)``: lowercase, spelled as beets' lastgenre whitelist and MusicBrainz spell it
  (``hiphop`` -> ``hip hop``, ``rnb`` -> ``r&b``); a label not in the table passes through lowercased.
- ``display(label)``: title-cased as lastgenre's ``title_case`` does it (``str.title``): ``Hip Hop``, ``R&B``.
- ``pick_genres(scores, ...)``: which genres a confident prediction writes; None for an uncertain one.

The model's own label ids stay unchanged in JSON, CSV and the library database.
"""

from __future__ import annotations

from collections.abc import Mapping

# label id (as a model may name it) -> canonical name. Only spellings that differ need an entry;
# the shipped labels blues, classical, country, disco, jazz, metal, pop, reggae, rock, electronic are
# already canonical.
CANONICAL: dict[str, str] = {
    "hiphop": "hip hop",
    "hip-hop": "hip hop",
    "hip_hop": "hip hop",
    "rnb": "r&b",
    "r-n-b": "r&b",
    "r_and_b": "r&b",
    "rhythm and blues": "r&b",
    "electronica": "electronic",
    "edm": "electronic",
    "electro": "electronic",
    "heavy_metal": "heavy metal",
    "heavymetal": "heavy metal",
    "easy_listening": "easy listening",
}

# A runner-up genre joins the written list (up to ``count``) only with at least this probability.
RUNNER_UP_MIN = 0.25


def canonical(label: str) -> str:
    """The canonical lowercase name of a model label (``hiphop`` -> ``hip hop``)."""
    key = label.strip().lower()
    return CANONICAL.get(key, key.replace("_", " "))


def display(label: str) -> str:
    """The name shown to people and written into tags by default (``hiphop`` -> ``Hip Hop``)."""
    return canonical(label).title()


def name(label: str, *, title_case: bool = True) -> str:
    """``display(label)`` or, with ``title_case=False``, ``canonical(label)``."""
    return display(label) if title_case else canonical(label)


def pick_genres(scores: Mapping[str, float], *, min_confidence: float, count: int = 1,
                title_case: bool = True) -> list[str] | None:
    """The genre names to write for one prediction, or None when it is uncertain.

    ``scores`` maps label ids to probabilities. The top genre must reach ``min_confidence`` (the
    same rule as ``Prediction.status``); up to ``count - 1`` runner-ups follow when each scores at least
    ``RUNNER_UP_MIN``. Names are canonical (``title_case=False``) or title-cased, without duplicates.
    """
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    if not ranked or ranked[0][1] < min_confidence:
        return None
    out: list[str] = []
    for i, (label, score) in enumerate(ranked):
        if len(out) >= max(count, 1) or (i > 0 and score < RUNNER_UP_MIN):
            break
        genre = name(label, title_case=title_case)
        if genre not in out:
            out.append(genre)
    return out
