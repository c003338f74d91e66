"""Accuracy experiments: validation runs of the genre recipe's alternatives, as JSON and markdown.

    python -m experiments.accuracy experiments   # validation runs of the recipe's variants
    python -m experiments.accuracy experiments --only msd-linear-11-electronic
    python -m experiments.accuracy electronic    # electronic as an 11th genre: two seed sets, its confusions
    python -m experiments.accuracy electronic-cv # the same, out of fold by artist group on all Emotify clips
    (electronic and electronic-cv with --recipe recipes/musicnn-electronic.toml: the gated design, *-gated)
    python -m experiments.accuracy overlap       # overlapping windows (hop 1.5 s) at inference vs hop 3 s

Each reads the data through a recipe (default recipes/musicnn-genre.toml: ../shared beside the
checkout) and writes experiments/results/accuracy-<command>.json and .md.

- ``experiments``: every variant (backbone, features, augmentation, balance, mixup, label set) is
  trained on the train partitions only and scored on the artist-disjoint valid partitions (clip
  level, as ``predict`` aggregates; temperature fitted on those clips). Choices are made here.
- ``electronic``, ``electronic-cv``: electronic as an 11th genre (Emotify's), on the validation run and
  out of fold by artist group; with a gated recipe, the gate's threshold swept.
- ``overlap``: overlapping windows at inference against the shipped hop of 3 s.

The shipped model's own figures (the model card's tables) are ``benchmarks/accuracy.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments._common import RESULTS, ROOT, brief, fmt_ci, takes_from, write_results
from musicgenre.evaluation.metrics import classification_report
from musicgenre.models.genre import GatedHeads
from musicgenre.train.head import train_head
from musicgenre.train.recipe import (
    Recipe,
    WindowSet,
    assemble,
    evaluate_clips,
    head_scorer,
    training_set,
    validation_run,
)

TEN = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
ELEVEN = tuple(sorted((*TEN, "electronic")))  # the recipe's order (it changes the seeded init)
AUG = ("clean", "mp3_64k", "phone")
NO_POP = {"classical": "classical", "rock": "rock", "pop": "", "electronic": ""}

# Every variant starts from this baseline (10 GTZAN labels, Emotify classical/rock, MSD, one MLP 128, clean
# audio), not from the recipe file, so the table keeps its meaning when the recipe changes: every key a
# variant may change is pinned here (an unpinned ``members`` once made "one head" rows five heads).
BASE: dict[str, Any] = {"labels": TEN, "emotify_labels": NO_POP, "backbone": "MSD_musicnn",
                        "features": "embedding+tags", "hidden": 128, "dropout": 0.3, "conditions": ("clean",),
                        "mixup": 0.0, "balance": "class", "weight_decay": 1e-3, "lr": 1e-3, "epochs": 30,
                        "batch_size": 256, "members": 1, "seed": 0, "calibration": "clip", "gate": ""}

# name -> (what changes, recipe overrides). Each is one validation run on cached features.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gtzan-only-msd": ("GTZAN train only, MSD, clean", {"emotify": "", "conditions": ("clean",)}),
    "msd-clean": ("MSD embedding+tags, clean only", {"conditions": ("clean",)}),
    "mtt-clean": ("MTT embedding+tags, clean only", {"backbone": "MTT_musicnn", "conditions": ("clean",)}),
    "msd-emb-clean": ("MSD embedding only, clean only", {"features": "embedding", "conditions": ("clean",)}),
    "msd-linear-clean": ("MSD, linear head (no hidden layer)", {"hidden": 0, "conditions": ("clean",)}),
    "msd-nobalance-clean": ("MSD, no class balancing", {"balance": "none", "conditions": ("clean",)}),
    "msd-mixup-clean": ("MSD, mixup a=0.4", {"mixup": 0.4, "conditions": ("clean",)}),
    "msd-linear-emb-clean": ("MSD embedding only, linear head", {"hidden": 0, "features": "embedding",
                                                                  "conditions": ("clean",)}),
    "msd-linear-nobalance-clean": ("MSD, linear head, no class balancing", {"hidden": 0, "balance": "none",
                                                                           "conditions": ("clean",)}),
    "msd-linear-mixup-clean": ("MSD, linear head, mixup a=0.4", {"hidden": 0, "mixup": 0.4,
                                                                 "conditions": ("clean",)}),
    "msd-linear-wd1e-2-clean": ("MSD, linear head, weight decay 1e-2", {"hidden": 0, "weight_decay": 1e-2,
                                                                        "conditions": ("clean",)}),
    "msd-linear-11-electronic": ("MSD, linear head, 11 labels (+ Emotify electronic)", {
        "hidden": 0, "conditions": ("clean",), "labels": ELEVEN,
        "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    "msd-linear-11-aug-mp3": ("MSD, linear head, 11 labels, clean + MP3 64k copies", {
        "hidden": 0, "conditions": ("clean", "mp3_64k"), "labels": ELEVEN,
        "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    "msd-linear-11-aug": ("MSD, linear head, 11 labels, clean + MP3 64k + phone copies", {
        "hidden": 0, "conditions": AUG, "labels": ELEVEN,
        "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    "msd-aug-mixup-11-electronic": ("MSD, MLP 128, 11 labels, degraded copies + mixup a=0.4", {
        "mixup": 0.4, "conditions": AUG, "labels": ELEVEN, "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    "msd-linear-aug-mixup-11-electronic": ("MSD, linear head, 11 labels, degraded copies + mixup a=0.4", {
        "hidden": 0, "mixup": 0.4, "conditions": AUG, "labels": ELEVEN,
        "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    "msd-aug": ("MSD, clean + MP3 64k + phone copies", {"conditions": AUG}),
    "msd-aug-mixup": ("MSD, degraded copies + mixup a=0.4", {"mixup": 0.4, "conditions": AUG}),
    # second round (this session): all on the shipped recipe (degraded copies + mixup)
    "msd-aug-mixup-pool": ("2.0 recipe, head also reads the pooled mid-end (1506-d)", {
        "mixup": 0.4, "conditions": AUG, "features": "pool+embedding+tags"}),
    "msd-aug-mixup-pool-only": ("2.0 recipe, head reads only the pooled mid-end", {
        "mixup": 0.4, "conditions": AUG, "features": "pool"}),
    "msd-aug-mixup-5heads": ("2.0 recipe, mean logits of 5 heads (seeds 0-4)", {
        "mixup": 0.4, "conditions": AUG, "members": 5}),
    "msd-aug-mixup-linear": ("2.0 recipe, linear head", {"mixup": 0.4, "conditions": AUG, "hidden": 0}),
    "msd-aug-mixup-h256": ("2.0 recipe, 256 hidden units", {"mixup": 0.4, "conditions": AUG, "hidden": 256}),
    "msd-aug-mixup-drop05": ("2.0 recipe, dropout 0.5", {"mixup": 0.4, "conditions": AUG, "dropout": 0.5}),
    "msd-aug-mixup-60ep": ("2.0 recipe, 60 epochs", {"mixup": 0.4, "conditions": AUG, "epochs": 60}),
    "msd-aug-mixup-phone2": ("2.0 recipe, phone copies weighted twice", {
        "mixup": 0.4, "conditions": (*AUG, "phone")}),
    **{f"msd-aug-mixup-seed{i}": (f"2.0 recipe, seed {i} (seed variance)", {
        "mixup": 0.4, "conditions": AUG, "seed": i}) for i in range(1, 5)},
    "msd-aug-mixup-5heads-seed5": ("2.0 recipe, mean logits of 5 heads (seeds 5-9)", {
        "mixup": 0.4, "conditions": AUG, "members": 5, "seed": 5}),
    "msd-aug-mixup-5heads-pool": ("2.0 recipe, 5 heads reading the pooled mid-end + embedding + tags", {
        "mixup": 0.4, "conditions": AUG, "members": 5, "features": "pool+embedding+tags"}),
    "msd-aug-mixup-5heads-pool-seed5": ("2.0 recipe, 5 heads (seeds 5-9) reading pool + embedding + tags", {
        "mixup": 0.4, "conditions": AUG, "members": 5, "features": "pool+embedding+tags", "seed": 5}),
    "msd-aug-mixup-5heads-11-electronic": ("2.0 recipe (5 heads), 11 labels (+ Emotify electronic)", {
        "mixup": 0.4, "conditions": AUG, "members": 5, "labels": ELEVEN,
        "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    "msd-aug-mixup-5heads-pool-11-electronic": ("2.2 recipe (5 heads, pooled features), 11 labels (+ electronic)", {
        "mixup": 0.4, "conditions": AUG, "members": 5, "features": "pool+embedding+tags", "labels": ELEVEN,
        "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    # third round: random crops (docs/experiments.md)
    **{f"msd-aug-mixup-5heads-pool-crops{tag}": (
        f"2.2 recipe{what}, training windows also cut 1.5 s later (a second crop of every clip)", {
            "mixup": 0.4, "conditions": AUG, "members": 5, "features": "pool+embedding+tags", "crops": (0.0, 1.5),
            "seed": seed}) for tag, what, seed in (("", "", 0), ("-seed5", " with seeds 5-9", 5))},
    # fourth round: length-aware calibration, electronic as the 11th genre (3.0)
    "msd-aug-mixup-5heads-pool-length": ("2.2 recipe, calibrated by length (window temperature + one per window "
                                         "count)", {"mixup": 0.4, "conditions": AUG, "members": 5,
                                                    "features": "pool+embedding+tags", "calibration": "length"}),
    **{f"msd-aug-mixup-5heads-pool-11-electronic-length{tag}": (
        f"2.2 recipe{what}, 11 labels (+ electronic), calibrated by length (3.0)", {
            "mixup": 0.4, "conditions": AUG, "members": 5, "features": "pool+embedding+tags", "labels": ELEVEN,
            "emotify_labels": {**NO_POP, "electronic": "electronic"}, "calibration": "length", "seed": seed})
       for tag, what, seed in (("", "", 0), ("-seed5", " with seeds 5-9", 5))},
    "msd-pop-as-pop": ("MSD, Emotify pop -> GTZAN pop", {"conditions": ("clean",),
                                                          "emotify_labels": {**NO_POP, "pop": "pop"}}),
    "msd-11-electronic": ("MSD, 11 labels (+ Emotify electronic)", {
        "conditions": ("clean",), "labels": ELEVEN,
        "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
    "msd-aug-11-electronic": ("MSD, 11 labels, degraded copies", {
        "conditions": AUG, "labels": ELEVEN, "emotify_labels": {**NO_POP, "electronic": "electronic"}}),
}



def run_experiments(recipe: Recipe, names: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name in names:
        what, over = VARIANTS[name]
        r = Recipe(**{**recipe.__dict__, **BASE, **over})
        val = validation_run(r, valid_sources=("gtzan", "emotify") if r.emotify else ("gtzan",))
        rows[name] = {"what": what, "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in over.items()},
                      "temperature": val["temperature"], "train_clips": val["train_clips"],
                      **{s: brief(val[s]) for s in ("gtzan", "emotify") if s in val}}
        g = rows[name].get("gtzan", {})
        print(f"{name}: gtzan {g.get('accuracy')} emotify {rows[name].get('emotify', {}).get('accuracy')}",
              file=sys.stderr)
    return rows


def electronic(recipe: Recipe) -> dict[str, Any]:
    """Electronic as an 11th genre (Emotify's, artist-disjoint) on the recipe, two seed sets: validation top-1,
    electronic's precision/recall, which genres' clips it takes and where its own clips go; and where the
    electronic valid clips go under the recipe's heads without it. A recipe's gate is kept (the gated design),
    and its threshold is swept (``gate_sweep``)."""
    out: dict[str, Any] = {}
    for seed in (recipe.seed, recipe.seed + recipe.members):
        r11 = Recipe(**{**recipe.__dict__, "labels": ELEVEN, "seed": seed,
                        "emotify_labels": {**recipe.emotify_labels, "electronic": "electronic"}})
        val = validation_run(r11)
        row: dict[str, Any] = {
            s: {"n": val[s]["n"], "top1": round(val[s]["accuracy"], 4), **takes_from(val[s], "electronic"),
                "electronic": val[s]["per_class"]["electronic"]} for s in ("gtzan", "emotify")}
        valid = {s: assemble(r11, [c for c in r11.clips() if c.split == "valid" and c.source == s], ("clean",))
                 for s in ("gtzan", "emotify")}
        row["emotify_by_magnatune_genre"] = by_magnatune_genre(r11, val, valid["emotify"])
        if recipe.gate:
            row["gate_sweep"] = gate_sweep(r11, val, valid)
        out[f"seeds {seed}-{seed + recipe.members - 1}"] = row
    el = [c for c in r11.clips() if c.split == "valid" and c.label == "electronic"]
    ten = Recipe(**{**recipe.__dict__, "labels": tuple(x for x in recipe.labels if x != "electronic"), "gate": ""})
    head, _ = train_head(ten, training_set(ten, [c for c in ten.clips() if c.split == "train"]))
    pred = head_scorer(head)(assemble(r11, el, ("clean",)))(1.0).argmax(1)
    out["without_electronic"] = {"n": len(el), "called": {ten.labels[k]: int((pred == k).sum())
                                                          for k in sorted(set(pred.tolist()))}}
    return out


def by_magnatune_genre(recipe: Recipe, val: dict[str, Any], sub: WindowSet) -> dict[str, Any]:
    """Emotify valid top-1 split by whether Magnatune's own genre tag (the ID3 genre in the data's manifest.csv)
    names the clip's Emotify label (classical: Classical; rock: Alternative / Hard Rock; electronic:
    Electronic) or another genre (World, or Electronic for a "rock" clip), and every miss with both: how much of
    the figure is clips the two sources file differently. ``sub``: the Emotify valid clips' windows."""
    root = Path(recipe.emotify)
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:  # keyed as corpus.Clip.path
        id3 = {str(root / r["path"]): r["id3_genre"] for r in csv.DictReader(f)}
    pred = val["score"](sub)(val["temperature"]).argmax(1)
    out: dict[str, Any] = {}
    for agrees in (True, False):
        hit = [recipe.labels[k] == c.label for c, k in zip(sub.clips, pred)
               if (c.label in id3[c.path].lower()) == agrees]
        out["magnatune genre names the label" if agrees else "magnatune genre differs"] = {
            "n": len(hit), "top1": round(float(np.mean(hit)), 4) if hit else None}
    out["misses"] = [{"clip": c.key, "label": c.label, "called": recipe.labels[k], "magnatune_genre": id3[c.path]}
                     for c, k in zip(sub.clips, pred) if recipe.labels[k] != c.label]
    return out


