"""The model directory contract (``musicgenre.modeldir.ModelCard``): every shipped config.json reads into a card
and writes back byte-identical; a missing or mistyped key is a WeightsError naming it; the card is the only
writer of config.json; constructors build graphs only and the loader fills pretrained weights."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from musicgenre.errors import WeightsError
from musicgenre.features import FeatureConfig
from musicgenre.modeldir import ModelCard, OnnxEntry, from_dict, list_shipped, read, resolve, weights_dir

from .conftest import ROOT

SHIPPED_CONFIGS = sorted(weights_dir().rglob("config.json"))


def test_shipped_models_and_backbones_are_found() -> None:
    names = {p.parent.name for p in SHIPPED_CONFIGS}
    assert {"musicnn_gtzan", "MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"} <= names
    assert "musicnn-gtzan" in list_shipped()


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.parent.name)
def test_every_shipped_config_reads_into_a_card_and_writes_back_byte_identical(path: Path, tmp_path: Path) -> None:
    card = read(path.parent)
    assert card.version and card.labels and card.features is not None and card.sha256
    card.save(tmp_path)
    assert (tmp_path / "config.json").read_bytes() == path.read_bytes()


def _shipped_dict() -> dict:
    return json.loads((resolve(None) / "config.json").read_text())


@pytest.mark.parametrize("key", ["name", "version", "architecture", "labels", "model_args", "features"])
def test_a_missing_key_is_an_error_naming_it(key: str) -> None:
    cfg = _shipped_dict()
    del cfg[key]
    with pytest.raises(WeightsError, match=f"missing key '{key}'"):
        from_dict(cfg, where="x/config.json")


@pytest.mark.parametrize(("key", "value"), [("name", 3), ("version", 2.0), ("labels", "rock"), ("labels", [1, 2]),
                                            ("model_args", []), ("temperature", "1"), ("temperature", -1.0),
                                            ("sha256", 0), ("onnx", "model.onnx"), ("tags", {}),
                                            ("temperature_by_windows", [1.0, "x"])])
def test_a_mistyped_key_is_an_error_naming_it(key: str, value: object) -> None:
    cfg = {**_shipped_dict(), key: value}
    with pytest.raises(WeightsError, match=f"x/config.json: key '{key}'"):
        from_dict(cfg, where="x/config.json")


def test_a_mistyped_feature_or_onnx_key_is_named() -> None:
    cfg = _shipped_dict()
    with pytest.raises(WeightsError, match="'features.sr' must be int"):
        from_dict({**cfg, "features": {**cfg["features"], "sr": "16000"}})
    with pytest.raises(WeightsError, match=r"\[onnx\]: missing key 'file'"):
        from_dict({**cfg, "onnx": {"sha256": "0" * 64}})


def test_unreadable_config_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match=r"config\.json: unreadable model config"):
        read(tmp_path)
    with pytest.raises(WeightsError, match="model config not found"):
        read(tmp_path / "nothing" / "config.json")


def test_a_card_round_trips_through_dict_and_replace(tmp_path: Path) -> None:
    card = ModelCard(name="m", version="1", architecture="crnn", labels=("a", "b"), model_args={"n_labels": 2},
                     features=FeatureConfig(sr=22050, input="waveform", window_seconds=10.0),
                     extra={"description": "d", "metrics": {"valid": {"accuracy": 0.5}}})
    assert from_dict(card.to_dict()) == card
    moved = card.replace(onnx=OnnxEntry("model.onnx", "ab" * 32, {"opset": 18}), temperature=1.5)
    assert moved.onnx == OnnxEntry("model.onnx", "ab" * 32, {"opset": 18}) and moved.temperature == 1.5
    assert moved.get("metrics") == {"valid": {"accuracy": 0.5}} and moved.description == "d"
    moved.save(tmp_path)
    assert read(tmp_path) == moved


def test_ensemble_cards_need_members_not_weights() -> None:
    card = from_dict({"name": "e", "version": "1", "architecture": "ensemble", "members": ["../a", "../b"],
                      "labels": ["x"]})
    assert card.is_ensemble and card.members == ("../a", "../b") and card.weights is None
    with pytest.raises(WeightsError, match="missing key 'members'"):
        from_dict({"name": "e", "version": "1", "architecture": "ensemble", "labels": ["x"]})


def test_config_json_has_one_writer() -> None:
    """Only modeldir writes config.json: no other module of the package, script or benchmark names it next to a
    write (write_json / write_text / open for writing)."""
    writes = re.compile(r"(write_json|write_text|write_atomic|json\.dump)\([^)]*config\.json")
    offenders = []
    for folder in ("src/musicgenre", "scripts", "benchmarks", "experiments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "modeldir.py":
                continue
            if writes.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_constructors_build_graphs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a model reads nothing from disk; the loader fills its pretrained backbone afterwards."""
    torch = pytest.importorskip("torch")
    import musicgenre.modeldir as modeldir
    from musicgenre.loader import fill_pretrained, load_backbone
    from musicgenre.models import create_model

    def no_disk(*a: object, **k: object) -> None:
        raise AssertionError("a constructor read a model directory")

    with monkeypatch.context() as m:
        m.setattr(modeldir, "read", no_disk)
        m.setattr(modeldir, "load_weights", no_disk)
        genre = create_model("musicnn_genre", n_labels=3)
        transfer = create_model("musicnn_transfer", n_labels=3)
    assert genre.tag_names == []
    fill_pretrained(genre)
    fill_pretrained(transfer)
    reference, tags = load_backbone("MSD_musicnn")
    assert genre.tag_names == tags
    for model in (genre, transfer):
        for k, v in reference.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[k], v), k


