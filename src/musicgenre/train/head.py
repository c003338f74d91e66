"""Fitting the recipe's genre head on window features: standardise -> MLP (or several, averaged), AdamW
with a cosine schedule, the class-balanced (mixup) loss, on one thread so the weights are reproducible.

The recipe around it (corpus, window features, validation protocol, the model writer) is
:mod:`musicgenre.train.recipe`; this module does not import it: a head's hyperparameters and data are
anything shaped like a recipe and a window set (:class:`HeadParams`, :class:`Windowed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError

# Smallest spread a head's standardisation divides by. The backbone's features are batch-normalised (unit
# scale; the embedding and tags spread >= 0.07), but most of MusiCNN's pooled front-end channels are dead:
# constant to 1e-6 over the training set. Dividing by that spread would turn rounding noise (ONNX Runtime
# vs torch) or a rare activation into inputs of 1e6.
STD_FLOOR = 0.05


class HeadParams(Protocol):
    """The hyperparameters a head is fitted with (``recipe.Recipe`` has them)."""

    @property
    def labels(self) -> tuple[str, ...]: ...
    @property
    def hidden(self) -> int: ...
    @property
    def dropout(self) -> float: ...
    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def balance(self) -> str: ...
    @property
    def mixup(self) -> float: ...
    @property
    def members(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def gate(self) -> str: ...


class Windowed(Protocol):
    """Window features (windows, d) and their label indices (windows,) (``recipe.WindowSet`` has them)."""

    @property
    def x(self) -> np.ndarray: ...
    @property
    def y(self) -> np.ndarray: ...


def train_head(recipe: HeadParams, data: Windowed) -> tuple[torch.nn.Module, list[float]]:
    """Fit the head (standardise -> MLP, or ``members`` of them) on window features; returns it and the
    loss per epoch (of the first member).

    Runs on one thread: the head is tiny, and a fixed reduction order makes the weights
    bit-for-bit reproducible (two threads change the last bits, hence the sha256). The caller's thread
    setting is restored afterwards.
    """
    from ..runtime.torch import torch_threads

    if recipe.gate:
        return _train_gated(recipe, data)
    with torch_threads(1):
        if recipe.members == 1:
            return _train_head(recipe, data, recipe.seed)
        from ..models.genre import MeanLogits

        trained = [_train_head(recipe, data, recipe.seed + i) for i in range(recipe.members)]
        return MeanLogits([h for h, _ in trained]).eval(), trained[0][1]


@dataclass(frozen=True)
class _Windows:
    x: np.ndarray
    y: np.ndarray


def _train_gated(recipe: HeadParams, data: Windowed) -> tuple[torch.nn.Module, list[float]]:
    """``GatedHeads`` for ``recipe.gate``: the genre head on the other labels' windows only (the head the recipe
    without the gate label trains, bit for bit), the gate head on every window with every label."""
    from ..models.genre import GatedHeads

    index = recipe.labels.index(recipe.gate)
    keep = data.y != index
    params = cast(Any, recipe)  # a dataclass (recipe.Recipe): copied with other labels
    others = replace(params, labels=tuple(x for x in recipe.labels if x != recipe.gate), gate="")
    genres, losses = train_head(others, _Windows(data.x[keep], data.y[keep] - (data.y[keep] > index)))
    gate, _ = train_head(replace(params, gate=""), data)
    return GatedHeads(genres, gate, index).eval(), losses


def _train_head(recipe: HeadParams, data: Windowed, seed: int) -> tuple[torch.nn.Module, list[float]]:
    torch.manual_seed(seed)
    head = fresh_head(recipe, data)
    return head, fit_windows(recipe, head, data, np.random.default_rng(seed))


def fresh_head(recipe: HeadParams, data: Windowed) -> torch.nn.Module:
    """An untrained head of the recipe's shape whose standardisation holds the statistics of ``data``."""
    from ..models.genre import Standardize, make_head

    x = torch.from_numpy(data.x).float()
    head = make_head(x.shape[1], len(recipe.labels), hidden=recipe.hidden, dropout=recipe.dropout)
    assert isinstance(head, torch.nn.Sequential)
    std = head[0]
    assert isinstance(std, Standardize)
    std.mean.copy_(x.mean(0))
    std.std.copy_(x.std(0).clamp_min(STD_FLOOR))
    return head


def fit_windows(recipe: HeadParams, model: torch.nn.Module, data: Windowed, rng: np.random.Generator, *,
                params: Iterable[torch.nn.Parameter] | Iterable[dict[str, object]] | None = None,
                extra: Callable[[int], torch.Tensor] | None = None) -> list[float]:
    """The recipe's training loop on window features: AdamW with a cosine schedule over ``epochs``, the
    class-balanced (mixup) loss; ``params`` overrides the optimiser's parameter groups and ``extra(batch size)``
    adds a loss term per batch (the benchmarks' variants). Leaves ``model`` in eval mode; returns the loss per
    epoch."""
    x, y = torch.from_numpy(data.x).float(), torch.from_numpy(data.y).long()
    weight = class_weights(recipe, data.y)
    opt = torch.optim.AdamW(model.parameters() if params is None else params, lr=recipe.lr,  # type: ignore[arg-type]
                            weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    losses = []
    model.train()
    for _ in range(recipe.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            loss = mixup_loss(model, x[idx], y[idx], weight, recipe.mixup, rng)
            if extra is not None:
                loss = loss + extra(len(idx))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        losses.append(total / len(x))
    model.eval()
    return losses


def class_weights(recipe: HeadParams, y: np.ndarray) -> torch.Tensor:
    """The loss weight of each label: with ``balance = "class"`` every label present weighs the same."""
    counts = np.bincount(y, minlength=len(recipe.labels)).astype(float)
    if recipe.balance == "class":
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
    elif recipe.balance == "none":
        w = np.ones(len(recipe.labels))
    else:
        raise ParameterError(f"unknown balance {recipe.balance!r}: use class or none")
    return torch.tensor(w, dtype=torch.float32)


def mixup_loss(model: Callable[[torch.Tensor], torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
               weight: torch.Tensor, alpha: float, rng: np.random.Generator) -> torch.Tensor:
    """Weighted cross-entropy of ``model`` on a batch, with Beta(alpha, alpha) mixup of the inputs when alpha > 0."""
    if alpha <= 0:
        return F.cross_entropy(model(xb), yb, weight=weight)
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(len(xb))
    logits = model(lam * xb + (1 - lam) * xb[perm])
    return lam * F.cross_entropy(logits, yb, weight=weight) + (1 - lam) * F.cross_entropy(logits, yb[perm],
                                                                                          weight=weight)


def window_logits(head: torch.nn.Module, data: Windowed) -> np.ndarray:
    """The head's logits for every window of ``data``: (windows, L)."""
    return head_function(head)(data.x)


def head_function(head: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """A trained head as a plain function: (windows, features) array -> (windows, L) logits."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return head(torch.from_numpy(x).float()).numpy()

    return run
