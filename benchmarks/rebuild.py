"""How far a rebuild of the shipped model can land from the shipped weights, and why.

    python -m benchmarks.rebuild [--recipe recipes/musicnn-genre.toml] [--seeds 3] [--eps 1e-6]

1. Trains the shipped recipe's final head (train + valid partitions) on the cached window features and
   compares it with the shipped ``model.safetensors``: bit-exact or not (same machine, same cache).
2. Re-trains it on the same features with a relative perturbation of ``eps`` (about 8 float32 ulps: what
   another CPU's convolution kernels, another numpy FFT or another MP3 encoder build leave in the cached
   features) for a few noise seeds, and measures how far the scores move: on the example clips
   (``examples/``, through the cached features) and on the valid clips, plus whether any
   label changes. Also the validation run under the same perturbation (top-1 on the valid partitions).

Writes ``benchmarks/results/rebuild.json``; the tolerance ``tests/test_rebuild.py`` checks a rebuild against
comes from here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import RESULTS, ROOT, write_results
from musicgenre.data.corpus import Clip
from musicgenre.scores import calibrated_clip_scores, loud_windows
from musicgenre.train.embed import extract
from musicgenre.train.head import train_head, window_logits
from musicgenre.train.recipe import (
    Recipe,
    Scorer,
    WindowSet,
    head_input,
    head_scorer,
    training_set,
    validation_run,
)

EXAMPLES = ROOT / "examples"


def perturbed(data: WindowSet, eps: float, seed: int) -> WindowSet:
    if eps == 0:
        return data
    rng = np.random.default_rng(seed)
    x = (data.x * (1 + eps * rng.standard_normal(data.x.shape))).astype(np.float32)
    return dataclasses.replace(data, x=x)


def example_windows(recipe: Recipe, cache: Path) -> list[tuple[str, np.ndarray]]:
    clips = [Clip(str(p), "examples", "", None, p.stem) for p in sorted(EXAMPLES.glob("*.ogg"))]
    feats = extract(clips, backbone=recipe.backbone, condition="clean", cache=cache)
    out = []
    for c in clips:
        f = feats[c.key]
        out.append((Path(c.path).name, head_input(f, recipe.features)[loud_windows(f.peaks)]))
    return out


def scores(head: Any, windows: list[tuple[str, np.ndarray]], t: float, by: list[float]) -> np.ndarray:
    rows = []
    for _, x in windows:
        data = WindowSet(x, np.zeros(len(x), int), np.zeros(len(x), int), [])
        z = window_logits(head, data)
        rows.append(calibrated_clip_scores(z, np.ones(len(z), bool), t, by))
    return np.stack(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "musicnn-genre.toml")
    ap.add_argument("--model", default="musicnn-gtzan")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eps", type=float, default=1e-6)
    args = ap.parse_args()
    import torch

    from musicgenre.loader import load_module
    from musicgenre.modeldir import read, resolve

    recipe = Recipe.load(args.recipe)
    path = resolve(args.model)
    card = read(path)
    shipped: Any = load_module(path).head
    t, by = float(card.temperature or 1.0), list(card.temperature_by_windows)
    final = training_set(recipe, [c for c in recipe.clips() if c.split in ("train", "valid")])
    valid = [c for c in recipe.clips() if c.split == "valid"]
    from musicgenre.train.recipe import assemble

    va = assemble(recipe, valid, ("clean",))
    va_windows = [(c.key, va.x[va.clip == i]) for i, c in enumerate(va.clips)]
    with tempfile.TemporaryDirectory() as tmp:
        ex = example_windows(recipe, Path(tmp))
    base_val = validation_run(recipe, fit=lambda r, tr: head_scorer(train_head(r, tr)[0]))
    head, _ = train_head(recipe, final)
    same = all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), shipped.state_dict().values()))
    diffs = [float((a - b).abs().max()) for a, b in zip(head.state_dict().values(), shipped.state_dict().values())]
    res: dict[str, Any] = {
        "model": card.name, "version": card.version, "eps": args.eps,
        "validation_top1": {s: round(base_val[s]["accuracy"], 4) for s in ("gtzan", "emotify") if s in base_val},
        "final_head_equals_shipped": same, "max_weight_difference_vs_shipped": max(diffs),
        "examples_vs_shipped": float(np.abs(scores(head, ex, t, by) - scores(shipped, ex, t, by)).max()),
        "valid_vs_shipped": float(np.abs(scores(head, va_windows, t, by) - scores(shipped, va_windows, t, by)).max()),
        "perturbed": []}
    base_ex, base_va = scores(head, ex, t, by), scores(head, va_windows, t, by)
    for seed in range(args.seeds):
        h, _ = train_head(recipe, perturbed(final, args.eps, seed))
        s_ex, s_va = scores(h, ex, t, by), scores(h, va_windows, t, by)
        def noisy(r: Recipe, tr: WindowSet, seed: int = seed) -> Scorer:
            return head_scorer(train_head(r, perturbed(tr, args.eps, seed))[0])

        val = validation_run(recipe, fit=noisy)
        res["perturbed"].append({
            "validation_top1": {s: round(val[s]["accuracy"], 4) for s in ("gtzan", "emotify") if s in val},
            "seed": seed, "examples_max_abs": round(float(np.abs(s_ex - base_ex).max()), 5),
            "valid_max_abs": round(float(np.abs(s_va - base_va).max()), 5),
            "examples_labels_changed": int((s_ex.argmax(1) != base_ex.argmax(1)).sum()),
            "valid_labels_changed": int((s_va.argmax(1) != base_va.argmax(1)).sum()), "valid_clips": len(va_windows)})
        print(json.dumps(res["perturbed"][-1]), file=sys.stderr)
    write_results(RESULTS / "rebuild.json", res)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
