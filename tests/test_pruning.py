"""Exact pruning of MusiCNN's provably constant channels: same outputs, smaller network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgenre.features import FeatureConfig
from musicgenre.loader import load_backbone, load_module
from musicgenre.modeldir import onnx_file, read, resolve
from musicgenre.models.musicnn import Musicnn
from musicgenre.models.prune import LOGMEL_MAX, PrunedMusicnn, prune_constant_channels
from musicgenre.windows import Windows

from .conftest import EXAMPLES

SR = 16000
TOL = 1e-5  # on probabilities (genre scores at the model's temperature, tag sigmoids)


@pytest.fixture(scope="module")
def shipped() -> tuple[torch.nn.Module, torch.nn.Module, float]:
    path = resolve(None)
    temperature = read(path).temperature or 1.0
    return load_module(path), prune_constant_channels(load_module(path)), temperature


def _windows(y: np.ndarray) -> np.ndarray:
    return Windows((y.astype(np.float32), SR), FeatureConfig()).all()[0]


def _hostile() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    n = 7 * SR  # two full windows and a partial one: padded edge frames too
    t = np.arange(n) / SR
    square = np.sign(np.sin(2 * np.pi * 220 * t))
    return {
        "silence": np.zeros(n),
        "full_scale_noise": rng.uniform(-1, 1, n),
        "square_wave": square,
        "square_wave_low": np.sign(np.sin(2 * np.pi * 41 * t)),
        "clipped": np.clip(3 * np.sin(2 * np.pi * 330 * t) + 0.5 * rng.standard_normal(n), -1, 1),
        "dc": np.full(n, 0.8),
        "clicks": np.where(np.arange(n) % 4000 == 0, 1.0, 0.0),
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], temperature: float) -> None:
    np.testing.assert_allclose(torch.softmax(b["logits"] / temperature, 1), torch.softmax(a["logits"] / temperature, 1),
                               atol=TOL, rtol=0)
    np.testing.assert_allclose(torch.sigmoid(b["tags"]), torch.sigmoid(a["tags"]), atol=TOL, rtol=0)
    np.testing.assert_allclose(b["logits"], a["logits"], atol=1e-4, rtol=0)


def _run(module: torch.nn.Module, x: np.ndarray) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


def test_shipped_model_is_pruned(shipped) -> None:
    _, pruned, _ = shipped
    assert isinstance(pruned.backbone, PrunedMusicnn)
    # the MSD tagger's live filters: of the 40 + 21 timbral and 25 / 36 / 41 temporal filters with
    # non-zero weights, 23 + 14 and 3 / 7 / 17 can move their channel by more than NEGLIGIBLE_CHANGE; 20 of 64
    # channels live in mid conv 1
    assert pruned.backbone.live_channels == {"front": [23, 14, 3, 7, 17], "mid": [20, 64, 64]}


def test_pruned_equals_unpruned_on_the_examples(shipped) -> None:
    full, pruned, temperature = shipped
    x = np.concatenate([Windows(clip, FeatureConfig()).all()[0] for clip in sorted(EXAMPLES.glob("*.ogg"))])
    assert len(x) >= 8
    for i in range(0, len(x), 4):
        _assert_same(_run(full, x[i : i + 4]), _run(pruned, x[i : i + 4]), temperature)


@pytest.mark.parametrize("name", list(_hostile()))
def test_pruned_equals_unpruned_on_hostile_signals(shipped, name: str) -> None:
    full, pruned, temperature = shipped
    x = _windows(_hostile()[name])
    _assert_same(_run(full, x), _run(pruned, x), temperature)


def test_pruned_equals_unpruned_on_random_windows(shipped) -> None:
    full, pruned, temperature = shipped
    rng = np.random.default_rng(0)
    for x in (rng.uniform(0, 5, (3, 187, 96)), 2 * rng.standard_normal((3, 187, 96)), np.full((1, 187, 96), 9.0)):
        _assert_same(_run(full, x), _run(pruned, x), temperature)


def test_pooled_vector_keeps_its_layout() -> None:
    """Every entry of the 1506-d pooled vector (heads and cached features read it) is where it was."""
    full, _ = load_backbone("MSD_musicnn")
    pruned = prune_constant_channels(load_backbone("MSD_musicnn")[0])
    x = torch.from_numpy(np.random.default_rng(2).uniform(0, 4, (2, 187, 96)).astype(np.float32))
    with torch.inference_mode():
        (pa, ea), (pb, eb) = full.features(x), pruned.features(x)
    assert pb.shape == pa.shape == (2, 1506)
    scale = float(pa.abs().max())
    np.testing.assert_allclose(pb, pa, atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(eb, ea, atol=1e-4, rtol=0)


def _random_musicnn(seed: int) -> Musicnn:
    """A small-valued random MusiCNN with non-trivial BatchNorms (negative scales included)."""
    torch.manual_seed(seed)
    model = Musicnn()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(-1, 1)
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)):
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _kill(conv: torch.nn.Module, channels: list[int], keep_one: int | None = None) -> None:
    """Zero the filters of ``channels`` (to 1e-28, as the shipped taggers' dead filters are); ``keep_one``
    keeps a single non-zero weight in that channel."""
    with torch.no_grad():
        for c in channels:
            conv.weight[c] = 1e-28
        if keep_one is not None:
            conv.weight[keep_one] = 0.0
            conv.weight[keep_one].view(-1)[5] = 0.7


def test_constants_fold_into_every_consumer_edges_included() -> None:
    """Dead filters in every block, dead mid-end channels (conv 1 and a residual layer), a channel with one
    non-zero weight: the pruned network gives the same pooled vector, embedding and tags, on every frame."""
    model = _random_musicnn(0)
    for i, block in enumerate(model.frontend):
        n = block.conv.out_channels
        _kill(block.conv, list(range(0, n, 2)), keep_one=0 if i == 0 else None)
    _kill(model.mid_convs[0], list(range(0, 64, 3)))
    _kill(model.mid_convs[1], [0, 1, 3])  # 0 and 3 are constant in layer 1 too: constant in layer 2 as well
    pruned = prune_constant_channels(model)  # a new module: ``model`` stays the unpruned reference
    assert isinstance(pruned, PrunedMusicnn)
    # channel 0 of block 0 has one non-zero weight left: kept
    assert pruned.live_channels == {"front": [103, 102, 25, 25, 25], "mid": [42, 62, 64]}
    reference = model
    x = torch.from_numpy(np.random.default_rng(3).uniform(0, 4, (3, 187, 96)).astype(np.float32))
    with torch.inference_mode():
        (pa, ea), (pb, eb) = reference.features(x), pruned.features(x)
        ta, tb = reference(x), pruned(x)
    np.testing.assert_allclose(pb, pa, atol=1e-5 * float(pa.abs().max()), rtol=0)
    np.testing.assert_allclose(eb, ea, atol=1e-5, rtol=0)
    np.testing.assert_allclose(tb, ta, atol=1e-5, rtol=0)


def test_edge_frames_of_a_folded_constant() -> None:
    """A constant front channel feeding mid conv 1 contributes only where the kernel overlaps real frames:
    the first and last three frames differ from the middle, and the pruned network reproduces that."""
    model = _random_musicnn(1)
    for block in model.frontend:
        _kill(block.conv, list(range(block.conv.out_channels)))  # the whole front end is constant
    with torch.no_grad():
        model.mid_convs[0].weight.mul_(10)  # make the edge effect large
    reference, pruned = model, prune_constant_channels(model)
    assert pruned.live_channels["front"] == [0, 0, 0, 0, 0]
    x = torch.rand(2, 187, 96)
    with torch.inference_mode():
        h_ref = reference.features(x)[0]
        h = pruned.features(x)[0]
    np.testing.assert_allclose(h, h_ref, atol=1e-5 * float(h_ref.abs().max()), rtol=0)
    # the mid-end's max and mean over time differ, so the edges really were different
    mid = h_ref[:, 2 * 561 :: 2] - h_ref[:, 2 * 561 + 1 :: 2]
    assert float(mid.abs().max()) > 1e-3


def test_a_relu_that_never_opens_is_pruned() -> None:
    """Mid conv 1 channel whose weights are all negative on non-negative inputs, with a negative bias: its ReLU
    is shut for every input (zero padding included), so the channel is the constant bn(0)."""
    model = _random_musicnn(2)
    with torch.no_grad():
        for block in model.frontend:  # front outputs relu(.) * scale + shift with scale, shift > 0: >= 0
            block.bn.weight.uniform_(0.5, 1.0)
            block.bn.running_mean.zero_()
            block.bn.bias.uniform_(0.1, 0.2)
        conv = model.mid_convs[0]
        conv.weight[5] = -conv.weight[5].abs() - 1e-3
        conv.bias[5] = -0.1
    reference, pruned = model, prune_constant_channels(model)
    assert pruned.live_channels["mid"][0] == 63
    x = torch.rand(2, 187, 96) * 4
    with torch.inference_mode():
        np.testing.assert_allclose(pruned(x), reference(x), atol=1e-5, rtol=0)


def test_a_filter_too_weak_to_move_its_channel_is_folded() -> None:
    """Weights of 1e-12 (training leaves such filters) move a channel by far less than NEGLIGIBLE_CHANGE over
    every finite log-mel: folded. Weights of 1e-4 can move it by more: kept."""
    model = _random_musicnn(4)
    with torch.no_grad():
        model.frontend[0].conv.weight[:3] = 1e-12
        model.frontend[2].conv.weight[:2] = 1e-4
    reference, pruned = model, prune_constant_channels(model)
    assert pruned.live_channels["front"] == [201, 204, 51, 51, 51]
    x = torch.rand(2, 187, 96) * LOGMEL_MAX  # the whole range the bound covers
    x[:, :, :4] = 0.0
    with torch.inference_mode():
        (pa, _), (pb, _) = reference.features(x), pruned.features(x)
    np.testing.assert_allclose(pb, pa, atol=1e-5 * float(pa.abs().max()), rtol=0)


def test_pruned_module_is_inference_only() -> None:
    model = _random_musicnn(3)
    with pytest.raises(ValueError, match="eval mode"):
        PrunedMusicnn(model.train())
    pruned = prune_constant_channels(model.eval())
    pruned.train()
    with pytest.raises(RuntimeError, match="inference-only"):
        pruned(torch.zeros(1, 187, 96))


def test_torch_backend_runs_the_pruned_module() -> None:
    from musicgenre import load

    clf = load(backend="torch", device="cpu")
    assert isinstance(clf.model.runner.module.backbone, PrunedMusicnn)


def test_shipped_onnx_graph_is_the_pruned_one() -> None:
    onnx = pytest.importorskip("onnx")
    path = resolve(None)
    graph = onnx.load(str(onnx_file(path, read(path)))).graph
    shapes = {tuple(t.dims) for t in graph.initializer}
    assert (23, 1, 7, 38) in shapes and (14, 1, 7, 67) in shapes  # the live timbral filters
    assert not any(s[:2] == (204, 1) for s in shapes)  # no unpruned front-end filter bank
