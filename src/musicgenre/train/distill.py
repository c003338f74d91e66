"""Training the backbone on this CPU: a student MusiCNN distilled from the frozen one, hearing degraded copies.

A recipe's ``[backbone]`` section with ``train = "distill"`` runs this before the head (``recipe.build``):

- **student**: the teacher (the recipe's pretrained MusiCNN) with its provably constant channels pruned and its
  BatchNorms folded (``models.prune``), every weight trainable (the folded scales and shifts too); it stays in
  eval mode, so BatchNorm statistics and dropout never move and a step is a pure function of its batch.
- **data**: every clip of the recipe's sources outside the validation partitions (split ``train``), labelled
  or not, as a bank of log-mel windows on disk (:class:`MelBank`, cut by ``windows.Windows`` with the recipe's
  levelled front end): the clean copy and ``copies`` degraded ones (``train.degrade``'s TRAIN ranges). Built
  once, one file per clip and copy, written atomically: a killed build resumes where it stopped.
- **losses** per window: the student on a degraded copy (a ``clean_share`` of them clean) against the teacher on
  the clean copy: MSE of the pooled mid-end and the embedding (each feature scaled by the teacher's spread),
  binary KL of the 50 tags, and the genre cross-entropy of a head on the student's features for windows whose
  clip carries one of the recipe's labels (the head starts fitted on the teacher's features and trains along).
- **checkpoints** (nanoGPT style: model, head, optimizer, step, args) every ``save_every`` steps; a run resumes
  from its checkpoint and continues bit for bit: the batches and copies of step ``s`` come from
  ``default_rng((seed, s))``, the learning rate is a function of the step, nothing else is random.

The trained student is written as ``student.safetensors`` + ``student.json`` (teacher, front end, settings,
steps, wall time, clips, its id) in the checkpoint folder; ``load_student`` rebuilds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._io import write_atomic, write_json
from ..audio import load_audio
from ..data.corpus import Clip, read_emotify_clips, read_gtzan_clips
from ..errors import MusicGenreError, ParameterError
from ..features import FeatureConfig
from ..scores import loud_windows
from ..windows import Windows
from .degrade import check_condition, degrade
from .head import HeadParams

if TYPE_CHECKING:
    from ..features import FeatureConfig
    from ..models.prune import PrunedMusicnn


class Recipe(HeadParams, Protocol):
    """What distillation reads of a recipe (``train.recipe.Recipe``, a frozen dataclass, which imports this module
    to run it): the head's hyperparameters and these."""

    @property
    def name(self) -> str: ...
    @property
    def backbone(self) -> str: ...
    @property
    def features(self) -> str: ...
    @property
    def gtzan(self) -> tuple[str, ...]: ...
    @property
    def emotify(self) -> str: ...
    @property
    def emotify_labels(self) -> dict[str, str]: ...
    @property
    def cache(self) -> str: ...
    @property
    def distill(self) -> dict[str, Any]: ...
    @property
    def student(self) -> str: ...
    @property
    def feature_config(self) -> FeatureConfig: ...

log = logging.getLogger(__name__)

LAYERS = ("front", "mid", "back", "tags")  # which parts of the student train (see ``_layer_of``)
FEATURE_STD_FLOOR = 0.05  # as the head's standardisation (head.STD_FLOOR): dead channels are not blown up


