"""Exact pruning of a MusiCNN's provably constant channels (inference only).

The shipped MSD/MTT taggers carry many filters that are zero to float precision or can never open their ReLU:
``prune_constant_channels`` removes them and folds their constants, so the live graph (torch and the exported
ONNX) does only the work that can change an output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .musicnn import FreqPooledConv, Musicnn

# A filter whose weights sum (in absolute value) to at most this is zero to float precision: over any log-mel
# input (|x| < 1e3) it moves its pre-activation by < 1e-17, below the resolution of any float32 bias.
# The shipped MSD/MTT taggers' dead filters sum to 1e-27..1e-28; their weakest live ones to 4e-13 and more.
DEAD_WEIGHT_ATOL = 1e-20

# A front-end channel whose value can move by at most this much over every finite input is folded as constant.
# The bound is |BN scale| * sum|w| * max|input|: every finite log-mel lies in [0, LOGMEL_MAX] (log10(1 + x) of a
# float32 x >= 0), so max|input| is the input BatchNorm's image of that range (zero padding lies inside it).
# The shipped MSD tagger's front-end filters are bimodal: bounds of at most 3e-8 (weights of 1e-11 and less,
# which training left behind), or 0.16 and more: 1e-6 sits in the gap and moves no score by 1e-5.
NEGLIGIBLE_CHANGE = 1e-6
LOGMEL_MAX = float(np.log10(np.finfo(np.float32).max))


def _bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """A frozen BatchNorm as (scale, shift) with bn(x) = x * scale + shift, per channel."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale.detach().clone(), (bn.bias - bn.running_mean * scale).detach().clone()


def _affine_range(lo: torch.Tensor, hi: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval arithmetic for x * scale + shift per channel (infinite bounds allowed)."""
    a, b = lo * scale + shift, hi * scale + shift
    a = torch.where(scale == 0, shift, a)  # 0 * inf is nan; a zero scale gives the shift
    b = torch.where(scale == 0, shift, b)
    return torch.minimum(a, b), torch.maximum(a, b)


def _bias(conv: nn.Conv1d | nn.Conv2d) -> torch.Tensor:
    assert conv.bias is not None  # every MusiCNN convolution has one
    return conv.bias


def _upper_bound(weight: torch.Tensor, bias: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Largest pre-activation a Conv1d (out, in, k) can reach when input channel c lies in [lo_c, hi_c] or is a
    zero-padded edge frame (0), for every output channel. Infinite when unbounded."""
    lo0, hi0 = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))
    w = weight.double()
    with torch.no_grad():  # max over the interval of w * x: w * hi for w > 0, w * lo for w < 0, 0 for w == 0
        terms = torch.where(w > 0, w * hi0.double()[None, :, None], torch.where(w < 0, w * lo0.double()[None, :, None],
                                                                                torch.zeros_like(w)))
    return bias.double() + terms.sum(dim=(1, 2))


