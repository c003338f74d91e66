"""Genre models built on the pretrained MusiCNN taggers shipped in ``weights/backbones``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..hub import load_backbone
from ._registry import register_model


class MusicnnGenre(nn.Module):
    """Frozen pretrained MusiCNN taggers -> genre head on [MSD penultimate (200), MTT tag logits (50)].

    The MSD features carry most of the genre information; MTT's tag logits add what the MSD
    vocabulary lacks (it has no "classical", MTT has classical, strings, violin, harpsichord...),
    which helps on music unlike GTZAN's (see docs/models.md). Both taggers' outputs are the tags.
    """

    external_prefixes = ("msd.", "mtt.")  # these weights come from the package, not the model file

    def __init__(self, n_labels: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.msd, msd_tags = load_backbone("MSD_musicnn")
        self.mtt, mtt_tags = load_backbone("MTT_musicnn")
        self.tag_names = msd_tags + mtt_tags
        dim = self.msd.dense.out_features + self.mtt.out.out_features
        self.head = make_head(dim, n_labels, hidden=hidden, dropout=dropout)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, time, n_mels) log-mel -> head input (batch, 250), tag logits (batch, 100)."""
        emb = self.msd.embed(x)
        msd_tags, mtt_tags = self.msd.out(emb), self.mtt(x)
        return torch.cat([emb, mtt_tags], dim=1), torch.cat([msd_tags, mtt_tags], dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, tags = self.features(x)
        return {"logits": self.head(feats), "tags": tags}


def make_head(dim: int, n_labels: int, *, hidden: int = 0, dropout: float = 0.0) -> nn.Sequential:
    """Standardise (statistics from the training set) -> optional hidden layer -> linear."""
    layers: list[nn.Module] = [Standardize(dim)]
    if hidden:
        layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_labels)]
    else:
        layers += [nn.Dropout(dropout), nn.Linear(dim, n_labels)]
    return nn.Sequential(*layers)


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


@register_model
def musicnn_genre(**kwargs: Any) -> MusicnnGenre:
    """Pretrained MusiCNN taggers (MSD + MTT) with a trained genre head (the default model)."""
    return MusicnnGenre(**kwargs)