@dataclass(frozen=True)
class DistillConfig:
    """A recipe's ``[backbone]`` section with ``train = "distill"`` (every key optional)."""

    steps: int = 900
    batch: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup: int = 50  # linear warm-up steps, then cosine decay to a tenth of ``lr``
    layers: tuple[str, ...] = LAYERS
    # degraded copies per clip, by condition; a condition listed twice is drawn twice (another seed)
    copies: tuple[str, ...] = ("room", "room", "phone", "mp3_64k")
    clean_share: float = 0.2  # the share of each batch the student hears clean
    feature_weight: float = 1.0  # pooled mid-end + embedding MSE
    tag_weight: float = 1.0  # tag KL
    genre_weight: float = 0.0  # genre cross-entropy on labelled clips
    seed: int = 0
    checkpoint: str = ""  # folder of the checkpoint and the student; "" -> CACHE/../distill/RECIPE-NAME
    save_every: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.save_every < 1:
            raise ParameterError("[backbone] steps, batch and save_every must be at least 1")
        if not self.lr > 0:
            raise ParameterError(f"[backbone] lr must be positive, not {self.lr}")
        if not 0 <= self.clean_share <= 1:
            raise ParameterError(f"[backbone] clean_share must lie in [0, 1], not {self.clean_share}")
        bad = [x for x in self.layers if x not in LAYERS]
        if bad or not self.layers:
            raise ParameterError(f"[backbone] layers {bad or '[]'}: use some of {', '.join(LAYERS)}")
        for c in self.copies:
            try:
                check_condition(c)
            except ValueError as e:
                raise ParameterError(f"[backbone] copies: {e}") from None
        if min(self.feature_weight, self.tag_weight, self.genre_weight) < 0:
            raise ParameterError("[backbone] loss weights must not be negative")

    @classmethod
    def from_section(cls, section: dict[str, Any], *, where: str = "[backbone]") -> DistillConfig:
        """The section as written in a recipe (``train`` already checked); an unknown key is a ParameterError."""
        raw = {k: v for k, v in section.items() if k != "train"}
        unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ParameterError(f"{where}: unknown [backbone] keys {', '.join(unknown)}")
        for key in ("layers", "copies"):
            if key in raw:
                raw[key] = tuple(raw[key])
        try:
            return cls(**raw)
        except (TypeError, ParameterError) as e:
            raise ParameterError(f"{where}: {e}") from None


# --- the bank of log-mel windows ----------------------------------------------------------------------------


def copy_labels(copies: tuple[str, ...]) -> list[str]:
    """Folder names of the degraded copies: a condition's first copy keeps its name (and the clip's seed, so it
    is the very copy the recipe's ``conditions`` use), a repeat is ``room#2``, ``room#3``, ..."""
    seen: dict[str, int] = {}
    out = []
    for c in copies:
        seen[c] = seen.get(c, 0) + 1
        out.append(c if seen[c] == 1 else f"{c}#{seen[c]}")
    return out


def front_name(cfg: FeatureConfig) -> str:
    """The front end's folder name: how the log-mel windows were levelled."""
    if cfg.level_db is None:
        return "decoded"
    return f"level{cfg.level_db:g}dB" + ("" if cfg.level_span == "window" else f"-{cfg.level_span}")


class MelBank:
    """Log-mel windows (float32) and peaks of (clip, copy) pairs, one ``.npz`` per pair under
    ``root/FRONT/COPY/CLIP-KEY.npz``; a copy ``cond#k`` is ``cond`` seeded by ``CLIP-KEY#k``."""

    def __init__(self, root: Path, cfg: FeatureConfig) -> None:
        self.root, self.cfg = Path(root) / front_name(cfg), cfg

    def path(self, clip: Clip, copy: str) -> Path:
        return self.root / copy / f"{clip.key}.npz"

    def read(self, clip: Clip, copy: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A stored pair, or None when missing or unreadable."""
        try:
            with np.load(self.path(clip, copy)) as z:
                return z["mels"], z["peaks"]
        except (OSError, ValueError, KeyError):
            return None

    def windows(self, clip: Clip, copy: str, audio: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The pair, made and stored when missing (``audio``: the clip already decoded at the front end's rate).
        Raises ``MusicGenreError`` when the clip cannot be decoded."""
        got = self.read(clip, copy)
        if got is not None:
            return got
        condition, _, k = copy.partition("#")
        y = load_audio(clip.path, sr=self.cfg.sr) if audio is None else audio
        y = degrade(y, self.cfg.sr, condition, name=clip.key if not k else f"{clip.key}#{k}")
        mels, peaks = Windows((y, self.cfg.sr), self.cfg).all()
        path = self.path(clip, copy)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f: np.savez(f, mels=mels.astype(np.float32), peaks=peaks.astype(np.float32)))
        return mels.astype(np.float32), peaks.astype(np.float32)

    def fill(self, clips: list[Clip], copies: list[str], *, progress: bool = False, workers: int = 1) -> list[Clip]:
        """Store every (clip, copy) pair that is missing (decoding each clip once, ``workers`` processes);
        returns the clips that could be decoded. A clip that fails is logged and left out; the rest goes on."""
        jobs = [(self, clip, [c for c in copies if not self.path(clip, c).is_file()]) for clip in clips]
        if workers > 1 and sum(bool(m) for _, _, m in jobs) > 1:
            from multiprocessing import get_context

            with get_context("spawn").Pool(workers) as pool:
                done = list(_bar(pool.imap(_fill_one, jobs), "mel bank", "clip", progress, total=len(jobs)))
        else:
            done = [_fill_one(job) for job in _bar(jobs, "mel bank", "clip", progress)]
        for clip, err in zip(clips, done):
            if err:
                log.warning("skipped %s: %s", clip.key, err)
        return [clip for clip, err in zip(clips, done) if not err]