class _LiveFreqPooledConv(nn.Module):
    """The live filters of a ``FreqPooledConv`` (eval mode): conv -> max over frequency -> ReLU -> BN.

    A channel whose BN scale is negative takes the minimum over frequency instead (see ``FreqPooledConv``):
    its filter and bias are negated here, so one max serves every channel (max(-z) = -min(z), exactly).
    """

    sign: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, block: FreqPooledConv, keep: torch.Tensor) -> None:
        super().__init__()
        self.time_pad = block.time_pad
        scale, shift = _bn_affine(block.bn)
        scale, shift = scale[keep], shift[keep]
        sign = torch.where(scale >= 0, 1.0, -1.0)
        conv = block.conv
        kh, kw = conv.kernel_size
        self.conv = nn.Conv2d(1, len(keep), (kh, kw))
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight[keep] * sign[:, None, None, None])
            _bias(self.conv).copy_(_bias(conv)[keep] * sign)
        self.register_buffer("sign", sign[:, None])
        self.register_buffer("scale", scale[:, None])
        self.register_buffer("shift", shift[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, 1, time, freq)
        z = self.conv(F.pad(x, (0, 0, *self.time_pad)))  # (batch, live, time, freq')
        return F.relu(z.amax(dim=3) * self.sign) * self.scale + self.shift  # (batch, live, time)


class _LiveMidConv(nn.Module):
    """One mid-end layer on live channels only: bn(relu(conv(pad(x)))) [+ residual], constants folded.

    ``x`` holds the live input channels. The constant input channels' contribution is a bias that depends on
    time only at the edges (the zero padding hides part of the kernel there): ``edge`` is that contribution
    per output channel and tap, applied as a 1-channel convolution of the padded all-ones frame mask. With a
    residual, ``res_index`` places the live input channels among the outputs (index ``len(x)`` is a zero
    channel), and the residual's constant channels are already in ``shift``.
    """

    edge: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    res_index: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                 edge: torch.Tensor, res_index: torch.Tensor | None) -> None:
        super().__init__()
        self.pad = (weight.shape[2] - 1) // 2, weight.shape[2] // 2
        self.conv = nn.Conv1d(max(1, weight.shape[1]), weight.shape[0], weight.shape[2])
        with torch.no_grad():
            if weight.shape[1] == 0:  # every input channel is constant: the output is bias + edge terms
                weight = torch.zeros_like(self.conv.weight)
            self.conv.weight.copy_(weight)
            _bias(self.conv).copy_(bias)
        self.register_buffer("edge", edge[:, None, :])  # (out, 1, k)
        self.register_buffer("scale", scale[:, None])
        self.register_buffer("shift", shift[:, None])
        self.register_buffer("res_index", res_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, live_in, time)
        ones = F.pad(x.new_ones(1, 1, x.shape[2]), self.pad)  # (1, 1, time + k - 1): 1 in frames, 0 in padding
        if x.shape[1] == 0:
            x = x.new_zeros(x.shape[0], 1, x.shape[2])
        z = self.conv(F.pad(x, self.pad)) + F.conv1d(ones, self.edge)  # (batch, out, time)
        out = F.relu(z) * self.scale + self.shift
        if self.res_index is not None:
            out = out + torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)[:, self.res_index]
        return out


