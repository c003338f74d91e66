"""A learned model directory read back against its library: the genres' figures, and the likely mis-tags now.

``LearnedModel.load`` reads what ``learn`` wrote (writer.py): the head's four tensors from ``model.safetensors``, the
labels, the temperatures and the card's figures; a directory ``learn`` did not write is refused in one line. ``review``
scores every file of a ``stored.StoredLibrary`` (the stored windows, no audio decoded; the adapter reads it with
``library.learning.read_stored`` of the model's ``backbone``, as ``learn`` is given its library) with that head,
calibrated as ``predict`` does (``fit.calibrated_file_scores``), and lists the files whose current genre tag the model
contradicts with ``report.contradicted``'s rule (another genre called, the tagged one given at most
``report.SUSPECT_AT_MOST``), in ``report.listed``'s form and order. It reads the tags *now*: a corrected file drops out
of the list at once. A file's tag counts when its values name exactly one of the model's genres (spellings compared by
``genres.values.canonical_key``; the merges and aliases the card records applied); files whose genres musicgenre
wrote are never judged, as ``learn`` never learns them.

The files the final head trained on are scored in sample, so this list is close to, not the same as, ``learn
--report``'s out-of-fold ``suspects``: the head left the doubtful files out of its training (``left_out``), and those
are the ones it contradicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MusicGenreError
from ..genres.provenance import written_by_us
from ..genres.values import canonical_key, genre_names
from ..stored import StoredLibrary
from . import fit
from .report import SUSPECT_AT_MOST, contradicted, listed


@dataclass(frozen=True, eq=False)
class LearnedModel:
    """What a ``learn`` model directory holds for review: ``labels`` (the owner's spellings), the ``head``, its
    temperatures, the backbone it reads, the spelling keys that name each label, and the card's ``figures``
    (per genre: files, artists, out-of-fold precision, recall, n) and ``validation`` summary."""

    path: Path
    name: str
    labels: tuple[str, ...]
    head: fit.Head
    temperature: float
    by_windows: tuple[float, ...]
    backbone: tuple[str, str]
    keys: Mapping[str, str]
    figures: dict[str, dict[str, Any]]
    validation: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> LearnedModel:
        from safetensors.numpy import load_file

        from ..modeldir import WEIGHTS, read
        from .writer import FEATURES, HEAD_KEYS, backbone_identity

        path = Path(path)
        card = read(path)
        if card.model_args.get("features") != FEATURES or card.model_args.get("hidden") != 0:
            raise MusicGenreError(f"{path}: not a model made by `musicgenre learn` (its likely mis-tags need one)")
        try:
            tensors = load_file(str(path / WEIGHTS))
            head = fit.Head(**{k: np.asarray(tensors[name], np.float32) for k, name in HEAD_KEYS.items()})
        except (OSError, KeyError) as e:
            raise MusicGenreError(f"{path}: cannot read the learned head ({e})") from None
        training = card.get("training") or {}
        vocab = training.get("vocabulary") or {}
        keys = {canonical_key(g): g for g in card.labels}
        for merge in vocab.get("merged", []):
            for source in merge.get("from", []):
                if merge.get("into") in card.labels:
                    keys.setdefault(canonical_key(str(source)), merge["into"])
        for source, target in (training.get("aliases") or {}).items():
            if target in card.labels:
                keys.setdefault(canonical_key(source), target)
        valid = (card.get("metrics") or {}).get("valid") or {}
        per_genre = valid.get("per_genre") or {}
        counts = {g["genre"]: g for g in vocab.get("genres", [])}
        figures = {g: {"files": counts.get(g, {}).get("files"), "artists": counts.get(g, {}).get("artists"),
                       **per_genre.get(g, {})} for g in card.labels}
        summary = {k: valid[k] for k in ("top1", "macro_f1", "folds", "files", "leaky") if k in valid}
        return cls(path, card.name, tuple(card.labels), head, float(card.temperature or 1.0),
                   tuple(card.temperature_by_windows), backbone_identity(), keys, figures, summary)

    def label_of(self, genres: list[str]) -> str | None:
        """The one model genre a file's genre values name, or None (none of the model's, or several)."""
        found = {self.keys[k] for v in genres for k in (canonical_key(n) for n in genre_names(str(v)))
                 if k in self.keys}
        return found.pop() if len(found) == 1 else None


def is_learned(path: Path) -> bool:
    """Whether ``path`` is a model directory ``learn`` wrote (the head ``LearnedModel`` reads)."""
    from ..modeldir import CONFIG, read
    from .writer import FEATURES

    if not (Path(path) / CONFIG).is_file():
        return False
    try:
        args = read(Path(path)).model_args
    except MusicGenreError:
        return False
    return args.get("features") == FEATURES and args.get("hidden") == 0


def review(lib: StoredLibrary, model: LearnedModel, *, kept: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The likely mis-tags under ``model`` among ``lib``'s files (module docstring), most certain first: ``path``,
    ``tagged`` (the model's genre the tag names), ``genre`` (the tag as the file holds it), ``predicted``,
    ``probability``, ``tagged_probability``. ``kept``: path -> tag value the owner kept (not listed while the tag
    is that). ``lib`` must hold the windows of ``model.backbone`` (else MusicGenreError: rescan)."""
    if tuple(lib.backbone) != tuple(model.backbone):
        raise MusicGenreError(f"{model.path}: learned on {model.backbone[0]} {model.backbone[1]} features, the "
                              f"library holds {lib.backbone[0]} {lib.backbone[1]}: rescan the library")
    kept = kept or {}
    paths, y, held, windows = [], [], {}, []
    index = {g: i for i, g in enumerate(model.labels)}
    for track in lib.tracks:
        x = lib.features.get(track.path)
        if x is None or not len(x):
            continue
        genres = list(track.genres)
        label = model.label_of(genres) if genres and not written_by_us(track) else None
        shown = "; ".join(genres)
        if label is None or kept.get(track.path) == shown:
            continue
        paths.append(track.path)
        y.append(index[label])
        held[track.path] = shown
        windows.append(x)
    if not paths:
        return []
    p, labels = scores(model, windows), np.array(y)
    which = contradicted(p, labels, np.ones(len(labels), bool), SUSPECT_AT_MOST)
    return [{**s, "genre": held[s["path"]]} for s in listed(paths, p, labels, list(model.labels), which)]


def scores(model: LearnedModel, windows: list[np.ndarray]) -> np.ndarray:
    """Each file's calibrated scores from its stored windows (``fit.calibrated_file_scores``' numbers), (files, L).
    Files with the same number of windows go through the head together (one matrix product per window count,
    one BLAS thread), not one by one: a 10,000-file library in a fraction of a second."""
    from threadpoolctl import threadpool_limits

    from ..scores import recalibrate, softmax, window_count_temperature

    out = np.zeros((len(windows), len(model.labels)), np.float32)
    by_count: dict[int, list[int]] = {}
    for i, x in enumerate(windows):
        by_count.setdefault(len(x), []).append(i)
    with threadpool_limits(limits=1):
        for k, files in by_count.items():
            x = np.stack([windows[i] for i in files])  # (files, k, d)
            probs = softmax(model.head.logits(x.reshape(len(files) * k, -1)), model.temperature)
            mean = probs.reshape(len(files), k, -1).mean(axis=1)
            out[files] = recalibrate(mean, window_count_temperature(model.by_windows, k))
    return out
