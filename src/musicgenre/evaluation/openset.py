"""Fitting and reporting the "unknown" detector (``musicgenre.openset``: the method, and applying it), numpy only,
for both trainers: ``own_tags`` (which genre tags each genre wears), ``fit_thresholds`` (the novelty quantile per
input length) and ``fit`` (the two, as shipped); ``report`` says how the detector changes the calls per length."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..genres import is_genre_tag
from ..genres.words import GENRE_WORDS
from ..openset import MAX_WINDOWS, OWN_SHARE, QUANTILE, OpenSet
from ..scores import calibrated_clip_scores
from .calibration import runs as calibration_runs


def runs(n_rows: int, n: int) -> list[slice]:
    """Non-overlapping runs of ``n`` consecutive windows of a clip of ``n_rows`` windows (none if shorter)."""
    return calibration_runs(n_rows, n, step=n)


def own_tags(tag_probs: Sequence[np.ndarray], y: Sequence[int], tag_names: Sequence[str], labels: Sequence[str], *,
             words: Iterable[str] = GENRE_WORDS, top: int = 1) -> tuple[list[str], list[tuple[str, ...]]] | None:
    """The backbone's genre tags (those of ``tag_names`` among ``words``, in the backbone's order) and, for each
    label, the tags it owns: those naming it (``genres.is_genre_tag``) and those among the ``top`` strongest genre
    tags of at least ``OWN_SHARE`` of its training clips (``tag_probs[i]``: clip i's (windows, tags) tag
    probabilities, ``y[i]`` its label index). None without genre tags or clips."""
    names = [t.lower() for t in tag_names]
    vocabulary = set(words)
    words = [t for t in names if t in vocabulary]
    index = np.array([names.index(t) for t in words])
    if len(index) == 0 or not tag_probs:
        return None
    clip_means = np.stack([np.asarray(p, np.float64).mean(axis=0)[index] for p in tag_probs])
    strongest = np.argsort(-clip_means, axis=1, kind="stable")[:, :top]
    labels_of = np.asarray(y)
    owns = []
    for k, label in enumerate(labels):
        own_k = {w for w in words if is_genre_tag(w, [label])}
        if np.any(mine := labels_of == k):
            share = np.bincount(strongest[mine].ravel(), minlength=len(words)) / np.count_nonzero(mine)
            own_k |= {words[j] for j in np.flatnonzero(share >= OWN_SHARE)}
        owns.append(tuple(w for w in words if w in own_k))
    return words, owns


def fit_thresholds(detector: OpenSet, tag_probs: Sequence[np.ndarray], y: Sequence[int], tag_names: Sequence[str],
                   labels: Sequence[str], *, quantile: float = QUANTILE) -> OpenSet:
    """``detector`` with its novelty thresholds: for n = 1 .. ``MAX_WINDOWS`` windows, the ``1 - quantile``
    quantile of the novelty of every non-overlapping run of n windows of the training clips, each under its own
    genre."""
    names = [t.lower() for t in tag_names]
    labels_of = np.asarray(y)
    thresholds = []
    for n in range(1, MAX_WINDOWS + 1):
        scores = [detector.novelty(dict(zip(names, p[s].mean(axis=0))), labels[k])
                  for p, k in zip(tag_probs, labels_of) for s in runs(len(p), n)]
        if not scores:  # no clip this long: the longest length's threshold holds
            break
        thresholds.append(float(np.quantile(np.asarray(scores, np.float64), 1.0 - quantile)))
    return dataclasses.replace(detector, thresholds=tuple(thresholds), quantile=quantile)


def fit(tag_probs: Sequence[np.ndarray], y: Sequence[int], tag_names: Sequence[str], labels: Sequence[str], *,
        quantile: float = QUANTILE) -> OpenSet | None:
    """The detector from in-vocabulary training clips (``own_tags``, then ``fit_thresholds``), as shipped:
    ``tag_probs[i]`` the (windows, tags) tag probabilities of clip i's analysed windows, ``y[i]`` its label index.
    None when the backbone's tags hold no genre word the model lacks (nothing to tell by)."""
    found = own_tags(tag_probs, y, tag_names, labels)
    if found is None:
        return None
    words, owns = found
    own = {w for o in owns for w in o}
    foreign = [w for w in words if w not in own]  # (a tag that is a label's name is own: is_genre_tag)
    if not foreign or not own:
        return None
    detector = OpenSet(tuple(foreign), tuple(w for w in words if w in own), (0.0,), quantile, tuple(labels),
                       tuple(owns))
    return fit_thresholds(detector, tag_probs, y, tag_names, labels, quantile=quantile)


def report(detector: OpenSet | None, clips: Sequence[tuple[np.ndarray, np.ndarray, int]], tag_names: Sequence[str],
           *, temperature: float, by_windows: Sequence[float], min_confidence: float,
           lengths: Sequence[int | None] = (1, 3, None)) -> dict[str, Any]:
    """How the detector changes the calls, per input length (``None``: whole clips): ``clips`` holds each clip's
    (window logits (n, L), tag probabilities (n, T), label index; -1 for a genre the model lacks), non-silent
    windows only. For in-vocabulary (``known``) and out-of-vocabulary (``unknown_genres``) inputs: n, the share
    called confident without and with the detector, the share called unknown and (known) confident accuracy."""
    names = [t.lower() for t in tag_names]
    out: dict[str, Any] = {}
    for n in lengths:
        rows = []
        for logits, tags, y in clips:
            for s in ([slice(0, len(logits))] if n is None else runs(len(logits), n)):
                p = calibrated_clip_scores(logits[s], np.ones(s.stop - s.start, bool), temperature, by_windows)
                probs = dict(zip(names, np.asarray(tags[s], np.float64).mean(axis=0)))
                genre = detector.genres[int(p.argmax())] if detector is not None and detector.genres else None
                unknown = detector is not None and detector.is_unknown(probs, s.stop - s.start, genre)
                rows.append((y, bool(p.max() >= min_confidence), unknown, int(p.argmax()) == y))
        part: dict[str, Any] = {}
        for name, keep in (("known", lambda r: r[0] >= 0), ("unknown_genres", lambda r: r[0] < 0)):
            sel = [r for r in rows if keep(r)]
            if not sel:
                continue
            confident = [r for r in sel if r[1] and not r[2]]
            part[name] = {"n": len(sel), "confident_share_without": round(float(np.mean([r[1] for r in sel])), 4),
                          "confident_share": round(len(confident) / len(sel), 4),
                          "unknown_share": round(float(np.mean([r[2] for r in sel])), 4)}
            if name == "known" and confident:
                part[name]["confident_accuracy"] = round(float(np.mean([r[3] for r in confident])), 4)
        out["whole" if n is None else str(n)] = part
    return out
