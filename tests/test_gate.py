"""An added genre decided by a gate (models.genre.GatedHeads): the shipped musicnn-electronic model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgenre.errors import ParameterError
from musicgenre.models.genre import GatedHeads, make_head
from musicgenre.train.head import train_head
from musicgenre.train.recipe import Recipe, WindowSet
from musicgenre.windows import Windows

from .conftest import EXAMPLES


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_gated_output_is_the_gate_times_the_genre_head() -> None:
    torch.manual_seed(0)
    heads = make_head(6, 4, hidden=5, members=2, gate_index=1)
    assert isinstance(heads, GatedHeads)
    x = torch.randn(7, 6) * 3
    with torch.inference_mode():
        p = torch.softmax(heads(x), 1).numpy()
        g = torch.softmax(heads.gate(x), 1).numpy()[:, 1]
        genres = torch.softmax(heads.genres(x), 1).numpy()
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(p[:, 1], g, atol=1e-6)
    np.testing.assert_allclose(p[:, [0, 2, 3]], genres * (1 - g[:, None]), atol=1e-6)
    with pytest.raises(ParameterError, match="gate_index"):
        make_head(6, 4, gate_index=4)


def test_gated_training_keeps_the_other_labels_head_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    x = (rng.standard_normal((len(y), 6)) + y[:, None]).astype(np.float32)
    data = WindowSet(x, y, np.arange(len(y)), [])
    base = dict(name="t", hidden=8, epochs=3, batch_size=16, members=2, mixup=0.4)
    gated, _ = train_head(Recipe(labels=("a", "b", "c"), gate="b", **base), data)
    keep = y != 1
    alone, _ = train_head(Recipe(labels=("a", "c"), **base),
                          WindowSet(x[keep], np.where(y[keep] == 2, 1, 0), np.arange(int(keep.sum())), []))
    assert isinstance(gated, GatedHeads) and gated.index == 1
    a, b = gated.genres.state_dict(), alone.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_gate_must_be_one_of_the_labels(tmp_path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_text('name = "x"\nlabels = ["a", "b"]\ngate = "electronic"\n')
    with pytest.raises(ParameterError, match="gate 'electronic' is not one of the labels"):
        Recipe.load(bad)


@pytest.fixture(scope="module")
def example_windows() -> np.ndarray:
    from musicgenre.features import FeatureConfig

    return np.concatenate([Windows(clip, FeatureConfig()).all()[0] for clip in sorted(EXAMPLES.glob("*.ogg"))])


def test_shipped_electronic_model_keeps_the_default_genre_calls(example_windows) -> None:
    """Window by window, musicnn-electronic's ten genres, renormalised without electronic, are musicnn-gtzan's
    scores: adding electronic moves a call only where the gate says electronic."""
    from musicgenre import load

    default, electronic = load("musicnn-gtzan"), load("musicnn-electronic")
    assert electronic.labels == sorted([*default.labels, "electronic"])
    e = electronic.labels.index("electronic")
    p10 = _softmax(default.run(example_windows)[0].astype(np.float64))
    p11 = _softmax(electronic.run(example_windows)[0].astype(np.float64))
    np.testing.assert_allclose(np.delete(p11, e, axis=1) / (1 - p11[:, e:e + 1]), p10, atol=1e-4)


def test_electronic_model_onnx_matches_torch(example_windows) -> None:
    from musicgenre import load

    x = example_windows[:6]
    onnx = load("musicnn-electronic", backend="onnx").run(x)[0]
    ref = load("musicnn-electronic", backend="torch", device="cpu").run(x)[0]
    np.testing.assert_allclose(_softmax(onnx.astype(np.float64)), _softmax(ref.astype(np.float64)), atol=1e-5)
