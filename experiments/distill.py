"""The backbone trained on this CPU: a student MusiCNN distilled from the frozen one on degraded copies
(``train.distill``), scored by the recipe's validation run on the student's features.

    python -m experiments.distill --name distill-feat --tag-weight 0 --genre-weight 0
    python -m experiments.distill --name distill-genre --tag-weight 0 --genre-weight 1
    python -m experiments.distill --name distill-bank --bank-only         # build the mel bank and stop

Every run: the recipe (``recipes/musicnn-genre.toml``) with the levelled front end of LEVEL-DEFAULT (``level_db``
-5, ``level_span`` window, conditions clean, mp3_64k, phone, room) and a ``[backbone]`` distillation section from
the options below; the student trains on the clips outside the validation partitions (checkpoints in
``.cache/distill/NAME``: a killed run resumes with the same command), then ``train.recipe.validation_run`` trains
the heads on the train partitions' student features and scores the artist-disjoint valid partitions (GTZAN
fault-filtered valid n=67, Emotify valid n=29), with the robustness report under ``--robustness`` (``room_eval``:
the held-out rooms). Results: ``experiments/results/distill-NAME.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from experiments._common import RESULTS, ROOT, robustness_figures, write_results
from musicgenre.train.distill import DistillConfig, train_student
from musicgenre.train.recipe import Recipe, validation_run

ROBUSTNESS = ("quiet_6db", "quiet_15db", "quiet_25db", "room_eval", "phone", "mp3_64k")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "musicnn-genre.toml"))
    ap.add_argument("--name", required=True, help="results file experiments/results/distill-NAME.json")
    ap.add_argument("--level-db", type=float, default=-5.0)
    ap.add_argument("--conditions", default="clean,mp3_64k,phone,room", help="the heads' training copies")
    ap.add_argument("--robustness", default=",".join(ROBUSTNESS), help="conditions the valid clips are scored under")
    ap.add_argument("--teacher", action="store_true", help="score the frozen backbone itself (no student)")
    d = DistillConfig()
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--warmup", type=int, default=d.warmup)
    ap.add_argument("--layers", default=",".join(d.layers), help="parts that train: front, mid, back, tags")
    ap.add_argument("--copies", default=",".join(d.copies), help="degraded copies per clip (train.degrade)")
    ap.add_argument("--clean-share", type=float, default=d.clean_share)
    ap.add_argument("--feature-weight", type=float, default=d.feature_weight)
    ap.add_argument("--tag-weight", type=float, default=d.tag_weight)
    ap.add_argument("--genre-weight", type=float, default=d.genre_weight)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--save-every", type=int, default=d.save_every)
    ap.add_argument("--workers", type=int, default=2, help="processes building the mel bank")
    ap.add_argument("--bank-only", action="store_true", help="build the mel bank (and front-end outputs), then stop")
    ap.add_argument("--time-steps", type=int, default=0,
                    help="time this many training steps of --batch random windows for --layers, then stop")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.time_steps:
        print(f"layers {args.layers}, batch {args.batch}: {time_steps(args):.1f} windows/s")
        return
    section = {"train": "distill", "steps": args.steps, "batch": args.batch, "lr": args.lr, "warmup": args.warmup,
               "layers": args.layers.split(","), "copies": args.copies.split(","), "clean_share": args.clean_share,
               "feature_weight": args.feature_weight, "tag_weight": args.tag_weight,
               "genre_weight": args.genre_weight, "seed": args.seed, "save_every": args.save_every,
               "checkpoint": f"distill/{args.name}"}
    recipe = Recipe.load(args.recipe, level_db=args.level_db, level_span="window",
                         conditions=tuple(args.conditions.split(",")), robustness=tuple(args.robustness.split(",")),
                         distill={} if args.teacher else section)
    card: dict[str, Any] = {}
    if args.bank_only:
        t0 = time.perf_counter()
        _bank_only(recipe, args.workers)
        print(f"bank built in {time.perf_counter() - t0:.0f} s")
        return
    if not args.teacher:
        folder = train_student(recipe, workers=args.workers)
        card = json.loads((Path(folder) / "student.json").read_text())
        recipe = dataclasses.replace(recipe, student=str(folder))
    t0 = time.perf_counter()
    result = {"recipe": {k: v for k, v in recipe.__dict__.items() if k not in ("gtzan", "emotify", "cache")},
              "student": card, **robustness_figures(validation_run(recipe))}
    result["validation_run_s"] = round(time.perf_counter() - t0)
    write_results(RESULTS / f"distill-{args.name}.json", result)
    clean = result["clean"]
    print(f"{args.name}: clean GTZAN valid {clean['gtzan']['top1']:.3f} (n={clean['gtzan']['n']}), Emotify valid "
          f"{clean['emotify']['top1']:.3f} (n={clean['emotify']['n']}); top-1 at 1/3/10 windows "
          + " / ".join(f"{clean['pooled'][k]['accuracy']:.3f}" for k in ("1", "3", "10"))
          + (f"; student {card.get('wall_s')} s" if card else ""))
    print(markdown_row(args.name, result))
    for cond, rows in result["robustness"].items():
        for length, r in rows.items():
            print(f"  {cond:<12} {length:>3}: same label {r['agreement']:.3f} (n={r['n']}), confident "
                  f"{r['confident_agreement']} (n={r['confident_n']}), top-1 {r['top1']:.3f} vs clean "
                  f"{r['clean_top1']:.3f}")


def time_steps(args: argparse.Namespace) -> float:
    """Windows per second of forward + backward + AdamW steps on random log-mel windows (the median step after
    one warm-up step); a frozen front end is run outside the timed step, as the distillation stores its outputs."""
    import statistics

    import torch

    from musicgenre.train.distill import make_student

    layers = tuple(args.layers.split(","))
    net = make_student("MSD_musicnn", layers)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=args.lr)
    x = torch.rand(args.batch, 187, 96) * 2
    front = None
    if "front" not in layers:
        with torch.inference_mode():
            front = net.front(x).clone()
    times = []
    for _ in range(args.time_steps + 1):
        t0 = time.perf_counter()
        pool, emb = net.from_front(front) if front is not None else net.features(x)
        loss = pool.pow(2).mean() + emb.pow(2).mean() + net.out(emb).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return args.batch / statistics.median(times[1:])


def markdown_row(name: str, result: dict[str, Any]) -> str:
    """The eighth round's table row (docs/experiments.md): whole-clip figures unless marked."""
    clean, rob, card = result["clean"], result["robustness"], result["student"]

    def whole(cond: str, key: str = "agreement") -> str:
        r = rob.get(cond, {}).get("30s")
        return "-" if r is None or r[key] is None else f"{r[key]:.3f}"

    room = rob.get("room_eval", {}).get("30s", {})
    minutes = f"{card['wall_s'] / 60:.0f} min" if card else "-"
    return (f"| {name} | {minutes} | {clean['gtzan']['top1']:.3f} | {clean['emotify']['top1']:.3f} | "
            + " / ".join(f"{clean['pooled'][k]['accuracy']:.3f}" for k in ("1", "3", "10"))
            + f" | {whole('room_eval')} ({whole('room_eval', 'confident_agreement')}, n={room.get('confident_n')})"
            f" | {whole('room_eval', 'top1')} | {whole('phone')} | {whole('mp3_64k')} | {whole('quiet_25db')} |")


def _bank_only(recipe: Recipe, workers: int) -> None:
    """The mel bank of the distillation clips and the frozen front end's outputs, without training."""
    from musicgenre.train.distill import (
        MelBank,
        assemble,
        cached_front,
        copy_labels,
        distill_clips,
        pruned_backbone,
    )

    cfg = DistillConfig.from_section(recipe.distill)
    teacher = pruned_backbone(recipe.backbone)
    bank = MelBank(Path(recipe.cache).parent / "mels", recipe.feature_config)
    copies = copy_labels(cfg.copies)
    data = assemble(bank, distill_clips(recipe), copies, recipe.labels, teacher, progress=True, workers=workers)
    if "front" not in cfg.layers:
        cached_front(bank, recipe.backbone, teacher, data, ["clean", *copies], progress=True)
    print(f"{len(data.clips)} clips, {data.mels.shape[1]} loud windows, {int((data.label >= 0).sum())} labelled")


if __name__ == "__main__":
    main()
