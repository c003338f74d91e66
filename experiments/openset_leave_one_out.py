"""The "unknown" detector on genres the model was never taught: one GTZAN genre left out at a time.

    python -m experiments.openset_leave_one_out            # experiments/results/openset-leave-one-out.json
    python -m experiments.openset_leave_one_out --genres blues,jazz --members 1    # a quicker look

For each of the recipe's GTZAN genres G: the recipe's validation run with G removed from the labels (its clips,
and Emotify's clips mapped to G, leave the heads, the calibration and the detector's fit), then the detector
(``evaluation.openset.fit`` on the remaining train partitions, as the recipe fits the shipped one) and the heads score:

- G's clips of GTZAN's fault-filtered valid partition (artist-disjoint from the heads' train partition) and,
  as a second look, G's train-partition clips (never trained or fitted on either): the unknown music;
- the remaining genres' valid clips: what the detector costs on known music.

Reported per left-out genre and input length (1, 3 windows, whole clips; ``evaluation.openset.report``): the share
of G's
clips called confidently (a genre at >= 0.8 and not unknown), the share called unknown; the known clips'
confident share and confident accuracy. The shipped model's figure for music outside its genres is Emotify
electronic valid (the recipe's ``unknown_genres``); this is the same question asked of ten other genres.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from experiments._common import RESULTS, ROOT, write_results
from musicgenre.data.corpus import read_gtzan_clips
from musicgenre.evaluation.openset import report
from musicgenre.prediction import DEFAULT_MIN_CONFIDENCE
from musicgenre.scores import sigmoid
from musicgenre.train.head import head_function
from musicgenre.train.recipe import Recipe, clean_windows, fit_open_set, head_input, tag_names, validation_run


def left_out(recipe: Recipe, genre: str) -> dict[str, Any]:
    """The validation run without ``genre`` and the detector's report on its clips and on the known valid clips."""
    labels = tuple(g for g in recipe.labels if g != genre)
    emotify = {k: ("" if v == genre else v) for k, v in recipe.emotify_labels.items()}
    r = dataclasses.replace(recipe, labels=labels, emotify_labels=emotify, robustness=(), unknown_genres=())
    t0 = time.perf_counter()
    val = validation_run(r)
    clips = r.clips()
    detector = fit_open_set(r, [c for c in clips if c.split == "train"])
    run, names = head_function(val["head"]), tag_names(r)
    gone = [dataclasses.replace(c, label="") for c in read_gtzan_clips([ROOT / p for p in recipe.gtzan])
            if c.label == genre]

    def rows(part: list[Any]) -> list[Any]:
        return [(run(head_input(f, r.features)), sigmoid(f.tags), r.labels.index(c.label) if c.label else -1)
                for c, f in clean_windows(r, part)]

    args: dict[str, Any] = {"temperature": val["temperature"], "by_windows": val.get("temperature_by_windows", ()),
                            "min_confidence": DEFAULT_MIN_CONFIDENCE}
    known_valid = [c for c in clips if c.split == "valid"]
    return {
        "valid": report(detector, rows(known_valid + [c for c in gone if c.split == "valid"]), names, **args),
        "train_partition": report(detector, rows([c for c in gone if c.split == "train"]), names, **args),
        "clips": {"valid": sum(c.split == "valid" for c in gone), "train": sum(c.split == "train" for c in gone)},
        "gtzan_valid_top1_known": val["gtzan"]["accuracy"], "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "musicnn-genre.toml"))
    ap.add_argument("--genres", default=None, help="comma-separated GTZAN genres to leave out (default: every label)")
    ap.add_argument("--members", type=int, default=None, help="heads per run (default: the recipe's)")
    ap.add_argument("--name", default="openset-leave-one-out", help="results file: experiments/results/NAME.json")
    args = ap.parse_args()
    recipe = Recipe.load(args.recipe, **({"members": args.members} if args.members else {}))
    genres = args.genres.split(",") if args.genres else list(recipe.labels)
    out: dict[str, Any] = {"recipe": args.recipe, "members": recipe.members, "genres": {}}
    for g in genres:
        res = out["genres"][g] = left_out(recipe, g)
        write_results(RESULTS / f"{args.name}.json", out)  # after every genre: a long run keeps what it has
        parts = [f"{g:<10} valid n={res['clips']['valid']:>2}"]
        for length in ("1", "3", "whole"):
            u = res["valid"][length].get("unknown_genres", {})
            parts.append(f"{length}: confident {u.get('confident_share', float('nan')):.2f}"
                         f" unknown {u.get('unknown_share', float('nan')):.2f}")
        tp = res["train_partition"]["whole"].get("unknown_genres", {})
        parts.append(f"| train partition n={res['clips']['train']} "
                     f"confident {tp.get('confident_share', float('nan')):.2f}")
        print("  ".join(parts), flush=True)


if __name__ == "__main__":
    main()