class PrunedMusicnn(nn.Module):
    """A ``Musicnn`` (eval mode) without its provably constant channels; same outputs, to float rounding.

    Built by ``prune_constant_channels``. The pooled vector keeps the full (batch, 1506) layout: a constant
    channel's max and mean are its constant, put back in place. ``pool_bn``, ``dense``, ``dense_bn`` and
    ``out`` are the original layers, so heads, tags and cached features stay valid. Inference only.
    """

    pool_perm: torch.Tensor
    pool_const: torch.Tensor

    def __init__(self, model: Musicnn, *, atol: float = DEAD_WEIGHT_ATOL,
                 negligible: float = NEGLIGIBLE_CHANGE) -> None:
        super().__init__()
        if model.training:
            raise ValueError("prune a MusiCNN in eval mode: pruning folds its BatchNorm running statistics")
        self.input_bn = model.input_bn
        self.pool_bn, self.dense, self.dense_bn, self.dropout, self.out = (
            model.pool_bn, model.dense, model.dense_bn, model.dropout, model.out)
        with torch.no_grad():
            self._build(model, atol, negligible)
        self.eval()

    def _build(self, model: Musicnn, atol: float, negligible: float) -> None:
        # Front end: a filter with (numerically) zero weights outputs relu(bias) at every position, padded edge
        # frames included, so its channel is bn(relu(bias)) for every input.
        # A filter with tiny weights is constant to within ``negligible`` (see NEGLIGIBLE_CHANGE) and is folded too.
        blocks, live_parts, const_parts, lo_parts, hi_parts = [], [], [], [], []
        in_lo, in_hi = _affine_range(torch.zeros(1), torch.full((1,), LOGMEL_MAX), *_bn_affine(model.input_bn))
        max_input = float(torch.maximum(in_lo.abs(), in_hi.abs()))
        offset = 0
        for block in model.frontend:
            assert isinstance(block, FreqPooledConv)
            w, b = block.conv.weight, _bias(block.conv)
            scale, shift = _bn_affine(block.bn)
            l1 = w.flatten(1).abs().double().sum(1)
            moves = (l1 * max_input * scale.abs().double()).float()  # how far the channel can move from const
            dead = (l1 <= atol) | (moves <= negligible)
            const = F.relu(b) * scale + shift
            keep = torch.nonzero(~dead).flatten()
            if len(keep):
                blocks.append(_LiveFreqPooledConv(block, keep))
            live_parts.append(keep + offset)
            const_parts.append(torch.where(dead, const, torch.nan))
            # value range of every channel: relu(.) in [0, inf), then the BN's affine map
            lo, hi = _affine_range(torch.zeros_like(b), torch.full_like(b, torch.inf), scale, shift)
            lo_parts.append(torch.where(dead, const - moves, lo))  # a folded channel's true range, for the
            hi_parts.append(torch.where(dead, const + moves, hi))  # mid-end's closed-ReLU proof
            offset += len(b)
        self.frontend = nn.ModuleList(blocks)
        live, const = torch.cat(live_parts), torch.cat(const_parts)  # const: nan where live
        lo, hi = torch.cat(lo_parts), torch.cat(hi_parts)
        all_live, all_const = [live], [const]
        layers = []
        for i, (conv, bn) in enumerate(zip(model.mid_convs, model.mid_bns)):
            residual = i > 0
            assert isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d)
            w, b = conv.weight, _bias(conv)  # (out, in, k)
            scale, shift = _bn_affine(bn)
            is_const = ~torch.isnan(const)
            # the output channel is constant when its weights are zero, or when its ReLU never opens over every
            # input's range (zero padding included); the latter makes relu(...) = 0
            zero_w = w.flatten(1).abs().sum(1) <= atol
            closed = _upper_bound(w, b, lo, hi) <= 0
            out_const = torch.where(closed, torch.zeros_like(b), F.relu(b)) * scale + shift
            dead_out = zero_w | closed
            if residual:  # h_i = out_i + h_{i-1}: constant only where both are
                out_const = out_const + torch.nan_to_num(const)
                dead_out = dead_out & is_const
            keep_out = torch.nonzero(~dead_out).flatten()
            live_in = torch.nonzero(~is_const).flatten()
            # constant inputs: their contribution per output channel and tap (zero-padded edges handled by `edge`)
            edge = torch.einsum("oik,i->ok", w[keep_out][:, is_const], const[is_const])
            layer_shift = shift[keep_out]
            res_index = None
            if residual:
                layer_shift = layer_shift + torch.nan_to_num(const)[keep_out]  # constant residual channels
                pos = {int(c): j for j, c in enumerate(live_in)}
                res_index = torch.tensor([pos.get(int(c), len(live_in)) for c in keep_out], dtype=torch.long)
            layers.append(_LiveMidConv(w[keep_out][:, live_in].clone(), b[keep_out].clone(), scale[keep_out].clone(),
                                       layer_shift, edge, res_index))
            # next layer's input: this layer's output channels
            new_const = torch.where(dead_out, out_const, torch.nan)
            out_lo, out_hi = _affine_range(torch.zeros_like(b), torch.full_like(b, torch.inf), scale, shift)
            if residual:  # ranges add
                out_lo, out_hi = out_lo + lo, out_hi + hi
            lo = torch.where(dead_out, out_const, out_lo)
            hi = torch.where(dead_out, out_const, out_hi)
            const = new_const
            width = sum(len(c) for c in all_const)
            all_live.append(keep_out + width)
            all_const.append(const)
        self.mid = nn.ModuleList(layers)
        full = torch.cat(all_const)  # (753,) constants, nan where live
        live_all = torch.cat(all_live)
        n_live, n_const = len(live_all), int((~torch.isnan(full)).sum())
        const_idx = torch.nonzero(~torch.isnan(full)).flatten()
        # pooled_live (batch, n_live, 2) flattened, then [constants as (max, mean) pairs]: gather into 1506 order
        perm = torch.empty(2 * len(full), dtype=torch.long)
        perm[2 * live_all] = 2 * torch.arange(n_live)
        perm[2 * live_all + 1] = 2 * torch.arange(n_live) + 1
        perm[2 * const_idx] = 2 * n_live + 2 * torch.arange(n_const)
        perm[2 * const_idx + 1] = 2 * n_live + 2 * torch.arange(n_const) + 1
        self.register_buffer("pool_perm", perm)
        self.register_buffer("pool_const", full[const_idx].repeat_interleave(2)[None])  # (1, 2 * n_const)
        self.live_channels = {"front": [len(p) for p in live_parts],
                              "mid": [len(layer.conv.weight) for layer in layers]}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, n_mels) log-mel -> (batch, backend_units) penultimate features."""
        return self.features(x)[1]

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``Musicnn.features``: (pooled (batch, 1506) in the full layout, penultimate embedding)."""
        if self.training:
            raise RuntimeError("a pruned MusiCNN is inference-only (its BatchNorms are folded): call .eval()")
        return self.from_front(self.front(x))

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, n_mels) log-mel -> the live front-end channels (batch, live front, time)."""
        x = self.input_bn(x[:, None])  # (batch, 1, time, freq)
        if len(self.frontend):
            return torch.cat([block(x) for block in self.frontend], dim=1)
        return x.new_zeros(x.shape[0], 0, x.shape[2])  # every front-end channel is constant

    def from_front(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The live front-end channels -> ``features``' (pooled, embedding): the mid-end and back-end. Not
        checked for eval mode: a trained genre branch (experiments/genre_branch.py) trains a copy of these layers
        with its BatchNorms and dropout held in eval mode."""
        feats = [h]
        for layer in self.mid:
            h = layer(h)  # (batch, live, time)
            feats.append(h)
        mid = torch.cat(feats, dim=1)  # (batch, live, time)
        pooled = torch.stack([mid.amax(dim=2), mid.mean(dim=2)], dim=2).flatten(1)  # (batch, 2 * live)
        pooled = torch.cat([pooled, self.pool_const.expand(pooled.shape[0], -1)], dim=1)[:, self.pool_perm]  # (b, 1506)
        h = self.dense(self.dropout(self.pool_bn(pooled)))
        return pooled, self.dense_bn(F.relu(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.embed(x)))


