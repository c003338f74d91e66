"""Training and evaluation: every architecture learns, resumes exactly, runs under DDP, evaluates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from musicgenre.cli import main
from musicgenre.models import create_model, list_architectures

from .conftest import write_audio

SR = 22050
TINY = {
    "vgg19_bn_cqt": {"width": 8, "image_size": 32, "hidden": 32},
    "crnn": {"filters": 16, "lstm": 16, "dense": 16},
    "parallel_cnn_rnn": {"gru": 16},
    "musicnn_transfer": {"hidden": 16},
    "hf": {"config": {"model_type": "wav2vec2", "hidden_size": 32, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "intermediate_size": 37, "conv_dim": [8, 8],
                      "conv_stride": [5, 4], "conv_kernel": [10, 8], "num_feat_extract_layers": 2,
                      "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
                      "classifier_proj_size": 8, "layerdrop": 0.0}},
}


def synth_clip(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Three synthetic 'genres', each music-like enough for the no-music gate (tonal, not noise):
    sustained low tones, fast high beeps at random pitches, and trains of decaying 3-kHz pings."""
    t = np.arange(int(seconds * SR)) / SR
    if kind == "tones":
        f = rng.uniform(110, 220)
        y = 0.4 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f * t)
    elif kind == "beeps":
        y = np.zeros(len(t))
        n = int(SR / 8)
        for start in range(0, len(t) - n, n):
            y[start : start + n] = 0.3 * np.sin(2 * np.pi * rng.uniform(500, 1500) * t[:n]) * np.hanning(n)
    else:
        y = np.zeros(len(t))
        period = int(SR / rng.uniform(10, 14))
        for start in range(0, len(t) - 800, period):
            y[start : start + 800] = 0.6 * np.sin(2 * np.pi * 3000 * t[:800]) * np.exp(-np.arange(800) / 200)
    return (y + 3e-4 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    rng = np.random.default_rng(0)
    for kind in ("tones", "beeps", "clicks"):
        (root / kind).mkdir()
        for i in range(10):
            write_audio(root / kind / f"{kind}{i:02d}.wav", synth_clip(kind, 4.0, rng), SR)
    return root


@pytest.mark.parametrize("arch", sorted(set(list_architectures(trainable_only=True)) - {"musicnn_genre"}))
def test_architecture_forward_backward(arch):
    model = create_model(arch, n_labels=3, **TINY[arch])
    sr = 16000 if arch in ("musicnn_transfer", "hf") else SR
    model.train()
    y = torch.randn(2, int(sr * 3.0)) * 0.1
    logits = model(y)["logits"]
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_cqt_physics():
    from musicgenre.models.frontends import CQT

    t = torch.arange(SR * 2) / SR
    spec = CQT(sr=SR)(torch.sin(2 * torch.pi * 440.0 * t)[None])[0]  # (84, frames)
    assert int(spec[:, spec.shape[1] // 2].argmax()) == 45  # A4 is 45 semitones above C1


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "crnn", str(data), "-o", str(out), "--window-seconds", "2", "--batch-size", "8",
                 "--model-args", json.dumps(TINY["crnn"]), "--lr", "3e-3", "-q", *extra])


def test_training_learns_and_the_model_works_everywhere(synth_data, tmp_path, capsys):
    out = tmp_path / "crnn_model"
    assert _train(synth_data, out, "--epochs", "12", "--patience", "0") == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "crnn" and cfg["labels"] == ["beeps", "clicks", "tones"]
    assert cfg["metrics"]["valid"]["accuracy"] >= 0.66  # chance is 0.33
    for f in ("history.csv", "history.json", "learning_curve.png", "checkpoint.pt", "test/report.json",
              "test/confusion_matrix.png"):
        assert (out / f).is_file(), f
    assert len(json.loads((out / "history.json").read_text())) == 12
    capsys.readouterr()

    # evaluate through the Classifier, over all clips
    assert main(["evaluate", "--model", str(out), "--data", str(synth_data), "--subset", "all",
                 "-o", str(tmp_path / "ev"), "-q"]) == 0
    rep = json.loads((tmp_path / "ev/report.json").read_text())
    assert rep["accuracy"] > 0.66 and rep["clips"] == 30 and set(rep["per_class"]) == {"beeps", "clicks", "tones"}
    assert len(rep["confusion_matrix"]) == 3 and (tmp_path / "ev/confusion_matrix.png").is_file()
    assert "macro-F1" in capsys.readouterr().out

    # the trained directory works with predict, explain and ensembles
    clip = synth_data / "tones" / "tones00.wav"
    assert main(["predict", str(clip), "--model", str(out), "-f", "json", "--segments"]) == 0
    pred = json.loads(capsys.readouterr().out)[0]
    assert pred["model"] == "crnn_model" and len(pred["segments"]) == 2
    assert main(["explain", str(clip), "--model", str(out), "-o", str(tmp_path / "sal.png"), "--filters"]) == 0
    assert (tmp_path / "sal.png").is_file() and (tmp_path / "sal_filters_first.png").is_file()
    assert main(["ensemble", str(out), str(out), "-o", str(tmp_path / "ens")]) == 0
    from musicgenre import Classifier

    ens = Classifier.from_pretrained(tmp_path / "ens")
    single = Classifier.from_pretrained(out)
    np.testing.assert_allclose(ens.predict(clip).scores["tones"], single.predict(clip).scores["tones"], atol=1e-5)


def test_resume_continues_exactly(synth_data, tmp_path, monkeypatch):
    import musicgenre.train.loop as loop

    straight = tmp_path / "straight"
    assert _train(synth_data, straight, "--epochs", "3", "--patience", "0") == 0

    calls = {"n": 0}
    real = loop.write_history

    def interrupt_after_two(history, out):
        real(history, out)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if Ctrl-C arrived after epoch 2 was checkpointed

    monkeypatch.setattr(loop, "write_history", interrupt_after_two)
    resumed = tmp_path / "resumed"
    assert _train(synth_data, resumed, "--epochs", "3", "--patience", "0") == 130
    monkeypatch.setattr(loop, "write_history", real)
    # new arguments on --resume are ignored (with a warning): the checkpoint's own settings continue the run
    assert _train(synth_data, resumed, "--epochs", "3", "--patience", "0", "--resume", "--lr", "0.5") == 0
    a = torch.load(straight / "checkpoint.pt", weights_only=False)
    b = torch.load(resumed / "checkpoint.pt", weights_only=False)
    assert [h["train_loss"] for h in a["history"]] == pytest.approx([h["train_loss"] for h in b["history"]])
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k])


