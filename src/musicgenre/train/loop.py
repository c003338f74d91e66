"""One readable training loop for every architecture (single process, or DDP under torchrun).

The output directory *is* the trained model: ``config.json`` + ``model.safetensors`` (the best epoch
by validation macro-F1), next to ``checkpoint.pt`` (the last epoch: model, optimizer, scheduler,
scaler, RNG, history, so ``--resume`` continues exactly), ``history.csv/json``, ``learning_curve.png``
and, after training, the test-split report.
"""

from __future__ import annotations

import dataclasses
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

from .._io import save_figure, write_atomic, write_json
from ..data import Dataset, Example, load_dataset
from ..errors import MusicGenreError, ParameterError
from ..evaluation.metrics import classification_report
from ..features import FeatureConfig
from ..loader import fill_pretrained
from ..modeldir import ModelCard, read
from ..models import get_architecture
from ..models.architectures import SpecAugment, SpectrogramModel
from ..scores import loud_windows
from ..windows import Windows
from .augment import augment_waveform

log = logging.getLogger(__name__)


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
    window_seconds: float | None = None  # analysis window (waveform architectures; default: declared)
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


@dataclass
class DecodedSplit:
    """A split cut into analysis windows by the pipeline's own cutter (``windows.Windows``), kept as float16.

    ``windows[c]`` is clip ``c``'s (k, samples) windows and ``peaks[c]`` their peak levels, exactly what
    ``predict`` would see; silent windows stay in the clip (the aggregation leaves them out, as in predict)
    but are never trained on."""

    windows: list[np.ndarray]
    peaks: list[np.ndarray]
    labels: list[int]
    failed: list[str]


def decode_split(examples: list[Example], features: FeatureConfig, labels: list[str], desc: str, progress: bool
                 ) -> DecodedSplit:
    """Decode and window every clip once; bad or silent clips are reported and left out."""
    clips = DecodedSplit([], [], [], [])
    it: Any = examples
    if progress:
        from tqdm import tqdm

        it = tqdm(examples, desc=f"decoding {desc}", unit="clip", file=sys.stderr, leave=False)
    for e in it:
        try:
            windows, peaks = Windows(e.source, features).all()
            if not loud_windows(peaks).any():
                raise MusicGenreError(f"{e.name}: silent (peak below -60 dBFS everywhere); nothing to learn")
        except MusicGenreError as err:
            clips.failed.append(str(err))
            continue
        clips.windows.append(windows.astype(np.float16))
        clips.peaks.append(peaks)
        clips.labels.append(labels.index(e.label))
    for f in clips.failed:
        log.warning("skipped: %s", f)
    return clips


class WindowDataset(torch.utils.data.Dataset):
    """The windows of a split as (window, label, clip index); training sees only non-silent windows."""

    def __init__(self, clips: DecodedSplit, train: bool, augment: bool, seed: int) -> None:
        self.clips, self.train, self.augment, self.seed = clips, train, augment, seed
        self.items = [(c, w) for c, pk in enumerate(clips.peaks) for w in range(len(pk))
                      if not train or loud_windows(pk)[w]]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        clip, w = self.items[i]
        y = self.clips.windows[clip][w].astype(np.float32)
        if self.train and self.augment:
            y = augment_waveform(y, np.random.default_rng((self.seed, self.epoch, i)))
        return torch.from_numpy(y), self.clips.labels[clip], clip


def build_model(cfg: TrainConfig, n_labels: int) -> tuple[nn.Module, dict[str, Any], FeatureConfig]:
    """The architecture, its saved constructor arguments, and the windows it takes (declared at registration)."""
    arch = get_architecture(cfg.architecture)
    if not arch.trainable:
        raise ParameterError(f"{cfg.architecture} is a pretrained backbone, not a trainable architecture")
    features = arch.features
    if cfg.window_seconds:
        if features.input != "waveform" or cfg.architecture == "musicnn_transfer":
            raise ParameterError(f"{cfg.architecture} works on fixed {features.window_seconds:.2f}-s windows")
        features = dataclasses.replace(features, window_seconds=cfg.window_seconds)
    args = {**cfg.model_args, "n_labels": n_labels}
    args.setdefault("sr", features.sr)
    model = fill_pretrained(arch.builder(**args))  # a pretrained backbone starts with its weights
    if cfg.spec_augment and isinstance(model, SpectrogramModel):
        model.spec_augment = SpecAugment()
    if cfg.freeze_encoder:
        for name, p in model.named_parameters():
            p.requires_grad_(any(part in arch.head_names for part in name.split(".")))
    return model, args, features


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
def validate(model: nn.Module, loader: Any, clips: DecodedSplit, labels: list[str], device: str) -> dict[str, Any]:
    """Window accuracy and clip-level metrics, clips aggregated exactly as ``predict`` does."""
    from ..scores import clip_scores, softmax

    model.eval()
    window_probs = [np.zeros((len(pk), len(labels)), np.float32) for pk in clips.peaks]
    correct = total = 0
    loss_sum = 0.0
    seen = [0] * len(clips.peaks)
    for x, y, clip in loader:
        logits = model(x.to(device))["logits"].float().cpu()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
        for row, c in zip(softmax(logits.numpy()), clip.tolist()):
            window_probs[c][seen[c]] = row
            seen[c] += 1
    pred = [int(clip_scores(p, loud_windows(pk)).argmax()) for p, pk in zip(window_probs, clips.peaks)]
    rep = classification_report(np.array(clips.labels), np.array(pred), labels)
    rep.update(window_accuracy=correct / max(1, total), loss=loss_sum / max(1, total))
    return rep


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank() if world > 1 else 0), world


