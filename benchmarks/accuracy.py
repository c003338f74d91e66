"""Accuracy of the shipped models on artist-disjoint splits: the model card's tables, as JSON and markdown.

    python -m benchmarks.accuracy shipped       # the shipped model: valid, test, degradations, cross-source
    python -m benchmarks.accuracy shipped --model musicnn-electronic --recipe recipes/musicnn-electronic.toml
    python -m benchmarks.accuracy confidence    # validation run: confident calls per input length and threshold

Both read the data through a recipe (default recipes/musicnn-genre.toml: ../shared beside the
checkout) and write benchmarks/results/accuracy-<command>.json and .md (docs/models.md quotes them).

- ``shipped``: the shipped model through ``Classifier.predict`` on GTZAN valid and Emotify valid
  (these clips are in its training set since it is retrained on train + valid: a regression check,
  not a generalisation figure) and on the GTZAN test clips present (never trained on); the
  validation run's figures (the honest ones); label stability under the degradation suite on the
  valid clips (validation-run head, cached features cut by ``windows.Windows``); cross-source runs.
- ``confidence``: the shipped recipe's validation run, with calibration fitted out of fold (folds by
  artist): the share of confident calls per input length and how often they are right, per threshold.

The accuracy experiments that chose the recipe (its variants, electronic, overlapping windows) are
``experiments/accuracy.py`` (docs/experiments.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import RESULTS, ROOT, brief, fmt_ci, stability, takes_from, write_results
from musicgenre.train.head import train_head
from musicgenre.train.recipe import (
    Recipe,
    assemble,
    evaluate_clips,
    head_scorer,
    training_set,
    validation_run,
)

RECIPE_PATH = ROOT / "recipes" / "musicnn-genre.toml"
ELECTRONIC = ("gtzan", "emotify")  # sources whose valid clips the electronic rows read


def cross_source(recipe: Recipe) -> dict[str, Any]:
    """Train on one source's train+valid clips, test on the other source's shared classes (all its clips)."""
    out = {}
    shared = ("classical", "rock")
    everything = [c for c in recipe.clips() if c.split in ("train", "valid")]
    for train_src, test_src in (("gtzan", "emotify"), ("emotify", "gtzan")):
        tr = [c for c in everything if c.source == train_src]
        te = [c for c in everything if c.source == test_src and c.label in shared]
        head, _ = train_head(recipe, training_set(recipe, tr))
        data = assemble(recipe, te, ("clean",))
        probs = head_scorer(head)(data)(1.0)
        rep = evaluate_clips(recipe, probs, data)
        # The same clips when the answer may only be one of the shared classes (a two-way choice): how far
        # the miss is the other source's idea of the genre rather than a confusion between the two.
        cols = [recipe.labels.index(s) for s in shared]
        pick = np.array(cols)[probs[:, cols].argmax(1)]
        y = np.array([recipe.labels.index(c.label) for c in data.clips])
        out[f"{train_src}->{test_src}"] = {"classes": list(shared), **brief(rep),
                                           "shared_only_accuracy": round(float(np.mean(pick == y)), 4)}
    return out


def shipped(recipe: Recipe, model: str) -> dict[str, Any]:
    from musicgenre.train.evaluate import evaluate, recipe_examples

    recipe_path = RECIPE_PATH
    res: dict[str, Any] = {"model": model}
    val = validation_run(recipe)
    res["validation_run"] = {s: brief(val[s]) for s in ("gtzan", "emotify") if s in val}
    res["validation_run"]["temperature"] = val["temperature"]
    res["validation_run"]["temperature_by_windows"] = val.get("temperature_by_windows", [])
    res["validation_run"]["lengths"] = val.get("lengths")
    for extra in ELECTRONIC if "electronic" in recipe.labels else ():
        res["validation_run"].setdefault("electronic", {})[extra] = takes_from(val[extra], "electronic")
    if "electronic" in recipe.labels:  # where electronic clips went before: the same recipe without it
        ten = Recipe(**{**recipe.__dict__, "labels": tuple(x for x in recipe.labels if x != "electronic"), "gate": ""})
        head, _ = train_head(ten, training_set(ten, [c for c in ten.clips() if c.split == "train"]))
        el = [c for c in recipe.clips() if c.split == "valid" and c.label == "electronic"]
        data = assemble(recipe, el, ("clean",))
        pred = head_scorer(head)(data)(1.0).argmax(1)
        res["validation_run"]["electronic"]["without_electronic"] = {
            "n": len(el), "called": {ten.labels[k]: int((pred == k).sum()) for k in sorted(set(pred.tolist()))}}
    for source in ("gtzan", "emotify"):
        for subset in ("valid", "test"):
            ex, labels, _ = recipe_examples(recipe_path, subset, source)
            if ex:
                res[f"shipped/{source}/{subset}"] = brief(evaluate(model, ex, labels, None))
    res["stability"] = stability(recipe, val["score"], val["temperature"], val.get("head"))
    res["cross_source"] = cross_source(recipe)
    return res


def confidence(recipe: Recipe) -> dict[str, Any]:
    """Validation run: per input length (1, 3, 10 windows, whole clips), the share of confident calls and how
    often they are right at several thresholds, with out-of-fold calibration (folds by artist)."""
    from musicgenre.evaluation.calibration import length_report

    val = validation_run(recipe)
    out: dict[str, Any] = {"n": len(val["valid_labels"]), "temperature": val["temperature"],
                           "temperature_by_windows": val.get("temperature_by_windows", []),
                           "calibration": recipe.calibration}
    for thr in (0.5, 0.6, 0.7, 0.8, 0.9):
        out[str(thr)] = length_report(val["window_logits"], val["valid_labels"], *val["crossfit"], min_confidence=thr)
    return out


def markdown_confidence(res: dict[str, Any]) -> str:
    keys = ("1", "3", "10", "whole")
    lines = ["| min confidence | " + " | ".join(f"{'whole clips' if k == 'whole' else k + ' windows'}: confident "
                                              "share / right / uncertain right" for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for thr, rep in res.items():
        if isinstance(rep, dict):
            cells = [f"{rep[k]['confident_share']:.2f} / {rep[k]['confident_accuracy']} / "
                     f"{rep[k]['uncertain_accuracy']}" for k in keys]
            lines.append(f"| {thr} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("n (sub-clips / clips): " + ", ".join(f"{k}: {res['0.6'][k]['n']} / {res['0.6'][k]['clips']}"
                                                       for k in keys))
    return "\n".join(lines) + "\n"


def markdown_lengths(lengths: dict[str, Any]) -> list[str]:
    """The per-length table (a validation run's out-of-fold calibration, or ``evaluate``'s pieces)."""
    lines = [f"| input length | n | top-1 | ECE | ECE if perfectly calibrated (mean, 95th pct.) | mean confidence "
             f"| confident (>= {lengths['min_confidence']}) share | confident right | uncertain right |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k, r in lengths.items():
        if isinstance(r, dict) and r.get("n"):
            what = "whole clip" if k == "whole" else f"{k} window{'s' if k != '1' else ''} ({3 * int(k)} s)"
            lines.append(f"| {what} | {r['n']} | {r['accuracy']:.3f} | {r['ece']:.3f} | "
                         f"{r['ece_if_calibrated'][0]:.3f}, {r['ece_if_calibrated'][1]:.3f} | "
                         f"{r['mean_confidence']:.3f} | {r['confident_share']:.2f} | "
                         f"{r['confident_accuracy']} | {r['uncertain_accuracy']} |")
    return lines


def markdown_shipped(res: dict[str, Any]) -> str:
    lines = ["| figure | n | top-1 [95% CI] | window top-1 | top-3 | macro-F1 [95% CI] | ECE | ECE if perfectly "
             "calibrated (mean, 95th pct.) | min recall |", "|---|---|---|---|---|---|---|---|---|"]
    rows = [(f"validation run, {s} valid (artist-disjoint)", res["validation_run"][s]) for s in ("gtzan", "emotify")
            if s in res["validation_run"]]
    rows += [(k, v) for k, v in res.items() if k.startswith("shipped/")]
    rows += [(f"cross-source {k} ({', '.join(v['classes'])})", v) for k, v in res["cross_source"].items()]
    for name, b in rows:
        wa = "-" if b.get("window_accuracy") is None else f"{b['window_accuracy']:.3f}"
        lines.append(f"| {name} | {b['n']} | {fmt_ci(b, 'accuracy')} | {wa} | {b['top3']:.3f} "
                     f"| {fmt_ci(b, 'macro_f1')} "
                     f"| {b['ece']:.3f} | {b['ece_if_calibrated'][0]:.3f}, {b['ece_if_calibrated'][1]:.3f} "
                     f"| {b['min_recall']:.2f} |")
    lines += ["", "| cross-source, answer restricted to the shared classes | n | top-1 |", "|---|---|---|"]
    lines += [f"| {k} ({', '.join(v['classes'])}) | {v['n']} | {v['shared_only_accuracy']:.3f} |"
              for k, v in res["cross_source"].items()]
    lines += ["", "| degradation / valid clips | n | same label as clean | windows | same window label |",
              "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['same_label']:.3f} | {v.get('windows', '-')} | "
              f"{v.get('same_window_label', '-')} |" for k, v in res["stability"].items()]
    val = res["validation_run"]
    if val.get("lengths"):
        lines += ["", f"Validation run by input length (GTZAN + Emotify valid; calibration fitted out of fold; "
                      f"temperatures by window count {val['temperature_by_windows']}):", ""]
        lines += markdown_lengths(val["lengths"])
    for k, v in val.get("electronic", {}).items():
        lines += ["", f"electronic, {k}: {json.dumps(v)}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("shipped", "confidence"))
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "musicnn-genre.toml")
    ap.add_argument("--model", default="musicnn-gtzan", help="shipped model name or directory")
    args = ap.parse_args()
    recipe = Recipe.load(args.recipe)
    global RECIPE_PATH
    RECIPE_PATH = args.recipe
    out = RESULTS / f"accuracy-{args.command}"
    if args.command == "shipped" and args.model != "musicnn-gtzan":  # the default model's table stays
        out = RESULTS / f"accuracy-shipped-{Path(args.model).name}"
    if args.command == "confidence":
        res = confidence(recipe)
        md = markdown_confidence(res)
    else:
        res = shipped(recipe, args.model)
        md = markdown_shipped(res)
    write_results(out.with_suffix(".json"), res)
    print(write_results(out.with_suffix(".md"), md))


if __name__ == "__main__":
    main()
