"""Level and room: how a recipe's validation run holds up when the same songs are played quieter, recorded in a
room or coded as MP3, per front end (level normalisation) and head.

    python -m experiments.robustness --name today                                  # the shipped recipe as it is
    python -m experiments.robustness --name level-window --level-db -5 --conditions clean,mp3_64k,phone,room
    python -m experiments.robustness --name level-track --level-db -5 --level-span track \\
        --conditions clean,mp3_64k,phone,room

Each run is ``train.recipe.validation_run`` with the recipe's keys overridden: heads trained on the train
partitions, scored on the artist-disjoint valid partitions (GTZAN fault-filtered valid n=67, Emotify valid
n=29), the robustness report (``train.robustness``) on the valid clips under ``--robustness`` conditions
(``room_eval``: rooms, speakers, microphones and noise drawn from the held-out EVAL ranges of
``train.degrade``). Results: ``experiments/results/robustness-NAME.json`` (clean figures per source and
length, and the report).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from experiments._common import RESULTS, ROOT, robustness_figures, write_results
from musicgenre.train.recipe import Recipe, validation_run

ROBUSTNESS = ("quiet_6db", "quiet_15db", "quiet_25db", "room_eval", "mp3_64k")


def run(recipe: Recipe) -> dict[str, Any]:
    """The validation run's clean figures and robustness report, in the shape the results file keeps."""
    return {"recipe": {k: v for k, v in recipe.__dict__.items() if k not in ("gtzan", "emotify", "cache")},
            **robustness_figures(validation_run(recipe))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "musicnn-genre.toml"))
    ap.add_argument("--name", required=True, help="results file: experiments/results/robustness-NAME.json")
    ap.add_argument("--level-db", type=float, default=None, help="FeatureConfig.level_db (default: none)")
    ap.add_argument("--level-span", default="window", choices=("window", "track"))
    ap.add_argument("--conditions", default=None, help="training conditions, comma-separated (default: recipe's)")
    ap.add_argument("--robustness", default=",".join(ROBUSTNESS), help="conditions the valid clips are scored under")
    ap.add_argument("--hidden", type=int, default=None, help="head hidden units (0: linear; default: recipe's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    over: dict[str, Any] = {"level_db": args.level_db, "level_span": args.level_span,
                            "robustness": tuple(args.robustness.split(","))}
    if args.conditions:
        over["conditions"] = tuple(args.conditions.split(","))
    if args.hidden is not None:
        over["hidden"] = args.hidden
    result = run(Recipe.load(args.recipe, **over))
    write_results(RESULTS / f"robustness-{args.name}.json", result)
    clean = result["clean"]
    print(f"{args.name}: clean GTZAN valid {clean['gtzan']['top1']:.3f} (n={clean['gtzan']['n']}), Emotify valid "
          f"{clean['emotify']['top1']:.3f} (n={clean['emotify']['n']})")
    for cond, rows in result["robustness"].items():
        for length, r in rows.items():
            print(f"  {cond:<12} {length:>3}: same label {r['agreement']:.3f} (n={r['n']}), confident "
                  f"{r['confident_agreement']} (n={r['confident_n']}), top-1 {r['top1']:.3f} vs clean "
                  f"{r['clean_top1']:.3f}")


if __name__ == "__main__":
    main()
