"""One readable training loop for every architecture (single process, or DDP under torchrun).

The output directory *is* the trained model: ``config.json`` + ``model.safetensors`` (the best epoch
by validation macro-F1), next to ``checkpoint.pt`` (the last epoch: model, optimizer, scheduler,
scaler, RNG, history, so ``--resume`` continues exactly), ``history.csv/json``, ``learning_curve.png``
and, after training, the test-split report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import load_audio
from ..data import Dataset, Example, load_dataset
from ..errors import MusicGenreError, ParameterError
from ..models.architectures import INPUTS, SpecAugment, SpectrogramModel
from ..models.registry import create_model
from ..weights_io import save_weights
from .augment import augment_waveform
from .metrics import report

log = logging.getLogger(__name__)
HEAD_NAMES = ("head", "out", "classifier", "projector")  # what --freeze-encoder leaves trainable


@dataclass
class TrainConfig:
    architecture: str
    data: str
    out: str
    dataset_kind: str = "auto"
    split: str = "random"
    model_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: int = 1
    patience: int = 8
    accumulate: int = 1
    segment_seconds: float | None = None
    augment: bool = True
    spec_augment: bool = True
    freeze_encoder: bool = False
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    workers: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class SegmentDataset(torch.utils.data.Dataset):
    """Clips cut into fixed segments that keep the clip's label (a 30-s clip -> 3 x 10 s)."""

    def __init__(self, audio: list[np.ndarray], labels: list[int], n: int, train: bool, augment: bool,
                 seed: int) -> None:
        self.audio, self.labels, self.n = audio, labels, n
        self.train, self.augment, self.seed = train, augment, seed
        self.items = [(c, s * n) for c, a in enumerate(audio) for s in range(max(1, len(a) // n))]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        clip, start = self.items[i]
        y = self.audio[clip][start : start + self.n].astype(np.float32)
        if len(y) < self.n:  # clip shorter than a segment: repeat-pad, as at inference
            y = np.tile(y, -(-self.n // max(1, len(y))))[: self.n]
        if self.train and self.augment:
            y = augment_waveform(y, np.random.default_rng((self.seed, self.epoch, i)))
        return torch.from_numpy(y), self.labels[clip], clip


def decode_split(examples: list[Example], sr: int, labels: list[str], desc: str, progress: bool
                 ) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Decode every clip once (float16 in memory); bad clips are reported and left out."""
    audio, ys, failed = [], [], []
    it: Any = examples
    if progress:
        from tqdm import tqdm

        it = tqdm(examples, desc=f"decoding {desc}", unit="clip", file=sys.stderr, leave=False)
    for e in it:
        try:
            audio.append(load_audio(e.source, sr=sr).astype(np.float16))
            ys.append(labels.index(e.label))
        except MusicGenreError as err:
            failed.append(str(err))
    for f in failed:
        log.warning("skipped: %s", f)
    return audio, ys, failed


def build_model(cfg: TrainConfig, n_labels: int) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The architecture, its saved constructor arguments, and the input it expects (sr, window)."""
    inputs = dict(INPUTS.get(cfg.architecture, {"sr": 22050, "window_seconds": 10.0}))
    if cfg.segment_seconds:
        if cfg.architecture == "musicnn_transfer":
            raise ParameterError("musicnn_transfer works on MusiCNN's fixed 3-s windows")
        inputs["window_seconds"] = cfg.segment_seconds
    args = {**cfg.model_args, "n_labels": n_labels}
    if cfg.architecture != "musicnn_transfer":  # its rate is fixed by the pretrained MusiCNN
        args.setdefault("sr", inputs["sr"])
    model = create_model(cfg.architecture, **args)
    if cfg.spec_augment and isinstance(model, SpectrogramModel):
        model.spec_augment = SpecAugment()
    if cfg.freeze_encoder:
        for name, p in model.named_parameters():
            p.requires_grad_(any(part in HEAD_NAMES for part in name.split(".")))
    return model, args, inputs


def make_optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ParameterError(f"unknown optimizer {cfg.optimizer!r}: use adam, adamw or rmsprop")


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    if cfg.schedule == "cosine":  # linear warm-up, then cosine decay to 0, stepped per optimizer step
        warm, total = cfg.warmup_epochs * steps_per_epoch, max(1, cfg.epochs * steps_per_epoch)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
    if cfg.schedule == "none":
        return None
    raise ParameterError(f"unknown schedule {cfg.schedule!r}: use cosine, plateau or none")


@torch.no_grad()
def validate(model: nn.Module, loader: Any, n_clips: int, clip_labels: list[int], labels: list[str],
             device: str) -> dict[str, Any]:
    """Window accuracy and clip-level metrics (mean window probabilities per clip)."""
    model.eval()
    probs = torch.zeros(n_clips, len(labels))
    correct = total = 0
    loss_sum = 0.0
    for x, y, clip in loader:
        logits = model(x.to(device))["logits"].float().cpu()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
        probs.index_add_(0, clip, logits.softmax(1))
    rep = report(np.array(clip_labels), probs.argmax(1).numpy(), labels)
    rep.update(window_accuracy=correct / max(1, total), loss=loss_sum / max(1, total))
    return rep


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank() if world > 1 else 0), world


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    from ..pipeline import resolve_device

    rank, world = _distributed()
    device = resolve_device(cfg.device)
    if world > 1 and device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    ds: Dataset = load_dataset(cfg.data, kind=cfg.dataset_kind, split=cfg.split, seed=cfg.seed)
    labels = ds.labels
    if rank == 0:
        print(ds.summary(), file=sys.stderr)
    model, args, inputs = build_model(cfg, len(labels))
    sr, n = inputs["sr"], round(inputs["window_seconds"] * inputs["sr"])
    show = progress and rank == 0 and sys.stderr.isatty()
    tr_audio, tr_y, tr_failed = decode_split(ds.split("train"), sr, labels, "train", show)
    va_audio, va_y, va_failed = decode_split(ds.split("valid") or ds.split("test"), sr, labels, "valid", show)
    if not tr_audio or not va_audio:
        raise ParameterError(f"{cfg.data}: the train and valid splits need at least one decodable clip each")
    train_set = SegmentDataset(tr_audio, tr_y, n, True, cfg.augment, cfg.seed)
    valid_set = SegmentDataset(va_audio, va_y, n, False, False, cfg.seed)
    sampler: Any = torch.utils.data.DistributedSampler(train_set, seed=cfg.seed) if world > 1 else None
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=sampler is None,
                                               sampler=sampler, generator=gen, num_workers=cfg.workers,
                                               drop_last=len(train_set) > cfg.batch_size)
    valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=cfg.batch_size, num_workers=cfg.workers)

    model.to(device)
    net: nn.Module = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(cfg, trainable)
    steps = max(1, math.ceil(len(train_loader) / cfg.accumulate))
    sched = make_scheduler(cfg, opt, steps)
    use_amp = cfg.amp and device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, Any]] = []
    start, best, bad_epochs = 0, -1.0, 0
    ckpt_path = out / "checkpoint.pt"
    if cfg.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler"):
            sched.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        torch.set_rng_state(ck["rng"]["torch"])
        np.random.set_state(ck["rng"]["numpy"])
        random.setstate(ck["rng"]["python"])
        gen.set_state(ck["rng"]["loader"])
        start, best, bad_epochs, history = ck["epoch"] + 1, ck["best"], ck["bad_epochs"], ck["history"]
        if rank == 0:
            print(f"resuming after epoch {start} (best valid macro-F1 {best:.3f})", file=sys.stderr)
    elif cfg.resume:
        log.warning("%s: no checkpoint to resume from; starting fresh", ckpt_path)

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        train_set.epoch = epoch
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        it: Any = train_loader
        if show:
            from tqdm import tqdm

            it = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", file=sys.stderr)
        opt.zero_grad(set_to_none=True)
        for i, (x, y, _) in enumerate(it):
            x, y = x.to(device), y.to(device)
            with torch.autocast("cuda", enabled=use_amp):
                logits = net(x)["logits"]
                loss = F.cross_entropy(logits.float(), y)
            scaler.scale(loss / cfg.accumulate).backward()
            if (i + 1) % cfg.accumulate == 0 or i + 1 == len(train_loader):
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
                    sched.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if show:
                it.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        val = validate(model, valid_loader, len(va_audio), va_y, labels, device)
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val["macro_f1"])
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen),
               "valid_loss": val["loss"], "valid_accuracy": val["accuracy"], "valid_macro_f1": val["macro_f1"],
               "valid_window_accuracy": val["window_accuracy"], "lr": opt.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 2)}
        history.append(row)
        improved = val["macro_f1"] > best
        if improved:
            best, bad_epochs = val["macro_f1"], 0
        else:
            bad_epochs += 1
        if rank == 0:
            print(f"epoch {epoch + 1}: train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f} | "
                  f"valid acc {val['accuracy']:.3f} macro-F1 {val['macro_f1']:.3f}" + (" *" if improved else ""),
                  file=sys.stderr)
            if improved:
                export_model(model, out, cfg, args, inputs, labels, {"valid": _brief(val), "epoch": epoch + 1})
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict() if sched is not None else None,
                        "scaler": scaler.state_dict(), "epoch": epoch, "best": best, "bad_epochs": bad_epochs,
                        "history": history, "config": dataclasses.asdict(cfg),
                        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                                "python": random.getstate(), "loader": gen.get_state()}},
                       str(ckpt_path) + ".tmp")
            os.replace(str(ckpt_path) + ".tmp", ckpt_path)  # a kill mid-save keeps the previous checkpoint
            write_history(history, out)
        if cfg.patience and bad_epochs >= cfg.patience:
            if rank == 0:
                print(f"early stopping: no improvement in {cfg.patience} epochs", file=sys.stderr)
            break
    result = {"best_valid_macro_f1": best, "epochs_run": len(history), "skipped_clips": tr_failed + va_failed}
    if rank == 0 and ds.split("test"):
        from .evaluate import evaluate

        test = evaluate(out, ds.split("test"), labels, out / "test", device=cfg.device)
        cfg_path = out / "config.json"
        conf = json.loads(cfg_path.read_text())
        conf["metrics"]["test"] = _brief(test)
        cfg_path.write_text(json.dumps(conf, indent=2) + "\n")
        result["test"] = _brief(test)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