def prune_constant_channels(module: nn.Module, *, atol: float = DEAD_WEIGHT_ATOL,
                            negligible: float = NEGLIGIBLE_CHANGE) -> nn.Module:
    """Remove the provably constant channels of every MusiCNN in ``module`` (eval mode), folding their constants.

    A ``Musicnn`` comes back as a ``PrunedMusicnn``; any other module has its ``Musicnn`` submodules replaced in
    place and is returned. A channel goes only when it is constant for every input: its filter's weights are
    zero to float precision (absolute sum <= ``atol``), or interval bounds over every input's range, zero-padded
    edge frames included, show its ReLU never opens, or (front end) show it moves by at most ``negligible``
    over every finite log-mel input. Its constant is folded where it is used: in the next mid-end convolution
    (a bias, time-dependent at the padded edges), in the residual sums and in the pooled vector, which keeps its
    1506 layout. Outputs agree with the unpruned module to 1e-5 (tests/test_pruning.py).
    """
    if isinstance(module, Musicnn):
        return PrunedMusicnn(module.eval(), atol=atol, negligible=negligible)
    for name, child in list(module.named_children()):
        pruned = prune_constant_channels(child, atol=atol, negligible=negligible)
        if pruned is not child:
            setattr(module, name, pruned)
    return module
