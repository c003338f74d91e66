"""How the "unknown" detector was chosen (docs/models.md, "None of its genres").

    python -m experiments.openset_choice     # experiments/results/openset-choice.json; ~6 minutes on 2 cores

Runs the default recipe's validation run (heads on the train partitions; features from the recipe's cache),
then scores detector variants exactly as the recipe reports the shipped one (``openset.report``), on:

- the artist-disjoint valid partitions: in vocabulary GTZAN fault-filtered valid + Emotify classical and rock
  valid (96 clips), out of vocabulary Emotify electronic valid (15 clips, 4 artist groups);
- Emotify electronic's train partition (70 clips), never trained or fitted on either: a second look.

Variants, all fitted on the in-vocabulary train partitions only:

- ``by_genre``: v1 (the strongest foreign tag minus the strongest tag any genre owns) or v2 (a noisy-or of the
  foreign tags minus a noisy-or of the tags the called genre owns: what ships);
- ``words``: the genre words with (``all``) or without (``no-scene``) the scene words "indie" and "alternative";
- ``top``: a tag is own when it is among the ``top`` strongest genre tags of >= 20% of one label's clips;
- ``quantile``: the share of in-vocabulary training runs called unknown;
- ``knn``: the tag novelty or'ed with a second test, the cosine distance of the run's mean embedding to its
  5 nearest training windows, unknown above the same quantile of the training runs' distances (each run's own
  artist group left out).

The targets read at every length: out-of-vocabulary confident <= 0.10, in-vocabulary confident share down by at
most 5 points, confident calls right >= 0.90.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from experiments._common import RESULTS, write_results
from musicgenre.evaluation.openset import fit_thresholds, own_tags, report, runs
from musicgenre.genres.words import GENRE_WORDS
from musicgenre.openset import OpenSet
from musicgenre.scores import sigmoid
from musicgenre.train.head import head_function
from musicgenre.train.recipe import Recipe, clean_windows, head_input, tag_names, unknown_clips, validation_run

K = 5  # neighbours of the kNN distance
VARIANTS: list[dict[str, Any]] = [
    # v1: max foreign - max own over every genre's own tags
    {"words": "all", "by_genre": False, "top": 1, "quantile": 0.05},  # the first shipped detector
    {"words": "all", "by_genre": False, "top": 1, "quantile": 0.025},
    {"words": "no-scene", "by_genre": False, "top": 1, "quantile": 0.05},
    {"words": "no-scene", "by_genre": False, "top": 1, "quantile": 0.025},
    {"words": "no-scene", "by_genre": False, "top": 1, "quantile": 0.05, "knn": True},
    {"words": "no-scene", "by_genre": False, "top": 1, "quantile": 0.025, "knn": True},
    # v2: noisy-or of the foreign tags - noisy-or of the tags the called genre owns
    {"words": "all", "by_genre": True, "top": 1, "quantile": 0.025},
    {"words": "no-scene", "by_genre": True, "top": 1, "quantile": 0.05},
    {"words": "no-scene", "by_genre": True, "top": 1, "quantile": 0.025},  # shipped
    {"words": "no-scene", "by_genre": True, "top": 1, "quantile": 0.02},
    {"words": "no-scene", "by_genre": True, "top": 2, "quantile": 0.025},
]
WORDS = {"all": GENRE_WORDS | {"indie", "alternative"}, "no-scene": GENRE_WORDS - {"indie", "alternative"}}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Knn:
    """Cosine distance of a run's mean embedding to its ``K`` nearest training windows, with thresholds by run
    length from the training clips' own runs (their artist group left out)."""

    def __init__(self, train: list[tuple[str, np.ndarray]], quantile: float) -> None:
        self.ref = np.concatenate([unit(e) for _, e in train])
        self.group = np.concatenate([[g] * len(e) for g, e in train])
        self.thresholds = []
        for n in range(1, 11):
            d = [self.distance(e[s], g) for g, e in train for s in runs(len(e), n)]
            if not d:
                break
            self.thresholds.append(float(np.quantile(d, 1 - quantile)))

    def distance(self, emb: np.ndarray, group: str | None = None) -> float:
        sim = unit(emb.mean(axis=0)) @ self.ref.T
        if group is not None:
            sim = np.where(self.group == group, -1.0, sim)
        return float(1.0 - np.sort(sim)[-K:].mean())

    def is_unknown(self, emb: np.ndarray) -> bool:
        return self.distance(emb) > self.thresholds[min(len(emb), len(self.thresholds)) - 1]


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    recipe = dataclasses.replace(Recipe.load(RESULTS.parents[1] / "recipes" / "musicnn-genre.toml"), robustness=())
    out = validation_run(recipe)
    run = head_function(out["head"])
    names = tag_names(recipe)
    clips = recipe.clips()
    unknown = unknown_clips(recipe)
    train = clean_windows(recipe, [c for c in clips if c.split == "train"])
    sets = {"valid": clean_windows(recipe, [c for c in clips if c.split == "valid"]
                                   + [c for c in unknown if c.split == "valid"]),
            "unknown_genres_train_partition": clean_windows(recipe, [c for c in unknown if c.split == "train"])}
    args: dict[str, Any] = {"temperature": out["temperature"], "by_windows": out.get("temperature_by_windows", ()),
                            "min_confidence": 0.8}
    results: dict[str, Any] = {"train_clips": len(train), "variants": []}
    train_tags, train_y = [sigmoid(f.tags) for _, f in train], [recipe.labels.index(c.label) for c, _ in train]
    inputs = {name: [(run(head_input(f, recipe.features)), sigmoid(f.tags),
                      recipe.labels.index(c.label) if c.label else -1, f.emb) for c, f in rows]
              for name, rows in sets.items()}
    for v in VARIANTS:
        detector = fit_variant(train_tags, train_y, names, recipe.labels, quantile=v["quantile"],
                               words=WORDS[v["words"]], top=v["top"], by_genre=v["by_genre"])
        assert detector is not None
        knn = Knn([(c.group, f.emb) for c, f in train], v["quantile"]) if v.get("knn") else None
        row: dict[str, Any] = {**v, "detector": detector.to_dict()}
        for name, data in inputs.items():
            if knn is None:
                row[name] = report(detector, [d[:3] for d in data], names, **args)
            else:  # a run is unknown by either test: report() per length on runs cut here
                row[name] = either_report(detector, knn, data, names, args)
        results["variants"].append(row)
        print(summary(row), flush=True)
    write_results(RESULTS / "openset-choice.json", results)