def _fill_one(job: tuple[MelBank, Clip, list[str]]) -> str:
    """One clip's missing copies (a worker's job): "" when done, else why it failed."""
    bank, clip, missing = job
    try:
        audio = load_audio(clip.path, sr=bank.cfg.sr) if missing else None
        for c in missing:
            bank.windows(clip, c, audio)
    except MusicGenreError as e:
        return str(e)
    return ""


def _bar(items: Any, desc: str, unit: str, progress: bool, **kw: Any) -> Any:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0,
                **kw)


# --- the student ---------------------------------------------------------------------------------------------


def pruned_backbone(backbone: str) -> PrunedMusicnn:
    """The recipe's pretrained MusiCNN, pruned (eval mode, BatchNorms folded)."""
    from ..loader import load_backbone
    from ..models.musicnn import Musicnn
    from ..models.prune import PrunedMusicnn, prune_constant_channels

    net = load_backbone(backbone)[0]
    if not isinstance(net, Musicnn):
        raise ParameterError(f"backbone {backbone!r} is not a MusiCNN: only a MusiCNN is distilled")
    pruned = prune_constant_channels(net.eval())
    assert isinstance(pruned, PrunedMusicnn)
    return pruned


def make_trainable(net: PrunedMusicnn) -> PrunedMusicnn:
    """Turn the folded BatchNorms' scales and shifts (and the mid-end's folded edge terms) into parameters, in
    place: the state dict keeps its keys, so a student loads into a freshly pruned backbone."""
    for module in net.modules():
        for name in ("scale", "shift", "edge"):
            buf = module._buffers.get(name)
            if buf is not None and buf.is_floating_point():
                del module._buffers[name]
                module.register_parameter(name, nn.Parameter(buf.detach().clone()))
    return net.eval()


def _layer_of(name: str) -> str:
    if name.startswith(("input_bn.", "frontend.")):
        return "front"
    if name.startswith("mid."):
        return "mid"
    if name.startswith("out."):
        return "tags"
    return "back"  # pool_bn, dense, dense_bn


def make_student(backbone: str, layers: tuple[str, ...] = LAYERS) -> PrunedMusicnn:
    """The pruned teacher with the named ``layers`` trainable (the others frozen), in eval mode."""
    net = make_trainable(pruned_backbone(backbone))
    for name, p in net.named_parameters():
        p.requires_grad_(_layer_of(name) in layers)
    return net


def load_student(folder: str | Path) -> PrunedMusicnn:
    """A student written by :func:`distill` (``student.json`` + ``student.safetensors``), eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        card = json.loads((folder / "student.json").read_text())
        state = load_file(folder / "student.safetensors")
    except (OSError, ValueError) as e:
        raise ParameterError(f"{folder}: not a distilled student ({e})") from None
    net = make_student(card["teacher"])
    net.load_state_dict(state)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def student_id(folder: str | Path) -> str:
    """The student's id (its weights' sha256, 12 digits): names its feature cache."""
    try:
        return str(json.loads((Path(folder) / "student.json").read_text())["id"])
    except (OSError, ValueError, KeyError) as e:
        raise ParameterError(f"{folder}: not a distilled student ({e})") from None


def outputs(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(batch, T, F) log-mel -> (pooled mid-end, embedding, tag logits)."""
    pool, emb = net.features(x)  # type: ignore[operator]
    return pool, emb, net.out(emb)  # type: ignore[operator]


