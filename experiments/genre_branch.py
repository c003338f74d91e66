"""A trained genre branch (a copy of MusiCNN's mid-end and back-end, fine-tuned under the genre head) against
the head on frozen features, on the validation run.

    python -m experiments.genre_branch               # seeds 0 and 5, rates 1e-4 and 3e-4: results/genre-branch.json
    python -m experiments.genre_branch --seeds 0 --lrs 1e-4 --epochs 2   # a quick look
    python -m experiments.genre_branch --recipe recipes/musicnn-electronic.toml --lrs 1e-4 \
        -o experiments/results/genre-branch-electronic.json  # the gated heads (electronic) on the branch
    python -m experiments.genre_branch --recipe recipes/musicnn-electronic.toml --gate-only \
        -o experiments/results/genre-branch-gate.json  # only the electronic gate on the branch

The pruned MSD MusiCNN front end (0.26 of its 0.28 GFLOP per window) stays shared and frozen. Its live outputs (64
channels x 187 frames per 3-s window) are cached once per (clip, condition) in float16 under
``.cache/frontend``. A copy of the mid-end and back-end (the tagger's own weights: the pruned mid-end
convolutions, pooled BatchNorm, dense layer and its BatchNorm, the tag layer kept frozen) feeds the recipe's
genre head (pooled mid-end + embedding + tags -> MLP 128). For each seed:

1. **baseline**: the recipe's head (one member) trained on the cached frozen features of the train clips not
   held out for early stopping (85% of the train partitions);
2. **branch**: the same head, initialised from the baseline, fine-tuned together with the copied mid-end and
   back-end: AdamW, learning rate ``--lrs`` for the copy and 3x that for the head, cosine schedule, mixup
   a=0.4 of the front-end maps, the degraded copies (MP3 64 kbps, phone) as augmentation, BatchNorm
   statistics frozen (the mid-end's are folded into the pruned convolutions; the pooled and dense BatchNorms
   stay in eval mode); reported after the last epoch and at the epoch that did best on 15% of the train clips
   held out for early stopping (by artist group for Emotify).

Both are scored as ``predict`` scores a clip (softmax per window, mean over the non-silent windows) on the
artist-disjoint valid partitions (clean audio): clip and window top-1 for GTZAN (n=67) and Emotify (n=29).
The tags are not touched: the shipped model's ``Prediction.tags`` come from the tagger's own branch.

``--gate-only`` (a recipe with a gate): only the gate head (11-way) is fine-tuned with the copy, early-stopped on
its own 11-way top-1; the ten genres keep their head on the frozen tagger's features, so GTZAN calls move only
where the gate says electronic.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from experiments._common import RESULTS, ROOT, write_results
from musicgenre._io import write_atomic
from musicgenre.audio import load_audio
from musicgenre.data.corpus import Clip
from musicgenre.errors import MusicGenreError
from musicgenre.evaluation.metrics import classification_report
from musicgenre.features import FeatureConfig
from musicgenre.loader import load_backbone
from musicgenre.models.genre import GatedHeads
from musicgenre.models.prune import PrunedMusicnn, prune_constant_channels
from musicgenre.scores import clip_scores, loud_windows, softmax
from musicgenre.train.degrade import degrade
from musicgenre.train.head import class_weights, train_head, window_logits
from musicgenre.train.recipe import Recipe, assemble, training_set
from musicgenre.windows import Windows

CACHE = ROOT / ".cache" / "frontend"


def pruned_tagger() -> PrunedMusicnn:
    net = prune_constant_channels(load_backbone("MSD_musicnn")[0].eval())
    assert isinstance(net, PrunedMusicnn)
    return net


def front_maps(net: PrunedMusicnn, clips: list[Clip], condition: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """clip key -> (the front end's live outputs of its non-silent windows (n, 64, 187) float16, their peaks)."""
    cfg = FeatureConfig()
    out = {}
    for clip in clips:
        path = CACHE / condition / f"{clip.key}.npz"
        if not path.is_file():
            try:
                y = degrade(load_audio(clip.path, sr=cfg.sr), cfg.sr, condition, name=clip.key)
                mels, peaks = Windows((y, cfg.sr), cfg).all()
            except MusicGenreError as e:
                print(f"skipped {clip.key}: {e}")
                continue
            with torch.inference_mode():
                h = net.front(torch.from_numpy(mels)).numpy().astype(np.float16)
            _save(path, h, peaks)
        with np.load(path) as z:
            keep = loud_windows(z["peaks"])
            if keep.any():
                out[clip.key] = (z["h"][keep], z["peaks"][keep])
    return out


def _save(path: Path, h: np.ndarray, peaks: np.ndarray) -> None:
    """One cache entry, written atomically (a killed run never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: np.savez(f, h=h, peaks=peaks))


class Branch(nn.Module):
    """A copy of the pruned tagger whose mid-end and back-end train (``PrunedMusicnn.from_front`` on cached
    front-end maps), then the genre head; the front end and the tag layer stay the tagger's."""

    def __init__(self, net: PrunedMusicnn, head: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(net)
        for frozen in (self.net.input_bn, self.net.frontend, self.net.out):
            frozen.requires_grad_(False)
        self.head = head

    def train(self, mode: bool = True) -> Branch:
        super().train(mode)
        for m in (self.net.pool_bn, self.net.dense_bn, self.net.dropout):  # BatchNorm statistics frozen, and no
            m.eval()  # dropout on the pooled vector: the head has its own
        return self

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (batch, live front, time)
        pooled, emb = self.net.from_front(h)
        return self.head(torch.cat([pooled, emb, self.net.out(emb)], dim=1))


def stack(maps: dict[str, tuple[np.ndarray, np.ndarray]], clips: list[Clip], labels: tuple[str, ...]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows (n, 64, 187) float16, label per window, clip index per window) over ``clips``."""
    xs, ys, cs = [], [], []
    for i, c in enumerate(clips):
        if c.key in maps:
            h = maps[c.key][0]
            xs.append(h)
            ys.append(np.full(len(h), labels.index(c.label)))
            cs.append(np.full(len(h), i))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)


def branch_logits(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(x[i : i + batch]).float()).numpy()
                               for i in range(0, len(x), batch)])


def clip_predictions(logits: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each clip's first window, its label by ``predict``'s aggregation: the mean window softmax)."""
    probs = softmax(logits)
    ids = np.unique(clip)
    first = np.array([np.flatnonzero(clip == i)[0] for i in ids])
    return first, np.array([clip_scores(probs[clip == i], np.ones(int((clip == i).sum()), bool)).argmax() for i in ids])


def score(logits: np.ndarray, y: np.ndarray, clip: np.ndarray, src: np.ndarray, labels: tuple[str, ...]
          ) -> dict[str, Any]:
    """Clip and window top-1 per source; with an ``electronic`` label, its clip-level precision and recall."""
    first, pred = clip_predictions(logits, clip)
    true = y[first]
    out: dict[str, Any] = {}
    for s in ("gtzan", "emotify"):
        m, c = src == s, src[first] == s
        out[s] = {"n": int(c.sum()), "top1": round(float(np.mean(pred[c] == true[c])), 4),
                  "window_top1": round(float(np.mean(logits[m].argmax(1) == y[m])), 4)}
    if "electronic" in labels:
        el = classification_report(true, pred, list(labels))["per_class"]["electronic"]
        out["electronic"] = {"n": el["support"], "precision": el["precision"], "recall": el["recall"]}
    return out


def stop_top1(model: nn.Module, stop: tuple[np.ndarray, ...]) -> float:
    """Clip top-1 on the early-stopping clips (windows, labels, clip index)."""
    first, pred = clip_predictions(branch_logits(model, stop[0]), stop[2])
    return float(np.mean(pred == stop[1][first]))


def fine_tune(recipe: Recipe, model: Branch, x: np.ndarray, y: np.ndarray, stop: tuple[np.ndarray, ...],
              *, epochs: int, lr: float, seed: int) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train ``model`` on (x, y) for ``epochs``; returns the state with the best clip top-1 on the early-stopping
    clips (the latest on ties; the start when no epoch reaches it) and the history. ``model`` ends in its final
    state."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    weight = class_weights(recipe, y)
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("head.") and p.requires_grad],
               "lr": lr},
              {"params": list(model.head.parameters()), "lr": 3 * lr}]
    opt = torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    best = (stop_top1(model, stop), copy.deepcopy(model.state_dict()))
    history = [{"epoch": 0, "early_stop_top1": round(best[0], 4)}]
    yt = torch.from_numpy(y).long()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(x))
        t0 = time.perf_counter()
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            xb, yb = torch.from_numpy(x[idx]).float(), yt[idx]
            lam = float(rng.beta(recipe.mixup, recipe.mixup))
            perm = torch.randperm(len(xb))
            logits = model(lam * xb + (1 - lam) * xb[perm])
            loss = lam * F.cross_entropy(logits, yb, weight=weight) + (1 - lam) * F.cross_entropy(
                logits, yb[perm], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        top1 = stop_top1(model, stop)
        history.append({"epoch": epoch, "early_stop_top1": round(top1, 4), "seconds": round(time.perf_counter() - t0)})
        print(f"  epoch {epoch}: early-stopping clips top-1 {top1:.3f} ({history[-1]['seconds']} s)", flush=True)
        if top1 >= best[0]:
            best = (top1, copy.deepcopy(model.state_dict()))
    return best[1], history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "musicnn-genre.toml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 5])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4],
                    help="the copied mid-end/back-end's learning rates to try (the head's is 3x)")
    ap.add_argument("--gate-only", action="store_true", help="fine-tune only the gate head of a gated recipe")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "genre-branch.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    recipe = Recipe.load(args.recipe, members=1)
    net = pruned_tagger()
    clips = recipe.clips()
    train = [c for c in clips if c.split == "train"]
    valid = [c for c in clips if c.split == "valid"]
    # early stopping: 15% of the train clips (whole Emotify artist groups; GTZAN clips), never trained on
    rng = np.random.default_rng(123)
    held_groups = {g for g in sorted({c.group for c in train}) if rng.random() < 0.15}
    fit = [c for c in train if c.group not in held_groups]
    stop_clips = [c for c in train if c.group in held_groups]
    t0 = time.perf_counter()
    maps = {cond: front_maps(net, fit if cond != "clean" else fit + stop_clips + valid, cond)
            for cond in recipe.conditions}
    print(f"front-end maps ready in {time.perf_counter() - t0:.0f} s", flush=True)
    xs = [stack(maps[cond], fit, recipe.labels) for cond in recipe.conditions]
    x, y = np.concatenate([a[0] for a in xs]), np.concatenate([a[1] for a in xs])
    stop = stack(maps["clean"], stop_clips, recipe.labels)
    xv, yv, cv = stack(maps["clean"], valid, recipe.labels)
    src = np.array([valid[i].source for i in cv])
    results: dict[str, Any] = {"protocol": " ".join(__doc__.split("\n\n")[2].split()), "train_windows": len(x),
                               "train_clips": len(fit), "early_stop_clips": len(stop_clips), "epochs": args.epochs}
    for seed in args.seeds:
        r = Recipe(**{**recipe.__dict__, "seed": seed})
        head, _ = train_head(r, training_set(r, fit))
        va = assemble(r, valid, ("clean",))
        base = window_logits(head, va)
        base_rep = score(base, va.y, va.clip, np.array([va.clips[i].source for i in va.clip]), r.labels)
        res: dict[str, Any] = {"baseline_head": base_rep}
        for lr in args.lrs:
            if args.gate_only:  # the gate trains on the copy; the genres read the frozen tagger
                assert isinstance(head, GatedHeads), "--gate-only needs a recipe with a gate"
                model = Branch(net, copy.deepcopy(head.gate))
                full: nn.Module = GatedHeads(Branch(net, head.genres), model, head.index)
            else:
                model = full = Branch(net, copy.deepcopy(head))
            if lr == args.lrs[0]:  # the same head on features the copy recomputes: must equal the baseline
                res["branch_before_training"] = score(branch_logits(full, xv), yv, cv, src, r.labels)
            early, history = fine_tune(r, model, x, y, stop, epochs=args.epochs, lr=lr, seed=seed)
            final = score(branch_logits(full, xv), yv, cv, src, r.labels)
            model.load_state_dict(early)
            stopped = score(branch_logits(full, xv), yv, cv, src, r.labels)
            res[f"lr {lr:g}"] = {"final": final, "early_stopped": stopped, "history": history}
            print(seed, lr, {k: v for k, v in res[f"lr {lr:g}"].items() if k != "history"}, flush=True)
        results[f"seed {seed}"] = res
    write_results(args.output, results)


if __name__ == "__main__":
    main()