class _Shift(torch.nn.Module):
    """Adds ``bias`` to one logit: the gate's odds for that label times exp(bias)."""

    def __init__(self, index: int, bias: float) -> None:
        super().__init__()
        self.index, self.bias = index, bias

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.bias * torch.nn.functional.one_hot(torch.tensor(self.index), z.shape[1])


GATE_BIASES = np.arange(-3.0, 3.01, 0.25)


def gate_sweep(recipe: Recipe, val: dict[str, Any], subs: dict[str, WindowSet], biases: np.ndarray = GATE_BIASES
               ) -> dict[str, Any]:
    """How far the gate's threshold alone can move the targets: the validation run's gated heads with the gate's
    odds for electronic multiplied by exp(b), for every b in ``biases``; clip top-1 per source (window
    temperature of the run). Read on the valid clips themselves, so its best row is an upper bound for any
    threshold, not a figure to ship. ``subs``: each source's valid clips' windows."""
    head = val["head"]
    rows = []
    for b in biases:
        biased = GatedHeads(head.genres, torch.nn.Sequential(head.gate, _Shift(head.index, float(b))), head.index)
        row: dict[str, Any] = {"bias": round(float(b), 2)}
        for source, sub in subs.items():
            rep = evaluate_clips(recipe, head_scorer(biased)(sub)(val["temperature"]), sub)
            row[source] = round(rep["accuracy"], 4)
            if source == "emotify":
                row["electronic"] = {k: rep["per_class"]["electronic"][k] for k in ("precision", "recall")}
        rows.append(row)
    ok = [r for r in rows if r["gtzan"] >= 0.78]
    return {"rows": rows, "best_emotify_with_gtzan_at_least_0.78": max(ok, key=lambda r: r["emotify"]) if ok else None}


