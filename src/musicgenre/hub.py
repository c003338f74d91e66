"""Model directories on disk: resolve a name, read the manifest, load checked weights, list, export.

A model directory is self-describing: ``config.json`` (the manifest: name, architecture, model_args,
labels, features, weights file + sha256, optional ONNX file + sha256, licence, metrics) next to
``model.safetensors`` (and ``model.onnx`` for shipped models). Shipped models live in
``musicgenre/weights/<name>/``, the pretrained MusiCNN taggers in ``weights/backbones/<name>/``; the same
loader reads the directories that ``musicgenre train`` writes. This module imports no torch: a shipped
model with an ONNX file runs without it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._io import sha256_file, write_atomic, write_json
from .errors import ParameterError, WeightsError
from .features import FeatureConfig

log = logging.getLogger(__name__)

DEFAULT_MODEL = "musicnn-gtzan"
BACKENDS = ("auto", "onnx", "torch")


def weights_dir() -> Path:
    return Path(str(resources.files("musicgenre") / "weights"))


def is_shipped(path: Path) -> bool:
    return weights_dir().resolve() in path.resolve().parents


def read_manifest(path: Path) -> dict[str, Any]:
    """A model directory's ``config.json`` (or the file itself)."""
    path = path / "config.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{path}: model config not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: unreadable model config ({e})") from e


def check_file(path: Path, sha256: str | None, *, required: bool) -> None:
    """Raise ``WeightsError`` unless ``path`` exists and matches ``sha256``. Shipped files must carry a
    checksum (``required``); a model directory the user trained may lack one."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if sha256 is None:
        if required:
            raise WeightsError(f"{path}: no sha256 in the model config; shipped weights must be checksummed; "
                               "reinstall musicgenre")
        return
    actual = sha256_file(path)
    if actual != sha256:
        raise WeightsError(
            f"{path}: checksum mismatch (expected sha256 {sha256[:12]}..., got {actual[:12]}...); "
            "the file is corrupt or was modified; reinstall musicgenre or re-export the model"
        )


def load_weights(path: Path, sha256: str | None, *, required: bool = True) -> dict[str, Any]:
    """A safetensors state dict (torch tensors), after its checksum check."""
    from safetensors.torch import load_file

    check_file(path, sha256, required=required)
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated/garbled files
        raise WeightsError(f"{path}: cannot read weights ({e})") from e


def save_model_dir(state: dict[str, Any], out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Write ``state`` as ``out/model.safetensors`` and ``config`` + its sha256 as ``out/config.json``,
    both atomically, so a weights file never exists without its checksum."""
    from safetensors.torch import save

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    write_atomic(out / "model.safetensors", save(tensors))
    config = {**config, "weights": "model.safetensors", "sha256": sha256_file(out / "model.safetensors")}
    write_json(out / "config.json", config)
    return config


def resolve_model_dir(name_or_dir: str | Path | None) -> Path:
    """A shipped model's name (``musicnn-gtzan``), a shipped backbone (``backbones/MSD_musicnn``) or a
    directory holding config.json."""
    if name_or_dir is None:
        name_or_dir = DEFAULT_MODEL
    as_path = Path(name_or_dir)
    if (as_path / "config.json").is_file():
        return as_path
    shipped = weights_dir() / str(name_or_dir).replace("-", "_")
    if (shipped / "config.json").is_file():
        return shipped
    if as_path.exists():
        raise WeightsError(f"{as_path}: not a model directory (no config.json)")
    known = ", ".join(list_pretrained())
    raise ParameterError(f"unknown model {str(name_or_dir)!r}: not a shipped model ({known}) nor a model directory")


def list_pretrained() -> dict[str, dict[str, Any]]:
    """Shipped model name -> its config (labels, metrics, licence...); backbones are not listed."""
    return {cfg["name"]: cfg for cfg in (read_manifest(p) for p in sorted(weights_dir().glob("*/config.json")))}


def model_identity(name_or_dir: str | Path | None) -> tuple[str, str]:
    """(name, version) of a model without loading its weights: what a library row records."""
    path = resolve_model_dir(name_or_dir)
    cfg = read_manifest(path)
    return cfg.get("name", path.name), str(cfg.get("version", "0"))


