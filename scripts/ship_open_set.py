"""Copy the "unknown" detector and its validation figures from a recipe rebuild into a shipped model's card.

    musicgenre train --recipe recipes/musicnn-genre.toml -o /tmp/rebuilt
    python -m scripts.ship_open_set /tmp/rebuilt src/musicgenre/weights/musicnn_gtzan

The detector (openset.py) is fitted on the backbone's tags of the training clips, not on the head's weights, so a
rebuild's detector holds for the shipped head; the figures are the rebuild's validation run (same recipe). The
shipped weights, ONNX export and every other key stay as they are (the ModelCard writes config.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musicgenre.modeldir import read

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rebuilt", type=Path, help="model directory written by musicgenre train --recipe")
    p.add_argument("shipped", type=Path, help="the shipped model directory to update")
    args = p.parse_args(argv)
    new, card = read(args.rebuilt), read(args.shipped)
    if (new.name, new.labels) != (card.name, card.labels):
        raise SystemExit(f"{args.rebuilt} is {new.name} {new.labels}, not {card.name} {card.labels}")
    metrics = dict(card.extra.get("metrics", {}))
    valid = dict(metrics.get("valid", {}))
    figures = new.extra["metrics"]["valid"].get("all", {}).get("open_set")
    valid["all"] = {**valid.get("all", {}), **({"open_set": figures} if figures else {})}
    metrics["valid"] = valid
    training = {**card.extra.get("training", {}), "recipe": new.extra["training"]["recipe"]}
    card.replace(open_set=new.open_set, metrics=metrics, training=training).save(args.shipped)
    print(f"{args.shipped}: open_set {'set' if new.open_set else 'removed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
