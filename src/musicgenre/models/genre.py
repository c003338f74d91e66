"""Genre models built on the pretrained MusiCNN taggers shipped in ``weights/backbones``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from ._registry import register_model
from .musicnn import Musicnn

FEATURE_PARTS = ("pool", "embedding", "tags")  # what a genre head may read from the backbone's one pass


def feature_parts(features: str) -> tuple[str, ...]:
    """``"embedding+tags"`` -> ("embedding", "tags"): the parts a head reads, concatenated in this order."""
    parts = tuple(features.split("+"))
    if any(p not in FEATURE_PARTS for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"unknown feature set {features!r}: join {', '.join(FEATURE_PARTS)} with '+'")
    return parts


def backbone_graph(name: str) -> Musicnn:
    """The (untrained) graph of the shipped tagger ``name`` (``MSD_musicnn``, ``MTT_musicnn``): the loader
    fills its weights from ``weights/backbones/<name>`` (``loader.fill_pretrained``)."""
    family = name.rpartition("_")[2]
    if family != "musicnn":  # the head reads the MusiCNN mid-end; the VGG taggers have none
        raise ParameterError(f"unknown backbone {name!r}: a genre head reads a MusiCNN tagger "
                             "(MSD_musicnn, MTT_musicnn)")
    return Musicnn(n_tags=50)


class MusicnnGenre(nn.Module):
    """One pretrained MusiCNN tagger (frozen) -> genre head on [pooled mid-end,] penultimate embedding[, tag logits].

    Exactly one backbone pass per 3-s window: the genre logits and the tags come from the same
    pass (the tag layer is a linear map of the embedding). The backbone was chosen on validation
    data (docs/experiments.md); its weights come from the package (``pretrained_parts``, filled by the
    loader after construction), the head's from the model file.
    """

    external_prefixes = ("backbone.",)  # these weights come from the package, not the model file

    def __init__(self, n_labels: int, backbone: str = "MSD_musicnn", hidden: int = 0, dropout: float = 0.0,
                 features: str = "embedding+tags", members: int = 1, gate_index: int | None = None) -> None:
        super().__init__()
        self.parts = feature_parts(features)
        self.backbone = backbone_graph(backbone)
        self.pretrained_parts = {"backbone": backbone}
        self.tag_names: list[str] = []  # the backbone's tag vocabulary, set with its weights
        sizes = {"pool": self.backbone.dense.in_features, "embedding": self.backbone.dense.out_features,
                 "tags": self.backbone.out.out_features}
        dim = sum(sizes[p] for p in self.parts)
        self.head = make_head(dim, n_labels, hidden=hidden, dropout=dropout, members=members, gate_index=gate_index)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(batch, time, n_mels) log-mel -> genre logits (batch, n_labels), tag logits (batch, n_tags) and the
        backbone's penultimate embedding (batch, 200): what the library stores for learning and similarity."""
        pool, emb = self.backbone.features(x)
        tags = self.backbone.out(emb)
        part = {"pool": pool, "embedding": emb, "tags": tags}
        return {"logits": self.head(torch.cat([part[p] for p in self.parts], dim=1)), "tags": tags, "embedding": emb}


def make_head(dim: int, n_labels: int, *, hidden: int = 0, dropout: float = 0.0, members: int = 1,
              gate_index: int | None = None) -> nn.Module:
    """Standardise (statistics from the training set) -> optional hidden layer -> linear; with
    ``members`` > 1, that many such heads (trained from different seeds) whose logits are averaged; with
    ``gate_index``, ``GatedHeads`` of two such heads (the label at ``gate_index`` decided by a gate)."""
    if gate_index is not None:
        if not 0 <= gate_index < n_labels:
            raise ParameterError(f"gate_index {gate_index} outside the {n_labels} labels")
        return GatedHeads(make_head(dim, n_labels - 1, hidden=hidden, dropout=dropout, members=members),
                          make_head(dim, n_labels, hidden=hidden, dropout=dropout, members=members), gate_index)
    if members > 1:
        return MeanLogits([make_head(dim, n_labels, hidden=hidden, dropout=dropout) for _ in range(members)])
    layers: list[nn.Module] = [Standardize(dim)]
    if hidden:
        layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_labels)]
    else:
        layers += [nn.Dropout(dropout), nn.Linear(dim, n_labels)]
    return nn.Sequential(*layers)


class MeanLogits(nn.Module):
    """A small ensemble of heads on the same features: the mean of their logits (one backbone pass)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


class GatedHeads(nn.Module):
    """One label added to a head without retraining it: ``gate`` scores every label, the added one (at
    ``index``) included, and gives that label's probability g; ``genres`` scores the other labels, whose
    probabilities are scaled by 1 - g. The output is the log of that distribution (softmax gives it back).

    The genres keep their own head, trained without the added label, so adding electronic changes a GTZAN
    call only where the gate says electronic (an 11-way head trained on everything moved other GTZAN calls
    too: docs/experiments.md).
    """

    def __init__(self, genres: nn.Module, gate: nn.Module, index: int) -> None:
        super().__init__()
        self.genres, self.gate, self.index = genres, gate, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.log_softmax(self.gate(x), dim=1)[:, self.index : self.index + 1]  # log g
        # log(1 - g), with g kept below 1 so the other labels stay finite
        rest = torch.log_softmax(self.genres(x), dim=1) + torch.log1p(-torch.exp(g).clamp(max=1 - 1e-6))
        return torch.cat([rest[:, : self.index], g, rest[:, self.index :]], dim=1)


class Standardize(nn.Module):
    """(x - mean) / std with the statistics stored as buffers, so they travel with the weights."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@register_model(trainable=False)  # built by `musicgenre train --recipe`, not `train ARCH DATA`
def musicnn_genre(**kwargs: Any) -> MusicnnGenre:
    """One pretrained MusiCNN tagger with a trained genre head (the default model)."""
    return MusicnnGenre(**kwargs)