@dataclass
class Checkpoint:
    """Everything ``--resume`` needs to continue exactly: the run's config (the model is rebuilt from it,
    not from new command-line arguments), model, optimizer, scheduler, scaler, RNG states and history."""

    config: dict[str, Any]
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    scaler: dict[str, Any]
    epoch: int
    best: float
    bad_epochs: int
    history: list[dict[str, Any]]
    rng: dict[str, Any]

    def save(self, path: Path) -> None:
        # a kill mid-save keeps the previous checkpoint
        write_atomic(path, lambda f: torch.save(dataclasses.asdict(self), f))

    @classmethod
    def load(cls, path: Path, device: str) -> Checkpoint:
        ck = torch.load(path, map_location=device, weights_only=False)
        try:
            return cls(**{f.name: ck[f.name] for f in dataclasses.fields(cls)})
        except KeyError as e:
            raise ParameterError(f"{path}: not a musicgenre checkpoint (missing {e})") from None


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "loader": gen.get_state()}


def _set_rng_state(rng: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    gen.set_state(rng["loader"])


def train_one_epoch(net: nn.Module, loader: Any, opt: torch.optim.Optimizer, sched: Any, scaler: Any,
                    cfg: TrainConfig, device: str, desc: str | None) -> tuple[float, float]:
    """One pass over the training windows -> (mean loss, window accuracy). ``desc`` shows a progress bar."""
    use_amp = scaler.is_enabled()
    net.train()
    loss_sum, correct, seen = 0.0, 0, 0
    it: Any = loader
    if desc:
        from tqdm import tqdm

        it = tqdm(loader, desc=desc, unit="batch", file=sys.stderr)
    opt.zero_grad(set_to_none=True)
    for i, (x, y, _) in enumerate(it):
        x, y = x.to(device), y.to(device)
        with torch.autocast("cuda", enabled=use_amp):
            logits = net(x)["logits"]
            loss = F.cross_entropy(logits.float(), y)
        scaler.scale(loss / cfg.accumulate).backward()
        if (i + 1) % cfg.accumulate == 0 or i + 1 == len(loader):
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
                sched.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if desc:
            it.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    return loss_sum / max(1, seen), correct / max(1, seen)


def _resumed_config(cfg: TrainConfig, ck: Checkpoint) -> TrainConfig:
    """The checkpoint's own config; only where the run happens (output, device, workers) comes from now."""
    old = {"segment_seconds": "window_seconds"}  # checkpoints written before the window rename
    config = {old.get(k, k): v for k, v in ck.config.items()}
    saved = TrainConfig(**{**config, "out": cfg.out, "device": cfg.device, "workers": cfg.workers, "resume": True})
    if dataclasses.replace(cfg, resume=True) != saved:
        log.warning("--resume: continuing with the checkpoint's saved settings, not the new arguments")
    return saved


def train(cfg: TrainConfig, progress: bool = True, say: Any = None) -> dict[str, Any]:
    """Train ``cfg.architecture`` on ``cfg.data``; ``say(line)`` receives the per-epoch summaries."""
    from ..runtime.torch import resolve_device

    say = say or log.info
    rank, world = _distributed()
    device = resolve_device(cfg.device)
    if world > 1 and device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    ck = Checkpoint.load(ckpt_path, device) if cfg.resume and ckpt_path.is_file() else None
    if cfg.resume and ck is None:
        log.warning("%s: no checkpoint to resume from; starting fresh", ckpt_path)
    if ck is not None:
        cfg = _resumed_config(cfg, ck)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    ds: Dataset = load_dataset(cfg.data, kind=cfg.dataset_kind, split=cfg.split, seed=cfg.seed)
    labels = ds.labels
    if rank == 0:
        say(ds.summary())
    model, args, features = build_model(cfg, len(labels))
    show = progress and rank == 0 and sys.stderr.isatty()
    tr = decode_split(ds.split("train"), features, labels, "train", show)
    va = decode_split(ds.split("valid") or ds.split("test"), features, labels, "valid", show)
    if not tr.windows or not va.windows:
        raise ParameterError(f"{cfg.data}: the train and valid splits need at least one decodable clip each")
    train_set = WindowDataset(tr, True, cfg.augment, cfg.seed)
    valid_set = WindowDataset(va, False, False, cfg.seed)
    sampler: Any = torch.utils.data.DistributedSampler(train_set, seed=cfg.seed) if world > 1 else None
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=sampler is None,
                                               sampler=sampler, generator=gen, num_workers=cfg.workers,
                                               drop_last=len(train_set) > cfg.batch_size)
    valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=cfg.batch_size, num_workers=cfg.workers)

    model.to(device)
    net: nn.Module = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    sched = make_scheduler(cfg, opt, max(1, math.ceil(len(train_loader) / cfg.accumulate)))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.startswith("cuda"))
    history: list[dict[str, Any]] = []
    start, best, bad_epochs = 0, -1.0, 0
    if ck is not None:
        model.load_state_dict(ck.model)
        opt.load_state_dict(ck.optimizer)
        if sched is not None and ck.scheduler:
            sched.load_state_dict(ck.scheduler)
        scaler.load_state_dict(ck.scaler)
        _set_rng_state(ck.rng, gen)
        start, best, bad_epochs, history = ck.epoch + 1, ck.best, ck.bad_epochs, ck.history
        if rank == 0:
            say(f"resuming after epoch {start} (best valid macro-F1 {best:.3f})")

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        train_set.epoch = epoch
        if sampler is not None:
            sampler.set_epoch(epoch)
        loss, acc = train_one_epoch(net, train_loader, opt, sched, scaler, cfg, device,
                                    f"epoch {epoch + 1}/{cfg.epochs}" if show else None)
        val = validate(model, valid_loader, va, labels, device)
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val["macro_f1"])
        row = {"epoch": epoch + 1, "train_loss": loss, "train_accuracy": acc,
               "valid_loss": val["loss"], "valid_accuracy": val["accuracy"], "valid_macro_f1": val["macro_f1"],
               "valid_window_accuracy": val["window_accuracy"], "lr": opt.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 2)}
        history.append(row)
        improved = val["macro_f1"] > best
        best, bad_epochs = (val["macro_f1"], 0) if improved else (best, bad_epochs + 1)
        if rank == 0:
            say(f"epoch {epoch + 1}: train loss {loss:.3f} acc {acc:.3f} | "
                f"valid acc {val['accuracy']:.3f} macro-F1 {val['macro_f1']:.3f}" + (" *" if improved else ""))
            if improved:
                export_model(model, out, cfg, args, features, labels, {"valid": _brief(val), "epoch": epoch + 1})
            Checkpoint(dataclasses.asdict(cfg), model.state_dict(), opt.state_dict(),
                       sched.state_dict() if sched is not None else None, scaler.state_dict(), epoch, best,
                       bad_epochs, history, _rng_state(gen)).save(ckpt_path)
            write_history(history, out)
        if cfg.patience and bad_epochs >= cfg.patience:
            if rank == 0:
                say(f"early stopping: no improvement in {cfg.patience} epochs")
            break
    result = {"best_valid_macro_f1": best, "epochs_run": len(history), "skipped_clips": tr.failed + va.failed}
    if rank == 0 and ds.split("test"):
        from .evaluate import evaluate

        test = evaluate(out, ds.split("test"), labels, out / "test", device=cfg.device)
        card = read(out)
        card.replace(metrics={**card.get("metrics", {}), "test": _brief(test)}).save(out)
        result["test"] = _brief(test)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