# --- what the student learns from ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DistillData:
    """Every loud clean window of the distillation clips: its copies' log-mel, the teacher's outputs on the clean
    copy, and the genre label index (-1: the clip has none of the model's labels)."""

    mels: np.ndarray  # (1 + copies, windows, T, F) float32; copy 0 is clean
    loud: np.ndarray  # (1 + copies, windows) bool
    pool: np.ndarray  # (windows, 1506) teacher
    emb: np.ndarray  # (windows, 200) teacher
    tags: np.ndarray  # (windows, n_tags) teacher logits
    label: np.ndarray  # (windows,) int
    clips: tuple[str, ...] = ()  # clip keys, for the card
    # (1 + copies, windows, live front channels, T): the frozen front end's outputs, when the front does not train
    front: np.ndarray | None = None


def front_outputs(net: PrunedMusicnn, mels: np.ndarray, batch: int = 32, progress: bool = False) -> np.ndarray:
    """The (pruned) front end's live outputs of (copies, n, T, F) windows: (copies, n, channels, T) float32."""
    flat = mels.reshape(-1, *mels.shape[2:])
    parts = []
    with torch.inference_mode():
        for i in _bar(range(0, len(flat), batch), "front end", "batch", progress):
            parts.append(net.front(torch.from_numpy(flat[i : i + batch])).numpy())
    out = np.concatenate(parts).astype(np.float32)
    return out.reshape(*mels.shape[:2], *out.shape[1:])


def cached_front(bank: MelBank, teacher: str, net: PrunedMusicnn, data: DistillData, copies: list[str],
                 *, progress: bool = False) -> np.ndarray:
    """``front_outputs`` of ``data`` stored beside the bank (one file per teacher, clip list and copies)."""
    key = hashlib.sha256(json.dumps([teacher, list(data.clips), copies]).encode()).hexdigest()[:12]
    path = bank.root / f"front-{teacher}-{key}.npy"
    try:
        front = np.load(path)
        if front.shape[:2] == data.mels.shape[:2]:
            return front
    except (OSError, ValueError):
        pass
    front = front_outputs(net, data.mels, progress=progress)
    write_atomic(path, lambda f: np.save(f, front))
    return front


def teacher_outputs(teacher: nn.Module, mels: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """The frozen teacher on (n, T, F) windows -> pool, emb, tags (float32)."""
    out: dict[str, list[np.ndarray]] = {"pool": [], "emb": [], "tags": []}
    with torch.inference_mode():
        for i in range(0, len(mels), batch):
            p, e, t = outputs(teacher, torch.from_numpy(mels[i : i + batch]))
            out["pool"].append(p.numpy())
            out["emb"].append(e.numpy())
            out["tags"].append(t.numpy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def assemble(bank: MelBank, clips: list[Clip], copies: list[str], labels: tuple[str, ...], teacher: nn.Module,
             *, progress: bool = False, workers: int = 1) -> DistillData:
    """The bank's windows of ``clips`` (made where missing) and the teacher's targets, loud clean windows only."""
    clips = bank.fill(clips, ["clean", *copies], progress=progress, workers=workers)
    mels: list[list[np.ndarray]] = [[] for _ in range(1 + len(copies))]
    loud: list[list[np.ndarray]] = [[] for _ in range(1 + len(copies))]
    label: list[np.ndarray] = []
    kept: list[str] = []
    for clip in clips:
        pairs = [bank.windows(clip, c) for c in ["clean", *copies]]
        n = min(len(m) for m, _ in pairs)
        keep = loud_windows(pairs[0][1][:n])
        if not keep.any():
            continue
        kept.append(clip.key)
        for i, (m, pk) in enumerate(pairs):
            mels[i].append(m[:n][keep])
            loud[i].append(loud_windows(pk[:n])[keep])
        label.append(np.full(int(keep.sum()), labels.index(clip.label) if clip.label in labels else -1))
    if not kept:
        raise ParameterError("no loud window in the distillation clips: is the data where the recipe says?")
    stacked = np.stack([np.concatenate(m) for m in mels])
    t = teacher_outputs(teacher, stacked[0])
    return DistillData(stacked, np.stack([np.concatenate(x) for x in loud]), t["pool"], t["emb"], t["tags"],
                       np.concatenate(label), tuple(kept))


def distill_clips(recipe: Recipe) -> list[Clip]:
    """The recipe's clips outside the validation partitions (split ``train``), labelled or not: Emotify clips
    whose label is not the model's keep the label "" (they serve the distillation losses, not the genre loss)."""
    clips = read_gtzan_clips([Path(p) for p in recipe.gtzan]) if recipe.gtzan else []
    if recipe.emotify:
        mapping = {k: v for k, v in recipe.emotify_labels.items() if v}
        clips += read_emotify_clips(Path(recipe.emotify), mapping)
    return [c if c.label in recipe.labels else dataclasses.replace(c, label="") for c in clips
            if c.split == "train"]


# --- the training loop ---------------------------------------------------------------------------------------


def learning_rate(cfg: DistillConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``lr`` to ``lr / 10`` at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, t))))