@pytest.mark.parametrize("key", ["version", "weights"])
def test_a_directory_without_version_or_weights_is_refused(tmp_path: Path, key: str) -> None:
    pytest.importorskip("torch")
    from musicgenre import load

    shutil.copytree(resolve(None), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg[key]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=f"missing key '{key}'"):
        load(tmp_path / "m", backend="torch")


def test_older_feature_keys_are_still_read() -> None:
    """Directories written before the window rename (``patch_frames``, ``window_seconds`` 0.0 for log-mel input)
    load with the same windows; a waveform window keeps its length; an unknown input kind is refused."""
    old = FeatureConfig.from_dict({"sr": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 96, "patch_frames": 187,
                                   "input": "logmel_frames", "window_seconds": 0.0})
    assert old == FeatureConfig() and old.window_frames == 187 and old.window_seconds == pytest.approx(2.992)
    wave = FeatureConfig.from_dict({"sr": 22050, "input": "waveform", "window_seconds": 10.0})
    assert wave.window_seconds == 10.0 and wave.window_samples == 220500
    cfg = _shipped_dict()
    with pytest.raises(WeightsError, match="key 'features' is invalid"):
        from_dict({**cfg, "features": {**cfg["features"], "input": "spectrogram"}})


def _count_config_reads(monkeypatch: pytest.MonkeyPatch) -> dict[Path, int]:
    """Every read of a config.json (``modeldir.read`` is the one reader; it reads with ``Path.read_text``)."""
    reads: dict[Path, int] = {}
    real = Path.read_text

    def counting(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "config.json":
            key = self.parent.resolve()
            reads[key] = reads.get(key, 0) + 1
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting)
    return reads


def test_load_reads_each_config_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``load()`` reads a model directory's config.json once and passes the card down; an ensemble reads its
    own and each member's once."""
    from musicgenre.ensemble import create_ensemble
    from musicgenre.pipeline import load

    shipped = resolve(None).resolve()
    reads = _count_config_reads(monkeypatch)
    load(None)
    assert reads == {shipped: 1}

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(shipped, d)
    create_ensemble([a, b], tmp_path / "ens")
    reads.clear()
    load(tmp_path / "ens")
    assert reads == {(tmp_path / "ens").resolve(): 1, a.resolve(): 1, b.resolve(): 1}
