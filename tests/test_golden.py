"""The PyTorch port of MusiCNN reproduces the original TensorFlow implementation's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from musicgenre.features import FeatureConfig, log_mel, mel_filterbank
from musicgenre.loader import load_backbone
from musicgenre.models.musicnn import Musicnn
from musicgenre.windows import Windows

from .conftest import FIXTURES, ROOT

REF = FIXTURES / "musicnn"


def _patches() -> torch.Tensor:
    """The production feature path (file -> streamed decode -> windows.Windows), as predict runs it."""
    patches, _ = Windows(REF / "vibe_ace_16k_12s.wav", FeatureConfig()).all()
    return torch.from_numpy(patches)


def test_production_windows_match_reference_log_mel() -> None:
    """Streamed windows equal librosa's whole-signal log-mel cut into upstream's non-overlapping patches."""
    librosa = pytest.importorskip("librosa")
    y, sr = sf.read(REF / "vibe_ace_16k_12s.wav", dtype="float32")
    ref = np.log10(10000 * librosa.feature.melspectrogram(y=y, sr=sr, hop_length=256, n_fft=512, n_mels=96).T + 1)
    n = ref.shape[0] // 187  # upstream: non-overlapping 187-frame patches, remainder dropped
    patches = _patches().numpy()
    assert patches.shape == (n, 187, 96) == (4, 187, 96)
    np.testing.assert_allclose(patches, ref[: n * 187].reshape(n, 187, 96), atol=2e-4)


@pytest.mark.parametrize("name", ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"])
def test_taggram_matches_tensorflow(name: str) -> None:
    model, tags = load_backbone(name)
    with torch.no_grad():
        taggram = torch.sigmoid(model(_patches())).numpy()
    expected = np.load(REF / f"tf_taggram_{name}.npy")
    assert taggram.shape == expected.shape == (4, 50)
    print(f"{name}: max |torch - tensorflow| = {np.abs(taggram - expected).max():.2e}")  # see docs/models.md
    np.testing.assert_allclose(taggram, expected, atol=1e-3)
    reference = json.loads((REF / "tf_reference.json").read_text())[name]
    assert tags == reference["tags"]
    top3 = [tags[i] for i in np.argsort(-taggram.mean(0))[:3]]
    assert top3 == reference["top3"]


def test_penultimate_matches_tensorflow() -> None:
    model, _ = load_backbone("MSD_musicnn")
    with torch.no_grad():
        emb = model.embed(_patches()[:1]).numpy()
    # only row 0 of the reference is meaningful (upstream repeats patch 0's features)
    np.testing.assert_allclose(emb[0], np.load(REF / "tf_penultimate_MSD_musicnn.npy")[0], atol=5e-3)


def test_inference_shortcut_equals_plain_layers() -> None:
    """Eval-mode pooling-before-ReLU/BN must give what training-mode layer order gives."""
    torch.manual_seed(0)
    model = Musicnn()
    for m in model.modules():  # non-trivial BN statistics, some negative scales
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(-1, 1)
    x = torch.randn(2, 187, 96)
    block = model.frontend[0].eval()
    with torch.no_grad():
        fast = block(model.input_bn.eval()(x[:, None]))
        import torch.nn.functional as F

        xp = F.pad(model.input_bn(x[:, None]), (0, 0, 3, 3))
        slow = block.bn(F.relu(block.conv(xp))).amax(dim=3)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


def test_log_mel_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    y = (0.3 * rng.standard_normal(16000 * 2)).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    np.testing.assert_allclose(log_mel(y), np.log10(10000 * ref + 1), atol=2e-4)
    np.testing.assert_allclose(
        mel_filterbank(sr=16000, n_fft=512, n_mels=96), librosa.filters.mel(sr=16000, n_fft=512, n_mels=96), atol=1e-6
    )


def test_loud_audio_stays_finite() -> None:
    """Upstream's float16 log overflows on loud input; ours is float32."""
    y = np.sign(np.sin(np.arange(16000) * 0.05)).astype(np.float32)  # full-scale square wave
    assert np.isfinite(log_mel(y, cfg=FeatureConfig())).all()


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_shipped_model_scores_are_golden(backend: str) -> None:
    """End to end (decode -> windows -> model -> aggregation) on the example clips, against the scores recorded
    by scripts/golden_scores.py, on both backends."""
    import musicgenre

    golden = json.loads((FIXTURES / "golden_scores.json").read_text())
    clf = musicgenre.load(backend=backend, device="cpu")
    assert (clf.name, clf.version) == (golden["model"], golden["version"])
    for name, want in golden["clips"].items():
        got = clf.predict(ROOT / "examples" / name)
        assert list(got.scores) == list(want["scores"]), name
        np.testing.assert_allclose([got.scores[g] for g in want["scores"]], list(want["scores"].values()), atol=1e-4)
        np.testing.assert_allclose([got.tags[t] for t in want["tags"]], list(want["tags"].values()), atol=1e-4)