def batch_plan(cfg: DistillConfig, data: DistillData, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Step ``step``'s windows (epochs of a seeded permutation) and the copy each is heard as (0: clean; a
    degraded copy that is silent falls back to clean). A function of (seed, step) only."""
    n, n_copies = data.loud.shape[1], data.loud.shape[0] - 1
    start = step * cfg.batch
    idx: list[int] = []
    while len(idx) < min(cfg.batch, n):
        epoch, pos = divmod(start + len(idx), n)
        perm = np.random.default_rng((cfg.seed, 0, epoch)).permutation(n)
        idx.extend(perm[pos : pos + min(cfg.batch, n) - len(idx)].tolist())
    rows = np.array(idx)
    rng = np.random.default_rng((cfg.seed, 1, step))
    degraded = rng.random(len(rows)) >= cfg.clean_share
    pick = 1 + rng.integers(max(1, n_copies), size=len(rows)) if n_copies else np.zeros(len(rows), int)
    copy = np.where(degraded & (n_copies > 0), pick, 0)
    copy = np.where(data.loud[copy, rows], copy, 0)
    return rows, copy


@dataclass
class Losses:
    """One batch's weighted loss and its parts (floats, for the progress line and the history)."""

    total: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


def batch_loss(cfg: DistillConfig, net: nn.Module, head: nn.Module | None, data: DistillData, step: int,
               scales: tuple[torch.Tensor, torch.Tensor], head_parts: tuple[str, ...],
               class_weight: torch.Tensor | None) -> Losses:
    """The loss of step ``step``'s batch (see the module docstring)."""
    rows, copy = batch_plan(cfg, data, step)
    if data.front is not None and "front" not in cfg.layers:  # the frozen front end's stored outputs
        pool, emb = net.from_front(torch.from_numpy(data.front[copy, rows]))  # type: ignore[operator]
        tags = net.out(emb)  # type: ignore[operator]
    else:
        pool, emb, tags = outputs(net, torch.from_numpy(data.mels[copy, rows]))
    t_pool, t_emb, t_tags = (torch.from_numpy(a[rows]) for a in (data.pool, data.emb, data.tags))
    parts: dict[str, torch.Tensor] = {}
    if cfg.feature_weight:
        parts["features"] = (((pool - t_pool) / scales[0]) ** 2).mean() + (((emb - t_emb) / scales[1]) ** 2).mean()
    if cfg.tag_weight:
        p = torch.sigmoid(t_tags)
        entropy = F.binary_cross_entropy(p, p, reduction="none")  # the KL's constant part: 0 at a perfect match
        parts["tags"] = (F.binary_cross_entropy_with_logits(tags, p, reduction="none") - entropy).mean()
    labelled = torch.from_numpy(data.label[rows] >= 0)
    if cfg.genre_weight and head is not None and bool(labelled.any()):
        arrays = {"pool": pool, "embedding": emb, "tags": tags}
        z = head(torch.cat([arrays[k] for k in head_parts], dim=1)[labelled])
        parts["genre"] = F.cross_entropy(z, torch.from_numpy(data.label[rows])[labelled], weight=class_weight)
    weights = {"features": cfg.feature_weight, "tags": cfg.tag_weight, "genre": cfg.genre_weight}
    total = sum((weights[k] * v for k, v in parts.items()), torch.zeros(()))
    return Losses(total, {k: float(v.detach()) for k, v in parts.items()})


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


CHECKPOINT = "checkpoint.pt"


def _args_differ(saved: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """The settings that change the weights and differ between a saved run and ``cfg``."""
    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, (tuple, list)) else v

    now = dataclasses.asdict(cfg)
    skip = ("checkpoint", "save_every")  # where and how often it saves: no effect on the weights
    return sorted(k for k in now if k not in skip and plain(now[k]) != plain(saved.get(k)))


