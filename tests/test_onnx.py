"""The ONNX Runtime backend: same outputs as the torch module, checked files, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musicgenre.errors import WeightsError
from musicgenre.features import FeatureConfig
from musicgenre.modeldir import OnnxEntry, onnx_file, read, resolve
from musicgenre.runtime.onnx import OnnxModel
from musicgenre.windows import Windows

from .conftest import EXAMPLES, ROOT

pytest.importorskip("onnxruntime")

SHIPPED = resolve(None)
CLIPS = sorted(EXAMPLES.glob("*.ogg"))


@pytest.fixture(scope="module")
def example_windows() -> np.ndarray:
    """Every analysis window of the example clips (4 clips x 5 windows of 3 s)."""
    cfg = read(SHIPPED).features
    assert isinstance(cfg, FeatureConfig)
    return np.concatenate([Windows(clip, cfg).all()[0] for clip in CLIPS])


@pytest.fixture(scope="module")
def onnx_model() -> OnnxModel:
    return OnnxModel(onnx_file(SHIPPED, read(SHIPPED)))


def _copy_model(tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(SHIPPED, dst, ignore=shutil.ignore_patterns("*.int8.onnx"))
    return dst


def test_onnx_equals_torch_on_the_examples(example_windows: np.ndarray, onnx_model: OnnxModel) -> None:
    torch = pytest.importorskip("torch")
    from musicgenre.loader import load_module

    assert len(CLIPS) == 4 and example_windows.shape == (20, 187, 96)
    module = load_module(SHIPPED)
    for i in range(0, len(example_windows), 2):  # batches of 2: torch is slowest on large CPU batches
        x = example_windows[i : i + 2]
        with torch.inference_mode():
            expected = module(torch.from_numpy(x))
        got = onnx_model.run(x)
        assert set(got) == set(expected) == {"logits", "tags", "embedding"}
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name].numpy(), atol=1e-4, rtol=0)


def test_batch_axis_is_dynamic(example_windows: np.ndarray, onnx_model: OnnxModel) -> None:
    whole = onnx_model.run(example_windows[:5])["logits"]
    for start, stop in ((0, 1), (1, 4), (4, 5)):
        np.testing.assert_allclose(onnx_model.run(example_windows[start:stop])["logits"], whole[start:stop],
                                   atol=1e-5, rtol=0)


def test_classifier_onnx_backend_gives_the_torch_scores() -> None:
    pytest.importorskip("torch")
    from musicgenre import Classifier

    torch_clf = Classifier.from_pretrained(device="cpu", backend="torch")
    onnx_clf = Classifier.from_pretrained(device="cpu", backend="onnx")
    for clip in CLIPS[-1:]:
        a, b = torch_clf.predict(clip), onnx_clf.predict(clip)
        assert a.label == b.label
        assert a.scores.keys() == b.scores.keys() and a.tags.keys() == b.tags.keys()
        np.testing.assert_allclose([b.scores[k] for k in a.scores], list(a.scores.values()), atol=1e-4)
        np.testing.assert_allclose([b.tags[k] for k in a.tags], list(a.tags.values()), atol=1e-4)


def test_modified_onnx_file_is_refused(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    with open(model_dir / "model.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(WeightsError, match=r"model\.onnx: checksum mismatch"):
        OnnxModel(onnx_file(model_dir, read(model_dir)))


def test_missing_checksum_is_an_error_for_shipped_models_only(tmp_path: Path, monkeypatch, caplog) -> None:
    model_dir = _copy_model(tmp_path)
    card = read(model_dir)
    assert card.onnx is not None
    config = card.replace(onnx=OnnxEntry(card.onnx.file, None, card.onnx.extra))
    monkeypatch.setattr("musicgenre.modeldir.weights_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match="no sha256 in the model config"):
        OnnxModel(onnx_file(model_dir, config))
    monkeypatch.setattr("musicgenre.modeldir.weights_dir", lambda: tmp_path / "elsewhere")
    model = OnnxModel(onnx_file(model_dir, config))  # a user's own directory: loads, with a warning
    assert "not checked" in caplog.text
    assert set(model.output_names) == {"logits", "tags", "embedding"}


def test_no_export_and_garbled_file_name_the_file(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    config = read(model_dir)
    with pytest.raises(WeightsError, match="no ONNX export recorded"):
        OnnxModel(onnx_file(model_dir, config.replace(onnx=None)))
    (model_dir / "model.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(WeightsError, match=r"model\.onnx: cannot load the ONNX model"):
        OnnxModel(onnx_file(model_dir, config.replace(onnx=OnnxEntry("model.onnx"))))
    (model_dir / "model.onnx").unlink()
    with pytest.raises(WeightsError, match=r"model\.onnx: ONNX file not found"):
        OnnxModel(onnx_file(model_dir, config))


def test_onnx_backend_runs_without_torch(example_windows: np.ndarray, onnx_model: OnnxModel) -> None:
    """The inference install has no torch: load and run the shipped model with torch unimportable."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import json, numpy as np\n"
        "from musicgenre.modeldir import onnx_file, read, resolve\n"
        "from musicgenre.runtime.onnx import OnnxModel\n"
        "d = resolve(None)\n"
        "m = OnnxModel(onnx_file(d, read(d)))\n"
        "x = np.frombuffer(sys.stdin.buffer.read(), np.float32).reshape(-1, 187, 96)\n"
        "sys.stdout.buffer.write(m.run(x)['logits'].astype(np.float32).tobytes())\n"
    )
    x = np.ascontiguousarray(example_windows[:2])
    run = subprocess.run([sys.executable, "-c", code], input=x.tobytes(), capture_output=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr.decode()
    logits = np.frombuffer(run.stdout, np.float32).reshape(2, -1)
    np.testing.assert_allclose(logits, onnx_model.run(x)["logits"], atol=1e-6)


def test_config_records_the_shipped_export() -> None:
    entry = json.loads((SHIPPED / "config.json").read_text())["onnx"]
    assert entry["file"] == "model.onnx" and len(entry["sha256"]) == 64
    assert entry["outputs"] == ["logits", "tags", "embedding"]
    assert entry["backbone"] == {"name": "MSD_musicnn", "version": "0.1.0"}  # what scan stores features under


@pytest.mark.slow
def test_export_script_writes_a_checked_model(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from scripts import export_onnx

    model_dir = _copy_model(tmp_path)
    (model_dir / "model.onnx").unlink()
    config = read(model_dir).replace(onnx=None)
    config.save(model_dir)
    entry = export_onnx.export(model_dir)
    assert entry["max_abs_diff_vs_torch"] <= 1e-4
    saved = read(model_dir)
    assert saved.onnx is not None and saved.onnx.to_dict() == entry and saved.labels == config.labels
    OnnxModel(onnx_file(model_dir, saved))  # the recorded checksum matches the written file


def test_thread_count_reaches_the_session() -> None:
    """``load(threads=1)`` (what each Ray actor uses, one per core) sets ONNX Runtime's intra-op threads."""
    from musicgenre import load
    from musicgenre.runtime.onnx import DEFAULT_THREADS

    def threads(clf) -> int:
        return int(clf.model.runner.session.get_session_options().intra_op_num_threads)

    assert threads(load(threads=1)) == 1 and threads(load()) == DEFAULT_THREADS


@pytest.mark.parametrize(("cores", "workers", "want"), [(2, 1, None), (2, 2, 1), (2, 3, 1), (4, 2, None),
                                                        (3, 2, 1), (16, 2, None), (8, 8, 1)])
def test_threads_per_worker_leaves_no_core_oversubscribed(monkeypatch, cores: int, workers: int, want) -> None:
    """Inference threads shrink to one per worker only when the workers already fill the cores (each also has
    its decoder thread); otherwise the backend keeps its default (None)."""
    from musicgenre.runtime import threads_per_worker

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert threads_per_worker(workers) == want


@pytest.mark.parametrize("command", ["predict", "scan"])
def test_batch_commands_load_one_inference_thread_per_worker_on_two_cores(monkeypatch, tmp_path, command) -> None:
    """``predict`` and ``scan`` over several files with 2 workers on 2 cores ask for 1 intra-op thread; one file
    keeps the default (both cores for its model)."""
    import musicgenre.pipeline
    from musicgenre.cli import main

    class Loaded(Exception):
        pass

    asked: list[object] = []

    def fake_load(*args, **kwargs):
        asked.append(kwargs.get("threads"))
        raise Loaded

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(musicgenre.pipeline, "load", fake_load)
    clips = sorted(str(p) for p in EXAMPLES.glob("*.ogg"))
    extra = ["--db", str(tmp_path / "lib.db")] if command == "scan" else []
    for inputs in (clips[:2], clips[:1]):
        with pytest.raises(Loaded):
            main([command, "-q", "--workers", "2", *extra, *inputs])
    assert asked == [1, None]