@dataclass
class LoadedModel:
    """A ready-to-run model: ``run(windows) -> {"logits": (n, n_labels)[, "tags": (n, n_tags)]}`` as numpy,
    plus everything needed to use it. ``runner`` is a runtime backend (``musicgenre.runtime``)."""

    name: str
    labels: list[str]
    features: FeatureConfig
    config: dict[str, Any]
    path: Path
    runner: Any
    tag_names: list[str] = field(default_factory=list)
    temperature: float = 1.0  # calibration: logits / temperature before softmax
    # calibration by input length: the aggregated scores of n analysed windows are recalibrated at
    # temperatures[n - 1], longer inputs at the last (pipeline.calibrated_clip_scores); () = none
    temperatures: tuple[float, ...] = ()

    @property
    def backend(self) -> str:
        return str(self.runner.backend)

    @property
    def device(self) -> str:
        return str(self.runner.device)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(self.runner.run(x))


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def choose_backend(cfg: dict[str, Any], *, device: str, backend: str) -> str:
    """ONNX Runtime for models that ship an ONNX file on the CPU (the default); torch otherwise."""
    if backend not in BACKENDS:
        raise ParameterError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    if backend == "onnx" and "onnx" not in cfg:
        raise ParameterError(f"model {cfg.get('name')!r} has no ONNX file; use --backend torch")
    if backend == "auto":  # "auto" never imports torch just to look for a GPU: start-up stays light
        backend = "onnx" if "onnx" in cfg and device != "cuda" else "torch"
    if backend == "torch" and not _has_torch():
        raise ParameterError(
            f"model {cfg.get('name')!r} needs PyTorch (no ONNX file, or --device cuda / --backend torch): "
            "pip install 'musicgenre[train]'"
        )
    if backend == "onnx" and device == "cuda":
        raise ParameterError("the ONNX backend runs on the CPU; use --backend torch for --device cuda")
    return backend


def load_module(path: Path, cfg: dict[str, Any] | None = None) -> Any:
    """Build the torch module named in a model directory's manifest and load its checked weights
    (eval mode). Frozen pretrained parts that the package ships (``external_prefixes``) are not in
    the directory's weights file; every other parameter must be."""
    from .models import create_model

    cfg = read_manifest(path) if cfg is None else cfg
    try:
        arch, weights_file = cfg["architecture"], cfg["weights"]
    except KeyError as e:
        raise WeightsError(f"{path / 'config.json'}: missing key {e}") from None
    # "./x" arguments name files inside the model directory (e.g. a saved feature extractor)
    args = {k: str(path / v[2:]) if isinstance(v, str) and v.startswith("./") else v
            for k, v in cfg.get("model_args", {}).items()}
    module = create_model(arch, **args)
    state = load_weights(path / weights_file, cfg.get("sha256"), required=is_shipped(path))
    # strict=False only to allow the shipped backbone weights to be absent; every other key is checked here
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(tuple(getattr(module, "external_prefixes", ())))]
    if missing or unexpected:
        raise WeightsError(f"{path}: weights do not fit {arch} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return module.eval()


def load_backbone(name: str) -> tuple[Any, list[str]]:
    """A shipped pretrained MusiCNN tagger (``MSD_musicnn``, ``MTT_vgg``, ...) and its tag vocabulary."""
    path = weights_dir() / "backbones" / name
    cfg = read_manifest(path)
    return load_module(path, cfg), list(cfg["labels"])


def onnx_file(path: Path, cfg: dict[str, Any]) -> Path:
    """The model directory's ONNX file, checked against the sha256 in ``cfg["onnx"]`` (a missing checksum is
    an error for shipped models; a user's own directory is only warned about)."""
    entry = cfg.get("onnx")
    if not isinstance(entry, dict) or "file" not in entry:
        raise WeightsError(f"{path / 'config.json'}: no ONNX export recorded (run scripts/export_onnx.py)")
    file = path / entry["file"]
    if not file.is_file():
        raise WeightsError(f"{file}: ONNX file not found")
    if entry.get("sha256") is None and not is_shipped(path):
        log.warning("%s: no sha256 recorded; the ONNX file is not checked", file)
    check_file(file, entry.get("sha256"), required=is_shipped(path))
    return file


def load_model(name_or_dir: str | Path | None = None, *, device: str = "auto", backend: str = "auto",
               batch_size: int | None = None, threads: int | None = None) -> LoadedModel:
    """Resolve, check and load a model directory onto a runtime backend (ONNX Runtime or torch)."""
    path = resolve_model_dir(name_or_dir)
    cfg = read_manifest(path)
    if "labels" not in cfg:
        raise WeightsError(f"{path / 'config.json'}: missing key 'labels'")
    chosen = choose_backend(cfg, device=device, backend=backend)
    tags = list(cfg.get("tags", []))
    if chosen == "onnx":
        from .runtime.onnx import DEFAULT_THREADS, OnnxModel

        runner: Any = OnnxModel(onnx_file(path, cfg), threads=threads or DEFAULT_THREADS)
    else:
        from .models.musicnn import prune_constant_channels
        from .runtime.torch import TorchRunner

        module = prune_constant_channels(load_module(path, cfg))  # exact: MusiCNN's constant channels folded
        tags = tags or list(getattr(module, "tag_names", []))
        runner = TorchRunner(module, device=device, batch_size=batch_size)
    return LoadedModel(
        name=cfg.get("name", path.name), labels=list(cfg["labels"]),
        features=FeatureConfig.from_dict(cfg.get("features", {})), config=cfg, path=path, runner=runner,
        tag_names=tags, temperature=float(cfg.get("temperature", 1.0)),
        temperatures=tuple(float(t) for t in cfg.get("temperature_by_windows", ())),
    )