def distill(cfg: DistillConfig, data: DistillData, *, teacher: str, folder: Path, features: FeatureConfig,
            head: nn.Module | None = None, head_parts: tuple[str, ...] = ("embedding", "tags"),
            class_weight: torch.Tensor | None = None, progress: bool = False,
            stop_after: int | None = None) -> dict[str, Any]:
    """Train the student of ``teacher`` on ``data``, checkpointing in ``folder`` (resumed when a checkpoint of
    the same settings is there); ``head``: the genre head for the genre loss (trained along).
    ``stop_after`` ends this call after that many steps in all (an interruption: the checkpoint stays, the
    student is not written). Returns the card written to ``folder/student.json`` (or the checkpoint's state)."""
    folder.mkdir(parents=True, exist_ok=True)
    net = make_student(teacher, cfg.layers)
    if "front" not in cfg.layers and data.front is None:  # the front end does not train: run it once
        data = dataclasses.replace(data, front=front_outputs(net, data.mels))
    torch.manual_seed(cfg.seed)  # nothing here draws from torch's generator; set for any layer that would
    params = [p for p in net.parameters() if p.requires_grad]
    if head is not None and cfg.genre_weight:
        head.eval()  # its dropout stays off: a step is a function of its batch
        params += [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, wall = 0, [], 0.0
    ckpt = folder / CHECKPOINT
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        differ = _args_differ(state["args"], cfg)
        if differ:
            raise ParameterError(f"{ckpt}: a checkpoint of other settings ({', '.join(differ)}); delete {folder} "
                                 "or give the backbone section another checkpoint folder")
        net.load_state_dict(state["model"])
        if head is not None and state.get("head") is not None:
            head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        start, history, wall = state["step"], state["history"], state["wall_s"]
        log.info("%s: resuming at step %d of %d", ckpt, start, cfg.steps)
    scales = (torch.from_numpy(data.pool.std(0).clip(FEATURE_STD_FLOOR)),
              torch.from_numpy(data.emb.std(0).clip(FEATURE_STD_FLOOR)))

    def save(step: int) -> None:
        state = {"model": net.state_dict(), "head": None if head is None else head.state_dict(),
                 "optimizer": opt.state_dict(), "step": step, "args": dataclasses.asdict(cfg), "history": history,
                 "wall_s": round(wall, 1)}
        write_atomic(ckpt, lambda f: torch.save(state, f))

    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = _bar(range(start, end), "distilling", "step", progress, initial=start, total=cfg.steps)
    with _deterministic():
        for step in bar:
            t0 = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step)
            loss = batch_loss(cfg, net, head, data, step, scales, head_parts, class_weight)
            opt.zero_grad(set_to_none=True)
            loss.total.backward()
            opt.step()
            wall += time.perf_counter() - t0
            history.append({"step": step + 1, "loss": round(float(loss.total.detach()), 6),
                            **{k: round(v, 6) for k, v in loss.parts.items()}})
            if progress:
                bar.set_postfix(loss=f"{float(loss.total.detach()):.4f}", refresh=False,  # shown at the bar's pace
                                **{k: f"{v:.4f}" for k, v in loss.parts.items()})
            if (step + 1) % cfg.save_every == 0 or step + 1 == end:
                save(step + 1)
    if end < cfg.steps:
        return {"step": end, "history": history}
    return write_student(net, folder, cfg=cfg, teacher=teacher, features=features, data=data, history=history,
                         wall=wall)