def overlap(recipe: Recipe) -> dict[str, Any]:
    """Overlapping windows at inference (hop 1.5 s instead of 3 s), on the validation run's heads: each valid
    clip scored on its windows cut from 0 s, and on those plus the windows cut from 1.5 s (twice as many,
    overlapping by half), mean of the calibrated window probabilities; clip top-1 per source."""
    from musicgenre.scores import softmax
    from musicgenre.train.head import window_logits

    val = validation_run(recipe)
    head, t = val["head"], val["temperature"]
    out: dict[str, Any] = {"temperature": t}
    for source in ("gtzan", "emotify"):
        clips = [c for c in recipe.clips() if c.split == "valid" and c.source == source]
        grid = assemble(recipe, clips, ("clean",))
        both = assemble(recipe, grid.clips, ("clean",), (0.0, 1.5))
        row = {}
        for name, data in (("hop 3 s", grid), ("hop 1.5 s", both)):
            probs = softmax(window_logits(head, data), t)
            clip = np.stack([probs[data.clip == i].mean(0) for i in range(len(data.clips))])
            y = np.array([recipe.labels.index(c.label) for c in data.clips])
            row[name] = {"n": len(y), "windows": len(data.x), "accuracy": round(float(np.mean(clip.argmax(1) == y)), 4)}
        out[source] = row
    return out