def fit_variant(tag_probs: Sequence[np.ndarray], y: Sequence[int], tag_names: Sequence[str], labels: Sequence[str],
                *, quantile: float, words: Iterable[str], top: int, by_genre: bool) -> OpenSet | None:
    """A detector variant (``evaluation.openset.fit`` is the shipped one: these genre ``words``, ``top`` 1,
    ``by_genre``): the genre tags each label owns, then the novelty thresholds; ``by_genre=False``: the v1
    detector (every genre's own tags for every call)."""
    found = own_tags(tag_probs, y, tag_names, labels, words=words, top=top)
    if found is None:
        return None
    genre_tags, owns = found
    own = {w for o in owns for w in o}
    foreign = [w for w in genre_tags if w not in own]
    if not foreign or not own:
        return None
    detector = OpenSet(tuple(foreign), tuple(w for w in genre_tags if w in own), (0.0,), quantile,
                       tuple(labels) if by_genre else (), tuple(owns) if by_genre else ())
    return fit_thresholds(detector, tag_probs, y, tag_names, labels, quantile=quantile)


def either_report(detector: OpenSet, knn: Knn, data: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]],
                  names: list[str],
                  args: dict[str, Any]) -> dict[str, Any]:
    """``report`` for the tag detector or'ed with the kNN test: runs the kNN flags are reported as unknown by
    giving them tags that are certainly novel (every foreign tag 1, every own tag 0)."""
    novel = np.array([1.0 if t.lower() in detector.foreign else 0.0 for t in names])
    out: dict[str, Any] = {}
    for n, key in ((1, "1"), (3, "3"), (None, "whole")):
        cut: list[tuple[np.ndarray, np.ndarray, int]] = []
        for logits, tags, y, emb in data:
            for s in ([slice(0, len(logits))] if n is None else runs(len(logits), n)):
                t = tags[s]
                if knn.is_unknown(emb[s]):
                    t = np.tile(novel, (len(t), 1))
                cut.append((logits[s], t, y))
        out[key] = report(detector, cut, names, lengths=(None,), **args)["whole"]
    return out


def summary(row: dict[str, Any]) -> str:
    parts = []
    for key in ("1", "3", "whole"):
        known, oov = row["valid"][key]["known"], row["valid"][key]["unknown_genres"]
        drop = 100 * (known["confident_share_without"] - known["confident_share"])
        parts.append(f"{key}: -{drop:.1f} pt, right {known['confident_accuracy']:.3f}, OOV {oov['confident_share']:.3f}"
                     f" (train {row['unknown_genres_train_partition'][key]['unknown_genres']['confident_share']:.3f})")
    knn = " +knn" if row.get("knn") else ""
    kind = "v2" if row["by_genre"] else "v1"
    return f"{kind} {row['words']} top={row['top']} q={row['quantile']}{knn}: " + "; ".join(parts)


if __name__ == "__main__":
    main()
