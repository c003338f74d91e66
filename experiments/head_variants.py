"""Validation runs of head designs the recipe cannot express: fine-tuned top layers, attention pooling, consistency.

    python -m experiments.head_variants                     # every variant, 5 seeds each
    python -m experiments.head_variants --only attention --members 1

Same protocol as ``python -m experiments.accuracy experiments`` (train partitions -> artist-disjoint valid
partitions, temperature fitted on the valid clips, cached backbone features), starting from the
shipped recipe (recipes/musicnn-genre.toml: pooled mid-end + embedding + tags, clean + MP3 + phone
copies, mixup 0.4, class-balanced loss). Every variant also reports label stability under the
degradation suite on the valid clips. Writes experiments/results/head-variants.{json,md}.

- ``shipped``: the shipped recipe itself (mean of window probabilities), the reference row.
- ``backend-ft``: fine-tunes MusiCNN's own top layers (pooled-feature batch norm -> dense 200 ->
  batch norm, initialised from the pretrained weights, learning rate / 10) under a new genre layer.
  The layers below stay frozen, which is what makes it possible on a CPU: their pooled output is cached.
- ``attention``: learned attention pooling over a clip's windows (a score per window, softmax over
  the clip, weighted mean of the window logits) instead of the mean of window probabilities; trained
  at clip level on random runs of 2-10 windows, so it sees clips shorter than the 30-s training clips.
- ``consistency``: the shipped head plus a consistency loss: each MP3/phone training window's
  prediction is pulled (KL divergence) toward the prediction for the same window of the clean copy.
  Aimed at phone stability (the same label as the clean file).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from experiments._common import RESULTS, ROOT, brief, stability, write_results
from musicgenre.data.corpus import Clip
from musicgenre.loader import load_backbone
from musicgenre.models.genre import MeanLogits, Standardize
from musicgenre.models.musicnn import Musicnn
from musicgenre.scores import loud_windows, softmax
from musicgenre.train.embed import extract
from musicgenre.train.head import STD_FLOOR, class_weights, fit_windows, fresh_head, train_head
from musicgenre.train.recipe import (
    Recipe,
    Scorer,
    WindowSet,
    assemble,
    head_input,
    head_scorer,
    validation_run,
)

OUT = RESULTS / "head-variants"


# --- backend-ft: MusiCNN's own top layers, fine-tuned -------------------------------------------------------


class FineTunedBackend(nn.Module):
    """pooled mid-end -> MusiCNN's batch norm, dense 200, batch norm (pretrained, fine-tuned) -> new genre layer.

    The batch norms keep their pretrained statistics (eval mode) and train only their scale and shift:
    a few hundred clips would give worse statistics than the million songs they came from.
    """

    def __init__(self, backbone: str, n_labels: int, dropout: float) -> None:
        super().__init__()
        bb = load_backbone(backbone)[0]
        assert isinstance(bb, Musicnn)  # the genre heads read MusiCNN taggers
        self.pool_bn, self.dense, self.dense_bn = (copy.deepcopy(m) for m in (bb.pool_bn, bb.dense, bb.dense_bn))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(bb.dense.out_features, n_labels)

    def train(self, mode: bool = True) -> FineTunedBackend:
        super().train(mode)
        self.pool_bn.eval()
        self.dense_bn.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.dense_bn(F.relu(self.dense(self.drop(self.pool_bn(x)))))))


def train_backend(recipe: Recipe, data: WindowSet) -> nn.Module:
    torch.manual_seed(recipe.seed)
    model = FineTunedBackend(recipe.backbone, len(recipe.labels), recipe.dropout)
    pretrained = [p for n, p in model.named_parameters() if not n.startswith("out.")]
    groups: list[dict[str, object]] = [{"params": pretrained, "lr": recipe.lr / 10}, {"params": model.out.parameters()}]
    fit_windows(recipe, model, data, np.random.default_rng(recipe.seed), params=groups)
    return model


# --- attention: learned pooling over a clip's windows -----------------------------------------------------


class AttentionPool(nn.Module):
    """Window features (B, W, d) + mask -> clip logits: softmax-weighted mean of per-window logits."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, n_labels: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.std = Standardize(len(mean))
        self.std.mean.copy_(mean)
        self.std.std.copy_(std)
        self.body = nn.Sequential(nn.Linear(len(mean), hidden), nn.ReLU(), nn.Dropout(dropout))
        self.cls = nn.Linear(hidden, n_labels)
        self.att = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.body(self.std(x))
        a = self.att(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        return (torch.softmax(a, dim=1)[..., None] * self.cls(h)).sum(1)


def bags(recipe: Recipe, clips: list[Clip], conditions: tuple[str, ...]) -> list[tuple[np.ndarray, int]]:
    """One bag of non-silent window features per (clip, condition), with its label index."""
    out = []
    for cond in conditions:
        data = assemble(recipe, clips, (cond,))
        out += [(data.x[data.clip == i], recipe.labels.index(c.label)) for i, c in enumerate(data.clips)]
    return out


def pad(xs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    w = max(len(x) for x in xs)
    x = torch.zeros(len(xs), w, xs[0].shape[1])
    mask = torch.zeros(len(xs), w, dtype=torch.bool)
    for i, a in enumerate(xs):
        x[i, : len(a)] = torch.from_numpy(a)
        mask[i, : len(a)] = True
    return x, mask


def train_attention(recipe: Recipe, data: WindowSet) -> nn.Module:
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    train = bags(recipe, data.clips, recipe.conditions)
    allx = torch.from_numpy(np.concatenate([b for b, _ in train])).float()
    model = AttentionPool(allx.mean(0), allx.std(0).clamp_min(STD_FLOOR), len(recipe.labels), recipe.hidden,
                          recipe.dropout)
    ys = np.array([label for _, label in train])
    weight = class_weights(recipe, ys)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    per_batch = 32
    model.train()
    for _ in range(recipe.epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order), per_batch):
            chosen = [train[j] for j in order[i : i + per_batch]]
            k = int(rng.integers(2, 11))  # a random run of k windows from each bag: short clips too
            crops = []
            for x, _ in chosen:
                start = int(rng.integers(0, max(1, len(x) - k + 1)))
                crops.append(x[start : start + k])
            xb, mask = pad(crops)
            yb = torch.tensor([label for _, label in chosen])
            if recipe.mixup > 0:
                lam = float(rng.beta(recipe.mixup, recipe.mixup))
                perm = torch.randperm(len(xb))
                logits = model(lam * xb + (1 - lam) * xb[perm], mask & mask[perm])
                loss = lam * F.cross_entropy(logits, yb, weight=weight) + (1 - lam) * F.cross_entropy(
                    logits, yb[perm], weight=weight)
            else:
                loss = F.cross_entropy(model(xb, mask), yb, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def attention_scorer(models: list[nn.Module]) -> Scorer:
    def score(data: WindowSet) -> Callable[[float], np.ndarray]:
        xb, mask = pad([data.x[data.clip == i] for i in range(len(data.clips))])
        with torch.inference_mode():
            logits = torch.stack([m(xb, mask) for m in models]).mean(0).numpy()
        return lambda t: softmax(logits, t)

    return score


# --- consistency: degraded windows pulled toward their clean twins -----------------------------------------


def pairs(recipe: Recipe, data: WindowSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean window features, the same window under MP3 / phone) for every training window loud in both."""
    feats = {c: extract(data.clips, backbone=recipe.backbone, condition=c, cache=Path(recipe.cache))
             for c in recipe.conditions}
    clean, degraded = [], []
    for clip in data.clips:
        c = feats["clean"].get(clip.key)
        for cond in recipe.conditions:
            d = feats[cond].get(clip.key)
            if cond == "clean" or c is None or d is None or len(d.peaks) != len(c.peaks):
                continue
            both = loud_windows(c.peaks) & loud_windows(d.peaks)
            clean.append(head_input(c, recipe.features)[both])
            degraded.append(head_input(d, recipe.features)[both])
    return torch.from_numpy(np.concatenate(clean)).float(), torch.from_numpy(np.concatenate(degraded)).float()


def train_consistency(recipe: Recipe, data: WindowSet, strength: float = 1.0) -> nn.Module:
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    head = fresh_head(recipe, data)
    xc, xd = pairs(recipe, data)

    def consistency(n: int) -> torch.Tensor:
        j = torch.from_numpy(rng.integers(0, len(xc), n))
        with torch.no_grad():
            target = torch.log_softmax(head(xc[j]), dim=1)
        return strength * F.kl_div(torch.log_softmax(head(xd[j]), dim=1), target, log_target=True,
                                   reduction="batchmean")

    fit_windows(recipe, head, data, rng, extra=consistency)
    return head


# --- the protocol -------------------------------------------------------------------------------------------


def fit(variant: str, recipe: Recipe, tr: WindowSet) -> Scorer:
    if variant == "shipped":
        return head_scorer(train_head(recipe, tr)[0])
    seeds = [replace(recipe, seed=recipe.seed + i, members=1) for i in range(recipe.members)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as train_head: reproducible to the bit
    try:
        if variant == "attention":
            return attention_scorer([train_attention(r, tr) for r in seeds])
        trainer = {"backend-ft": train_backend, "consistency": train_consistency}[variant]
        return head_scorer(MeanLogits([trainer(r, tr) for r in seeds]).eval())
    finally:
        torch.set_num_threads(threads)


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "shipped": ("shipped recipe (2.2): mean of window probabilities", {}),
    "backend-ft": ("MusiCNN's back-end (dense 200 + batch norms) fine-tuned from its weights, new genre layer",
                   {"features": "pool"}),
    "attention": ("learned attention pooling over windows, trained on random 2-10-window runs", {}),
    "consistency": ("shipped head + KL consistency of MP3/phone windows to their clean twins", {}),
}


def run(name: str, recipe: Recipe) -> dict[str, Any]:
    """The validation run of ``python -m experiments.accuracy experiments`` with this variant's training, plus label
    stability under the degradation suite."""
    what, over = VARIANTS[name]
    recipe = replace(recipe, **over)
    val = validation_run(recipe, fit=lambda r, tr: fit(name, r, tr))
    row: dict[str, Any] = {"what": what, "members": recipe.members, "temperature": val["temperature"],
                           **{s: brief(val[s]) for s in ("gtzan", "emotify")},
                           "stability": stability(recipe, val["score"], val["temperature"])}
    print(f"{name}: gtzan {row['gtzan']['accuracy']} emotify {row['emotify']['accuracy']} "
          f"phone {row['stability']['phone/all']['same_label']}", file=sys.stderr)
    return row


def markdown(rows: dict[str, Any]) -> str:
    lines = ["| variant | what | heads | GTZAN valid top-1 (n=67) | macro-F1 | ECE | Emotify valid top-1 (n=29) "
             "| same label, MP3 64k (n=96) | same label, phone (n=96) |", "|" + "---|" * 9]
    for name, r in rows.items():
        g, e = r["gtzan"], r["emotify"]
        lo, hi = g["ci95"]["accuracy"]
        lines.append(f"| {name} | {r['what']} | {r['members']} | {g['accuracy']:.3f} [{lo:.2f}, {hi:.2f}] "
                     f"| {g['macro_f1']:.3f} | {g['ece']:.3f} | {e['accuracy']:.3f} "
                     f"| {r['stability']['mp3_64k/all']['same_label']:.3f} "
                     f"| {r['stability']['phone/all']['same_label']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "musicnn-genre.toml")
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS), help="run only these (their rows are replaced)")
    ap.add_argument("--members", type=int, help="heads per variant (default: the recipe's)")
    ap.add_argument("--seed", type=int, help="first seed (default: the recipe's)")
    ap.add_argument("--tag", default="", help="suffix for the row names, e.g. -seed5")
    args = ap.parse_args()
    recipe = Recipe.load(args.recipe)
    recipe = replace(recipe, **{k: v for k, v in (("members", args.members), ("seed", args.seed)) if v is not None})
    rows = {f"{n}{args.tag}": run(n, recipe) for n in (args.only or list(VARIANTS))}
    if OUT.with_suffix(".json").is_file():  # keep the other rows
        rows = {**json.loads(OUT.with_suffix(".json").read_text()), **rows}
    write_results(OUT.with_suffix(".json"), rows)
    print(write_results(OUT.with_suffix(".md"), markdown(rows)))


if __name__ == "__main__":
    main()
