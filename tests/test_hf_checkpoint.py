"""Fine-tuning a local Hugging Face checkpoint end to end, as a user does with transformers: a tiny AST and a
tiny wav2vec2 (each with its feature extractor) written by ``save_pretrained``, trained from that directory
by ``musicgenre train hf``, then used by ``musicgenre predict`` once the checkpoint directory is gone."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from musicgenre.cli import main
from musicgenre.errors import ParameterError

from .conftest import write_audio
from .test_train import SR, synth_clip

transformers = pytest.importorskip("transformers")

LABELS = ["beeps", "clicks", "tones"]


def tiny_ast(ckpt: Path) -> None:
    cfg = transformers.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                                 num_mel_bins=32, max_length=100, patch_size=16, frequency_stride=16,
                                 time_stride=16, num_labels=5)
    transformers.ASTForAudioClassification(cfg).save_pretrained(ckpt)
    transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=100).save_pretrained(ckpt)


def tiny_wav2vec2(ckpt: Path) -> None:
    cfg = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                                      conv_dim=[8, 8], conv_stride=[5, 4], conv_kernel=[10, 8],
                                      num_feat_extract_layers=2, num_conv_pos_embeddings=16,
                                      num_conv_pos_embedding_groups=2, classifier_proj_size=8, layerdrop=0.0,
                                      num_labels=5)
    transformers.Wav2Vec2ForSequenceClassification(cfg).save_pretrained(ckpt)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(ckpt)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Ten 2-s clips per label (8 train, 1 valid, 1 test each)."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for kind in LABELS:
        (root / kind).mkdir()
        for i in range(10):
            write_audio(root / kind / f"{kind}{i:02d}.wav", synth_clip(kind, 2.0, rng), SR)
    return root


@pytest.mark.parametrize("build", [tiny_ast, tiny_wav2vec2], ids=["ast", "wav2vec2"])
def test_fine_tune_a_local_checkpoint_then_predict(build, clips, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    build(ckpt)
    out = tmp_path / "model"
    assert main(["train", "hf", str(clips), "-o", str(out), "--epochs", "1", "--window-seconds", "1",
                 "--batch-size", "8", "--model-args", json.dumps({"checkpoint": str(ckpt)}), "-q"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "hf" and cfg["labels"] == LABELS
    # self-contained: the network's config and the extractor's settings instead of the checkpoint's path
    args = cfg["model_args"]
    assert "checkpoint" not in args and str(ckpt) not in json.dumps(args)
    assert len(args["config"]["id2label"]) == 3 and args["checkpoint_extractor"] == "./extractor"
    assert args.get("normalize", True) is True  # wav2vec2's extractor normalises; AST's input is the filterbank
    saved = json.loads((out / "extractor" / "preprocessor_config.json").read_text())
    assert saved == json.loads((ckpt / "preprocessor_config.json").read_text())
    shutil.rmtree(ckpt)
    capsys.readouterr()

    clip = clips / "tones" / "tones00.wav"
    assert main(["predict", "-m", str(out), str(clip), "--format", "json"]) == 0
    pred = json.loads(capsys.readouterr().out)[0]
    assert pred["label"] in LABELS
    scores = pred["scores"]
    assert set(scores) == set(LABELS) and all(math.isfinite(v) for v in scores.values())
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")
def test_ast_features_are_the_extractors_without_torchaudio():
    """AST's filterbank, computed in torch for a batch, equals transformers' ASTFeatureExtractor (its numpy
    path, or torchaudio's kaldi.fbank where torchaudio is installed), padding and truncation included."""
    from musicgenre.models.hf import KaldiFbank

    rng = np.random.default_rng(1)
    for n_mels, max_length in ((128, 1024), (32, 100)):
        extractor = transformers.ASTFeatureExtractor(num_mel_bins=n_mels, max_length=max_length, mean=-3.0, std=5.0)
        fbank = KaldiFbank(num_mel_bins=n_mels, max_length=max_length, mean=-3.0, std=5.0)
        assert fbank(torch.zeros(2, 300)).shape == (2, max_length, n_mels)  # shorter than a frame: all padding
        for n in (16000, 48000 + 123):  # padded; cut at 100 frames
            t = np.arange(n) / 16000
            y = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.01 * rng.standard_normal(n)]).astype(np.float32)
            want = extractor(list(y), sampling_rate=16000, return_tensors="pt")["input_values"]
            got = fbank(torch.from_numpy(y))
            assert got.shape == want.shape == (2, max_length, n_mels)
            torch.testing.assert_close(got, want, atol=1e-3, rtol=0)


def test_a_broken_torchaudio_is_named(tmp_path, monkeypatch):
    """transformers imports torchaudio wherever it is installed; one that does not import is reported as such."""
    (tmp_path / "torchaudio").mkdir()
    (tmp_path / "torchaudio" / "__init__.py").write_text('raise OSError("libtorchaudio.so: undefined symbol")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torchaudio", raising=False)
    from musicgenre.models import create_model

    with pytest.raises(ParameterError, match="torchaudio is installed but does not import"):
        create_model("hf", n_labels=3, config="wav2vec2")