def markdown_experiments(rows: dict[str, Any]) -> str:
    lines = ["| experiment | what | T | GTZAN valid n | top-1 | window top-1 | macro-F1 | ECE | min recall "
             "| Emotify valid n | top-1 | window top-1 | macro-F1 | ECE | min recall |", "|" + "---|" * 15]
    for name, r in rows.items():
        cells = [name, r["what"], f"{r['temperature']:.2f}"]
        for s in ("gtzan", "emotify"):
            b = r.get(s)
            wa = "-" if not b or b.get("window_accuracy") is None else f"{b['window_accuracy']:.3f}"
            cells += ([str(b["n"]), fmt_ci(b, "accuracy"), wa, fmt_ci(b, "macro_f1"), f"{b['ece']:.3f}",
                       f"{b['min_recall']:.2f}"] if b else ["-"] * 6)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def electronic_cv(recipe: Recipe, folds: int = 5) -> dict[str, Any]:
    """Electronic as an 11th genre, scored out of fold on every Emotify train + valid clip: Emotify valid has
    15 electronic clips by 4 artist groups, too few to tell 0.80 from 0.87. Emotify's artist groups go to
    ``folds`` folds (round-robin within each label, largest group first); each fold's heads train on GTZAN
    train and the other folds' Emotify clips. GTZAN valid is scored by every fold's heads (mean, min, max).
    A recipe with a gate (recipes/musicnn-electronic.toml) keeps it: the gated heads are cross-validated."""
    r11 = Recipe(**{**recipe.__dict__, "labels": ELEVEN,
                    "emotify_labels": {**recipe.emotify_labels, "electronic": "electronic"}})
    clips = [c for c in r11.clips() if c.split in ("train", "valid")]
    emo = [c for c in clips if c.source == "emotify"]
    fold_of: dict[str, int] = {}
    for label in sorted({c.label for c in emo}):
        sizes: dict[str, int] = {}
        for c in emo:
            if c.label == label:
                sizes[c.group] = sizes.get(c.group, 0) + 1
        for i, g in enumerate(sorted(sizes, key=lambda g: (-sizes[g], g))):
            fold_of.setdefault(g, i % folds)
    gtzan_train = [c for c in clips if c.source == "gtzan" and c.split == "train"]
    gtzan_valid = assemble(r11, [c for c in clips if c.source == "gtzan" and c.split == "valid"], ("clean",))
    y_gv = np.array([ELEVEN.index(c.label) for c in gtzan_valid.clips])
    t = recipe_temperature()
    pred: dict[str, int] = {}
    gtzan_top1 = []
    for k in range(folds):
        train = gtzan_train + [c for c in emo if fold_of[c.group] != k]
        head, _ = train_head(r11, training_set(r11, train))
        held = assemble(r11, [c for c in emo if fold_of[c.group] == k], ("clean",))
        for c, p in zip(held.clips, head_scorer(head)(held)(t).argmax(1)):
            pred[c.key] = int(p)
        gtzan_top1.append(float((head_scorer(head)(gtzan_valid)(t).argmax(1) == y_gv).mean()))
        print(f"fold {k}: {len(held.clips)} Emotify clips held out, GTZAN valid {gtzan_top1[-1]:.3f}", flush=True)
    scored = [c for c in emo if c.key in pred]
    y = np.array([ELEVEN.index(c.label) for c in scored])
    p = np.array([pred[c.key] for c in scored])
    e = ELEVEN.index("electronic")
    per_class = classification_report(y, p, list(ELEVEN))["per_class"]["electronic"]
    el = [c for c in scored if c.label == "electronic"]
    return {
        "protocol": f"{folds}-fold cross-validation by Emotify artist group over Emotify train + valid "
                    f"(classical, rock, electronic); GTZAN train in every fold; window temperature {t}",
        "emotify": {"n": len(scored), "artist_groups": len({c.group for c in scored}),
                    "top1": round(float((p == y).mean()), 4)},
        "electronic": {"n": len(el), "artist_groups": len({c.group for c in el}),
                       "precision": per_class["precision"], "recall": per_class["recall"],
                       "taken_from": _counts(y[(p == e) & (y != e)]), "called": _counts(p[y == e])},
        "gtzan_valid_top1": {"n": len(y_gv), "mean": round(float(np.mean(gtzan_top1)), 4),
                             "min": round(min(gtzan_top1), 4), "max": round(max(gtzan_top1), 4)},
    }


