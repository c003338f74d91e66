"""The genre-tag room: every rule about genre words, tag values and whose genre a tag is, in one package.

- here: the one genre-name mapping, model label ids -> the names users, players and beets expect;
- ``words``: the word lists (spellings, styles, backbone genre tags, values that are no genre), one rule a word;
- ``values``: tag values as files hold them -> genre names (splitting, ID3 codes) and ``canonical_key``;
- ``provenance``: ``written_by_us`` (our own genres are never the owner's word);
- ``tracks``: ``TrackTags`` (``from_row``: as the library stores a file's tags) and artist groups.

Used by scan (``library.filetags``), learn, similar, the tags line, the "unknown" detector and the beets plugin.

Every writer goes through here (``musicgenre scan --write-tags``, the beets plugin, the CLI's table):

- ``canonical(label)``: lowercase, spelled as beets' lastgenre whitelist and MusicBrainz spell it
  (``hiphop`` -> ``hip hop``, ``rnb`` -> ``r&b``); a label not in the table passes through lowercased.
- ``display(label)``: title-cased as lastgenre's ``title_case`` does it (``str.title``): ``Hip Hop``, ``R&B``.
- ``pick_genres(scores, ...)``: which genres a confident prediction writes; None for an uncertain one.
- ``is_genre_tag(tag, labels)`` / ``descriptive_tags(tags, labels)``: whether a backbone tag names one of the
  model's genres, and the tags left to show beside an answer (moods, instruments, eras, other styles).

The model's own label ids stay unchanged in JSON, CSV and the library database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .words import CANONICAL, STYLE_OF

# A runner-up genre joins the written list (up to ``count``) only with at least this probability.
RUNNER_UP_MIN = 0.25


def canonical(label: str) -> str:
    """The canonical lowercase name of a model label (``hiphop`` -> ``hip hop``)."""
    key = label.strip().lower()
    return CANONICAL.get(key, key.replace("_", " "))


def display(label: str) -> str:
    """The name shown to people and written into tags by default (``hiphop`` -> ``Hip Hop``). A label that is
    not all lowercase is already in its owner's words (a model ``musicgenre learn`` trained: "IDM",
    "Drum & Bass") and is kept as it is."""
    if label != label.lower():
        return label.strip()
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


def _words(text: str) -> tuple[str, ...]:
    """Lowercase words of a tag or label, the whole and each word folded to its canonical spelling
    (``Hip-Hop`` -> hip hop, ``rhythm and blues`` -> r&b, ``hip-hop soul`` -> hip hop soul)."""
    return tuple(w for word in canonical(text).replace("-", " ").split() for w in canonical(word).split())


def _contains(words: tuple[str, ...], part: tuple[str, ...]) -> bool:
    n = len(part)
    return n > 0 and any(words[i : i + n] == part for i in range(len(words) - n + 1))


def is_genre_tag(tag: str, labels: Iterable[str]) -> bool:
    """Whether a backbone tag names one of the model's genres (``labels``, as the model names them).

    Spellings are folded as ``canonical`` folds them (``Hip-Hop``, ``hiphop`` and ``hip hop`` are one genre), a
    style names its genre (``STYLE_OF``: ``electronica``, ``electro``, ``house`` and ``techno`` are electronic),
    and a tag that holds a label as a whole word names that genre as a style of it: ``heavy metal``, ``hard
    rock``, ``classic rock``, ``indie rock``, ``Progressive rock`` and ``indie pop`` are rock, metal and pop
    words. Genres the model has no label for (soul, funk, folk, punk, ambient, r&b, and electronic
    for a ten-genre model) are not genre tags here: shown beside an answer they inform, never contradict.
    """
    words = _words(tag)
    style = STYLE_OF.get(" ".join(words))
    for label in labels:
        genre = _words(label)
        if _contains(words, genre) or (style is not None and _words(style) == genre):
            return True
    return False


def descriptive_tags(tags: Mapping[str, float], labels: Iterable[str]) -> dict[str, float]:
    """``tags`` without those that name one of the model's genres (``is_genre_tag``), in their order: what is
    shown beside an answer (the CLI's ``tags:`` line, the web page's tag panel), so that no tag reads as a
    competing genre. JSON output keeps every tag."""
    labels = list(labels)
    return {tag: score for tag, score in tags.items() if not is_genre_tag(tag, labels)}