def write_student(net: nn.Module, folder: Path, *, cfg: DistillConfig, teacher: str, features: FeatureConfig,
                  data: DistillData, history: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """``student.safetensors`` and its card ``student.json`` (what it was distilled from, on what, how long)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    path = folder / "student.safetensors"
    save_file(state, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    card = {
        "teacher": teacher,
        "id": digest[:12],
        "sha256": digest,
        "features": features.to_dict(),
        "distill": dataclasses.asdict(cfg),
        "clips": len(data.clips),
        "windows": int(data.mels.shape[1]),
        "labelled_windows": int((data.label >= 0).sum()),
        "wall_s": round(wall, 1),
        "final_loss": history[-1] if history else None,
        "trained_on": "the recipe's clips outside the validation partitions (split train), labelled or not",
    }
    write_json(folder / "student.json", card)
    return card


def checkpoint_folder(recipe: Recipe, cfg: DistillConfig) -> Path:
    """The section's ``checkpoint`` (relative paths: to the recipe's cache's parent), else
    ``CACHE/../distill/RECIPE-NAME``."""
    base = Path(recipe.cache).parent
    if cfg.checkpoint:
        p = Path(cfg.checkpoint)
        return p if p.is_absolute() else base / p
    return base / "distill" / recipe.name


def train_student(recipe: Recipe, *, progress: bool = True, stop_after: int | None = None, workers: int = 1
                  ) -> Path:
    """The recipe's ``[backbone]`` distillation, end to end (bank, teacher targets, genre head, training); returns
    the folder of the student (already trained there with the same settings: nothing is redone). ``workers``:
    processes that build the mel bank."""
    cfg = DistillConfig.from_section(recipe.distill)
    folder = checkpoint_folder(recipe, cfg)
    if (folder / "student.json").is_file():
        card = json.loads((folder / "student.json").read_text())
        if not _args_differ(card["distill"], cfg):
            log.info("%s: student already distilled (%s steps, %.0f s)", folder, cfg.steps, card["wall_s"])
            return folder
        raise ParameterError(f"{folder}: holds a student of other settings; delete it or name another checkpoint")
    features = recipe.feature_config
    teacher = pruned_backbone(recipe.backbone)
    bank = MelBank(Path(recipe.cache).parent / "mels", features)
    clips = distill_clips(recipe)
    copies = copy_labels(cfg.copies)
    data = assemble(bank, clips, copies, recipe.labels, teacher, progress=progress, workers=workers)
    if "front" not in cfg.layers:
        data = dataclasses.replace(data, front=cached_front(bank, recipe.backbone, teacher, data, ["clean", *copies],
                                                            progress=progress))
    log.info("distilling %s on %d clips (%d windows, %d labelled), copies %s", recipe.backbone, len(data.clips),
             data.mels.shape[1], int((data.label >= 0).sum()), ", ".join(cfg.copies))
    head, weight = None, None
    parts: tuple[str, ...] = ("embedding", "tags")
    if cfg.genre_weight:
        head, parts, weight = genre_head(recipe, data)
    result = distill(cfg, data, teacher=recipe.backbone, folder=folder, features=features, head=head,
                     head_parts=parts, class_weight=weight, progress=progress, stop_after=stop_after)
    if "id" not in result:
        raise ParameterError(f"distillation stopped at step {result['step']} of {cfg.steps}; run again to resume")
    return folder


def genre_head(recipe: Recipe, data: DistillData) -> tuple[nn.Module, tuple[str, ...], torch.Tensor]:
    """The genre loss's head: one MLP of the recipe's shape fitted (head.train_head) on the teacher's features
    of the labelled windows; its input parts and class weights."""
    from ..models.genre import feature_parts
    from .head import class_weights, train_head

    parts = tuple(feature_parts(recipe.features))
    keep = data.label >= 0
    arrays = {"pool": data.pool, "embedding": data.emb, "tags": data.tags}
    windows = _Windows(np.concatenate([arrays[p][keep] for p in parts], axis=1), data.label[keep])
    one = dataclasses.replace(recipe, members=1, gate="")  # type: ignore[type-var]  # a Recipe dataclass
    head, _ = train_head(one, windows)
    return head, parts, class_weights(recipe, data.label[keep])


@dataclass(frozen=True)
class _Windows:
    x: np.ndarray
    y: np.ndarray


# --- features of a student, for the recipe's validation run ----------------------------------------------------


def student_source(recipe: Recipe) -> tuple[Callable[[], nn.Module], Callable[[Clip, str, float],
                                                                             tuple[np.ndarray, np.ndarray] | None]]:
    """What ``embed.extract`` needs to compute a student's features: the student's loader, and its windows from
    the mel bank (stored there when missing, so the next student reuses them; offset crops are not banked)."""
    assert recipe.student
    bank = MelBank(Path(recipe.cache).parent / "mels", recipe.feature_config)

    def windows(clip: Clip, condition: str, offset: float) -> tuple[np.ndarray, np.ndarray] | None:
        return bank.windows(clip, condition) if offset == 0 else None

    return lambda: load_student(recipe.student), windows