@pytest.mark.slow
def test_ddp_two_gloo_processes(synth_data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "musicgenre", "train", "crnn", str(synth_data), "-o", str(out), "--epochs", "2",
           "--segment-seconds", "2", "--batch-size", "4", "--model-args", json.dumps(TINY["crnn"]), "-q",
           "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    assert len(json.loads((out / "history.json").read_text())) == 2


def test_freeze_encoder_and_optimizers(synth_data, tmp_path):
    out = tmp_path / "frozen"
    assert main(["train", "musicnn_transfer", str(synth_data), "-o", str(out), "--epochs", "1", "-q",
                 "--optimizer", "rmsprop", "--schedule", "plateau", "--accumulate", "2", "--freeze-encoder"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["features"]["sr"] == 16000
    from safetensors.torch import load_file

    keys = load_file(str(out / "model.safetensors"))
    assert keys and not any(k.startswith("backbone.") for k in keys)  # the shipped backbone is not copied


def test_train_usage_errors(synth_data, tmp_path, capsys):
    assert main(["train", "nope", str(synth_data), "-o", str(tmp_path / "x")]) == 2
    assert "unknown architecture" in capsys.readouterr().err
    assert main(["train", "crnn", str(tmp_path / "missing"), "-o", str(tmp_path / "x")]) == 2
    assert main(["train", "crnn", str(synth_data), "-o", str(tmp_path / "x"), "--model-args", "{bad"]) == 2