def _brief(rep: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) for k, v in rep.items() if k in ("accuracy", "macro_f1", "window_accuracy")}


def export_model(model: nn.Module, out: Path, cfg: TrainConfig, args: dict[str, Any], inputs: dict[str, Any],
                 labels: list[str], metrics: dict[str, Any]) -> None:
    """Write the self-describing model directory (weights + config) that every command can load."""
    skip = tuple(getattr(model, "external_prefixes", ()))
    state = {k: v for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}
    config = {
        "name": out.name,
        "version": "1",
        "architecture": cfg.architecture,
        "model_args": args,
        "labels": labels,
        "features": {"sr": inputs["sr"], "input": "waveform", "window_seconds": inputs["window_seconds"]},
        "description": f"{cfg.architecture} trained with musicgenre on {Path(cfg.data).name}",
        "training": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("resume",)},
        "metrics": metrics,
    }
    save_weights(state, out / "model.safetensors", config, out / "config.json")


def write_history(history: list[dict[str, Any]], out: Path) -> None:
    import csv

    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=100)
    a.plot(ep, [h["train_loss"] for h in history], label="train")
    a.plot(ep, [h["valid_loss"] for h in history], label="valid")
    a.set_title("loss")
    b.plot(ep, [h["train_accuracy"] for h in history], label="train (windows)")
    b.plot(ep, [h["valid_accuracy"] for h in history], label="valid (clips)")
    b.plot(ep, [h["valid_macro_f1"] for h in history], label="valid macro-F1")
    b.set_ylim(0, 1)
    b.set_title("accuracy")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png")
    plt.close(fig)
