"""Genre models built on the pretrained MusiCNN taggers shipped in ``weights/backbones``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..hub import load_backbone
from ._registry import register_model


class MusicnnGenre(nn.Module):
    """One pretrained MusiCNN tagger (frozen) -> genre head on [penultimate embedding, tag logits].

    Exactly one backbone pass per 3-s window: the genre logits and the tags come from the same
    pass (the tag layer is a linear map of the embedding). The backbone was chosen on validation
    data (docs/experiments.md); its weights come from the package, the head's from the model file.
    """

    external_prefixes = ("backbone.",)  # these weights come from the package, not the model file

    def __init__(self, n_labels: int, backbone: str = "MSD_musicnn", hidden: int = 0, dropout: float = 0.0,
                 features: str = "embedding+tags") -> None:
        super().__init__()
        if features not in ("embedding", "embedding+tags"):
            raise ValueError(f"unknown feature set {features!r}: use embedding or embedding+tags")
        self.backbone, self.tag_names = load_backbone(backbone)
        self.with_tags = features == "embedding+tags"
        dim = self.backbone.dense.out_features + (self.backbone.out.out_features if self.with_tags else 0)
        self.head = make_head(dim, n_labels, hidden=hidden, dropout=dropout)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(batch, time, n_mels) log-mel -> genre logits (batch, n_labels), tag logits (batch, n_tags)."""
        emb = self.backbone.embed(x)
        tags = self.backbone.out(emb)
        feats = torch.cat([emb, tags], dim=1) if self.with_tags else emb
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


@register_model(trainable=False)  # built by `musicgenre train --recipe`, not `train ARCH DATA`
def musicnn_genre(**kwargs: Any) -> MusicnnGenre:
    """One pretrained MusiCNN tagger with a trained genre head (the default model)."""
    return MusicnnGenre(**kwargs)