def _brief(rep: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) for k, v in rep.items() if k in ("accuracy", "macro_f1", "window_accuracy")}


def export_model(model: nn.Module, out: Path, cfg: TrainConfig, args: dict[str, Any], features: FeatureConfig,
                 labels: list[str], metrics: dict[str, Any]) -> None:
    """Write the self-describing model directory (weights + config) that every command can load."""
    skip = tuple(getattr(model, "external_prefixes", ()))
    state = {k: v for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}
    self_contained = getattr(model, "self_contained_args", None)
    if callable(self_contained):  # e.g. a Hugging Face model: no path back to the checkpoint it started from
        args = self_contained(args, out)
    card = ModelCard(
        name=out.name, version="1", architecture=cfg.architecture, labels=tuple(labels), model_args=args,
        features=features,
        extra={"description": f"{cfg.architecture} trained with musicgenre on {Path(cfg.data).name}",
               "training": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("resume",)},
               "metrics": metrics},
    )
    card.save(out, state)


def write_history(history: list[dict[str, Any]], out: Path) -> None:
    import csv
    import io

    write_json(out / "history.json", history)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    write_atomic(out / "history.csv", buf.getvalue())
    from matplotlib.figure import Figure

    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.5), dpi=100)
    a, b = fig.subplots(1, 2)
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
    save_figure(fig, out / "learning_curve.png")
