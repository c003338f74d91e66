"""Backbone features of every (clip, degradation) cached on disk, so head experiments are cheap.

Windows are cut by ``windows.Windows``, the production feature path, so training windows are the
windows ``predict`` sees. For each window the cache keeps the backbone's penultimate embedding,
its tag logits, the max/mean-pooled mid-end it is computed from, and the window's peak
(``predict`` skips windows quieter than -60 dBFS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import write_atomic
from ..audio import load_audio
from ..data.corpus import Clip
from ..errors import MusicGenreError
from ..features import FeatureConfig
from ..loader import load_backbone
from ..windows import Windows
from .degrade import degrade

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipFeatures:
    """The windows of one clip under one condition: embeddings (n, d), tag logits (n, t), peaks (n,),
    pooled mid-end (n, 1506)."""

    emb: np.ndarray
    tags: np.ndarray
    peaks: np.ndarray
    pool: np.ndarray


def cache_path(cache: Path, backbone: str, condition: str, clip: Clip, offset: float = 0.0,
               cfg: FeatureConfig | None = None) -> Path:
    """Where one clip's features under one condition live; levelled windows (``cfg.level_db``) are kept apart."""
    folder = condition if offset == 0 else f"{condition}+{offset:g}s"
    level, span = (None, "") if cfg is None else (cfg.level_db, cfg.level_span)
    front = backbone if level is None else f"{backbone}@level{level:g}dB" + ("" if span == "window" else f"-{span}")
    return cache / front / folder / f"{clip.key}.npz"


def window_features(backbone: torch.nn.Module, mels: np.ndarray, batch: int = 2) -> dict[str, np.ndarray]:
    """(n, T, F) log-mel windows -> embeddings, tag logits, pooled mid-end (batches of 2 are fastest on CPU)."""
    out: dict[str, list[np.ndarray]] = {"emb": [], "tags": [], "pool": []}
    with torch.inference_mode():
        for i in range(0, len(mels), batch):
            p, e = backbone.features(torch.from_numpy(mels[i : i + batch]))  # type: ignore[operator]
            out["emb"].append(e.numpy())
            out["tags"].append(backbone.out(e).numpy())  # type: ignore[operator]
            out["pool"].append(p.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def _save(path: Path, arrays: dict[str, np.ndarray]) -> ClipFeatures:
    """Write one cache entry atomically (a killed run never leaves a half-written file); return what was stored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f32: dict[str, Any] = {k: v.astype(np.float32) for k, v in arrays.items()}
    write_atomic(path, lambda f: np.savez(f, **f32))
    return ClipFeatures(f32["emb"], f32["tags"], f32["peaks"], f32["pool"])


def _read(path: Path) -> ClipFeatures | None:
    """A cache entry, or None when it is missing, unreadable, or from before the pooled features were cached."""
    try:
        with np.load(path) as z:
            if "pool" not in z.files:
                return None
            return ClipFeatures(z["emb"], z["tags"], z["peaks"], z["pool"])
    except (OSError, ValueError):
        return None


# (clip, condition, offset) -> its (log-mel windows, peaks) from a store, or None: decode it
WindowSource = Callable[[Clip, str, float], "tuple[np.ndarray, np.ndarray] | None"]


def extract(clips: list[Clip], *, backbone: str, condition: str, cache: Path, offset: float = 0.0,
            cfg: FeatureConfig | None = None, model: Callable[[], torch.nn.Module] | None = None,
            windows: WindowSource | None = None) -> dict[str, ClipFeatures]:
    """Features of every clip under ``condition`` (computed once, then read from ``cache``), its windows cut
    from ``offset`` seconds on (0: ``predict``'s grid; other offsets are extra training crops).

    ``backbone`` names the pretrained backbone and the cache folder; ``model`` loads another network with the
    same outputs instead (a distilled student, ``train.distill``: ``backbone`` is then its cache name) and
    ``windows`` serves stored log-mel windows (the distillation's mel bank). A clip that cannot be decoded is
    logged and left out; the rest goes on.
    """
    cfg = cfg or FeatureConfig()
    net: torch.nn.Module | None = None
    out: dict[str, ClipFeatures] = {}
    t0, computed = time.perf_counter(), 0
    for clip in clips:
        path = cache_path(cache, backbone, condition, clip, offset, cfg)
        feats = _read(path)
        if feats is None:
            if net is None:
                net = load_backbone(backbone)[0] if model is None else model()
                assert hasattr(net, "features")  # the genre heads read MusiCNN taggers
            try:
                stored = None if windows is None else windows(clip, condition, offset)
                if stored is None:
                    y = degrade(load_audio(clip.path, sr=cfg.sr), cfg.sr, condition,
                                name=clip.key)[int(offset * cfg.sr) :]
                    stored = Windows((y, cfg.sr), cfg).all()
                mels, peaks = stored
            except MusicGenreError as e:
                log.warning("skipped %s: %s", clip.key, e)
                continue
            # batches of 2 are fastest for the full MusiCNN; a pruned student runs 2-3x faster in batches of 16
            feats = _save(path, {**window_features(net, mels, batch=2 if model is None else 16), "peaks": peaks})
            computed += 1
        out[clip.key] = feats
    if computed:
        log.info("%s/%s+%gs%s: computed %d clips in %.0f s", backbone, condition, offset,
                 "" if cfg.level_db is None else f" (levelled to {cfg.level_db:g} dB per {cfg.level_span})", computed,
                 time.perf_counter() - t0)
    return out
