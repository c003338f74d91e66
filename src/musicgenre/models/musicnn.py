"""MusiCNN and the VGG-like baseline of Pons & Serra (2019), ported from the TF1 code of ``musicnn`` 0.1.0.

Layouts follow the torch convention: input ``x`` is (batch, time=187, freq=96) log-mel.
TF's ``batch_normalization`` uses eps=1e-3, which the ported BatchNorms keep.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model

_BN_EPS = 1e-3


def _bn1d(n: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, eps=_BN_EPS)


def _bn2d(n: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(n, eps=_BN_EPS)


class FreqPooledConv(nn.Module):
    """Conv2d + ReLU + BN, then max over the whole frequency axis -> (batch, filters, time)."""

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]) -> None:
        super().__init__()
        self.time_pad = time_pad
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = _bn2d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, 1, time, freq)
        x = F.pad(x, (0, 0, *self.time_pad))  # pad time only: frequency is pooled away
        if self.training:
            return self.bn(F.relu(self.conv(x))).amax(dim=3)
        # Inference shortcut, same result: ReLU and the (frozen, per-channel affine) BN are monotonic,
        # so max over frequency commutes with them -- pool the raw conv output first and apply ReLU+BN
        # to (batch, filters, time) instead of the 60x larger (batch, filters, time, freq').
        z = self.conv(x)  # (batch, filters, time, freq')
        bn = self.bn
        assert bn.running_var is not None and bn.running_mean is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        hi = F.relu(z.amax(dim=3))
        lo = F.relu(z.amin(dim=3))
        pooled = torch.where(scale[:, None] >= 0, hi, lo)  # a negative BN scale turns the max into a min
        return (pooled - bn.running_mean[:, None]) * scale[:, None] + bn.bias[:, None]


class Musicnn(nn.Module):
    """Musically motivated front-end (timbral + temporal filters), dense mid-end, pooled back-end.

    ``forward`` returns tag logits (batch, n_tags); ``embed`` returns the 200-d penultimate layer.
    """

    def __init__(self, n_tags: int = 50, n_mels: int = 96, midend_filters: int = 64, backend_units: int = 200) -> None:
        super().__init__()
        self.input_bn = _bn2d(1)
        timbral, temporal = int(1.6 * 128), int(1.6 * 32)
        # TF 'same' padding for an even kernel puts the extra sample after: (k-1)//2 before, k//2 after
        self.frontend = nn.ModuleList(
            [
                FreqPooledConv(timbral, (7, int(0.4 * n_mels)), (3, 3)),
                FreqPooledConv(timbral, (7, int(0.7 * n_mels)), (3, 3)),
                *[FreqPooledConv(temporal, (k, 1), ((k - 1) // 2, k // 2)) for k in (128, 64, 32)],
            ]
        )
        front = 2 * timbral + 3 * temporal
        self.mid_convs = nn.ModuleList(
            [nn.Conv1d(front, midend_filters, 7)] + [nn.Conv1d(midend_filters, midend_filters, 7) for _ in range(2)]
        )
        self.mid_bns = nn.ModuleList([_bn1d(midend_filters) for _ in range(3)])
        pooled = 2 * (front + 3 * midend_filters)
        self.pool_bn = _bn1d(pooled)
        self.dense = nn.Linear(pooled, backend_units)
        self.dense_bn = _bn1d(backend_units)
        self.dropout = nn.Dropout(0.5)
        self.out = nn.Linear(backend_units, n_tags)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, n_mels) log-mel -> (batch, backend_units) penultimate features."""
        return self.features(x)[1]

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, time, n_mels) log-mel -> (max/mean-pooled mid-end (batch, 1506), penultimate embedding)."""
        x = self.input_bn(x[:, None])  # (batch, 1, time, freq)
        front = torch.cat([block(x) for block in self.frontend], dim=1)  # (batch, 561, time)
        feats = [front]
        h = front
        for i, (conv, bn) in enumerate(zip(self.mid_convs, self.mid_bns)):
            out = bn(F.relu(conv(F.pad(h, (3, 3)))))  # (batch, 64, time)
            h = out if i == 0 else out + h  # layers 2 and 3 are residual
            feats.append(h)
        mid = torch.cat(feats, dim=1)  # (batch, 753, time)
        # TF flattens (channel, [max, mean]) pairs: interleave to keep the dense weights' order
        pooled = torch.stack([mid.amax(dim=2), mid.mean(dim=2)], dim=2).flatten(1)  # (batch, 1506)
        h = self.dense(self.dropout(self.pool_bn(pooled)))
        return pooled, self.dense_bn(F.relu(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.embed(x)))


class MusicnnVGG(nn.Module):
    """The VGG-like baseline shipped with musicnn: 5 x (3x3 conv, ReLU, BN, max-pool), dense output."""

    POOLS = ((4, 1, 2, 2), (2, 2, 2, 2), (2, 2, 2, 2), (2, 2, 2, 2), (4, 4, 4, 4))  # kh, kw, sh, sw

    def __init__(self, n_tags: int = 50, filters: int = 128, n_frames: int = 187, n_mels: int = 96) -> None:
        super().__init__()
        self.input_bn = _bn2d(1)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5)])
        self.bns = nn.ModuleList([_bn2d(filters) for _ in range(5)])
        h, w = n_frames, n_mels
        for kh, kw, sh, sw in self.POOLS:
            h, w = (h - kh) // sh + 1, (w - kw) // sw + 1
        self.dropout = nn.Dropout(0.5)
        self.out = nn.Linear(h * w * filters, n_tags)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(x[:, None])  # (batch, 1, time, freq)
        for conv, bn, (kh, kw, sh, sw) in zip(self.convs, self.bns, self.POOLS):
            x = F.max_pool2d(bn(F.relu(conv(x))), (kh, kw), (sh, sw))
        x = x.permute(0, 2, 3, 1).flatten(1)  # TF flattens NHWC
        return self.out(self.dropout(x))


@register_model(trainable=False)
def musicnn(**kw: Any) -> Musicnn:
    """MusiCNN tagger (Pons & Serra 2019): the pretrained backbone of the shipped models."""
    return Musicnn(**kw)


@register_model(trainable=False)
def musicnn_vgg(**kw: Any) -> MusicnnVGG:
    """The VGG-like tagger shipped with musicnn: a pretrained backbone."""
    return MusicnnVGG(**kw)