def _counts(labels: np.ndarray) -> dict[str, int]:
    """How many of ``labels`` (indices into ELEVEN) are each genre."""
    return {ELEVEN[k]: int((labels == k).sum()) for k in sorted(set(labels.tolist()))}


def recipe_temperature() -> float:
    """The shipped model's window temperature (what ``predict`` applies before the mean over windows)."""
    from musicgenre.modeldir import read, resolve

    return float(read(resolve(None)).temperature or 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("experiments", "electronic", "electronic-cv", "overlap"))
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "musicnn-genre.toml")
    ap.add_argument("--only", nargs="*", help="experiments: run only these variants (their rows of the table "
                    "are replaced; the others are kept)")
    args = ap.parse_args()
    recipe = Recipe.load(args.recipe)
    out = RESULTS / f"accuracy-{args.command}"
    if args.command in ("electronic", "electronic-cv") and recipe.gate:  # recipes/musicnn-electronic.toml
        out = RESULTS / f"accuracy-{args.command}-gated"
    if args.command == "experiments":
        res = run_experiments(recipe, args.only or list(VARIANTS))
        if args.only and out.with_suffix(".json").is_file():  # --only updates those rows of the full table
            old = json.loads(out.with_suffix(".json").read_text())
            res = {k: res.get(k, old.get(k)) for k in VARIANTS if k in res or k in old}
        md = markdown_experiments(res)
    elif args.command == "overlap":
        res = overlap(recipe)
        md = "".join(f"- {k}: {json.dumps(v)}\n" for k, v in res.items())
    elif args.command == "electronic":
        res = electronic(recipe)
        md = "".join(f"- {k}: {json.dumps(v)}\n" for k, v in res.items())
    else:
        res = electronic_cv(recipe)
        md = "".join(f"- {k}: {json.dumps(v)}\n" for k, v in res.items())
    write_results(out.with_suffix(".json"), res)
    print(write_results(out.with_suffix(".md"), md))


if __name__ == "__main__":
    main()
