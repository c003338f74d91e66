"""Loading model directories onto a runtime backend (ONNX Runtime or torch).

What a model directory holds and how it is read, checked and written is :mod:`musicgenre.modeldir`
(``ModelCard``). This module builds the model a card names: the graph from the registry
(``models.create_model``: constructors build graphs only), then the weights: first the shipped
pretrained parts the model declares (``pretrained_parts``, e.g. its MusiCNN backbone), then the
directory's own weights file. It imports no torch at module level: a shipped model with an ONNX file
runs without it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ParameterError, WeightsError
from .features import FeatureConfig, feature_identity
from .modeldir import ModelCard, backbone_dir, load_weights, onnx_file, read
from .runtime import Runner

if TYPE_CHECKING:
    from torch import nn

BACKENDS = ("auto", "onnx", "torch")


@dataclass
class LoadedModel:
    """A ready-to-run model: ``run(windows) -> {"logits": (n, n_labels)[, "tags": (n, n_tags)][, "embedding":
    (n, d)]}`` as numpy, plus everything needed to use it. ``runner`` is a runtime backend (``musicgenre.runtime``)."""

    name: str
    labels: list[str]
    features: FeatureConfig
    card: ModelCard
    path: Path
    runner: Runner
    tag_names: list[str] = field(default_factory=list)
    temperature: float = 1.0  # calibration: logits / temperature before softmax
    # calibration by input length: the aggregated scores of n analysed windows are recalibrated at
    # temperatures[n - 1], longer inputs at the last (pipeline.calibrated_clip_scores); () = none
    temperatures: tuple[float, ...] = ()
    # (name, version) of the pretrained backbone whose embedding the runner outputs (``WindowFeatures``); None
    # when unknown. torch: recorded when the loader fills the backbone (``fill_pretrained``: the backbone card's
    # version, read there anyway); ONNX: the card's ``onnx.backbone`` entry, written by the export. Its version
    # carries the card's front end (``features.feature_identity``): levelled windows give other features.
    backbone: tuple[str, str] | None = None

    @property
    def version(self) -> str:
        """The model's version, from its card."""
        return self.card.version

    @property
    def backend(self) -> str:
        """``onnx`` or ``torch``."""
        return str(self.runner.backend)

    @property
    def device(self) -> str:
        """``cpu`` or ``cuda``."""
        return str(self.runner.device)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """(n, ...) windows -> raw outputs by name (``logits``, optionally ``tags``, ``embedding``) as numpy."""
        return dict(self.runner.run(x))


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def choose_backend(card: ModelCard, *, device: str, backend: str) -> str:
    """ONNX Runtime for models that ship an ONNX file on the CPU (the default); torch otherwise."""
    if backend not in BACKENDS:
        raise ParameterError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    if backend == "onnx" and card.onnx is None:
        raise ParameterError(f"model {card.name!r} has no ONNX file; use --backend torch")
    if backend == "auto":  # "auto" never imports torch just to look for a GPU: start-up stays light
        backend = "onnx" if card.onnx is not None and device != "cuda" else "torch"
    if backend == "torch" and not _has_torch():
        raise ParameterError(
            f"model {card.name!r} needs PyTorch (no ONNX file, or --device cuda / --backend torch): "
            "pip install 'musicgenre[train]'"
        )
    if backend == "onnx" and device == "cuda":
        raise ParameterError("the ONNX backend runs on the CPU; use --backend torch for --device cuda")
    return backend


def fill_pretrained(module: nn.Module) -> nn.Module:
    """Load the shipped pretrained parts ``module`` declares (``pretrained_parts``: submodule name -> backbone
    name in ``weights/backbones``) into their submodules, strictly; a module with ``tag_names`` gets the
    backbone's tag vocabulary. Returns ``module``."""
    versions: dict[str, tuple[str, str]] = {}
    for attr, name in dict(getattr(module, "pretrained_parts", {})).items():
        path = backbone_dir(name)
        card = read(path)
        part = getattr(module, attr)
        try:
            part.load_state_dict(load_weights(path, card))
        except RuntimeError as e:
            raise WeightsError(f"{path}: weights do not fit {type(part).__name__} ({e})") from None
        if hasattr(module, "tag_names"):
            setattr(module, "tag_names", list(card.labels))  # noqa: B010 (an attribute of the module, not a part)
        versions[attr] = (card.name, card.version)
    if versions:  # which weights filled each part: the identity of the features they compute
        setattr(module, "pretrained_versions", versions)  # noqa: B010 (an attribute of the module, not a part)
    return module


def build_pretrained(architecture: str, **model_args: object) -> nn.Module:
    """A registered architecture with its shipped pretrained parts filled in (what training starts from)."""
    from .models import create_model

    return fill_pretrained(create_model(architecture, **model_args))


def load_module(path: Path, card: ModelCard | None = None) -> nn.Module:
    """Build the torch module a model directory's card names, fill its pretrained parts, then load the
    directory's checked weights (eval mode). Parts that come from the package (``external_prefixes``) may be
    absent from the directory's weights file; every other parameter must be there."""
    card = read(path) if card is None else card
    # "./x" arguments name files inside the model directory (e.g. a saved feature extractor)
    args = {k: str(path / v[2:]) if isinstance(v, str) and v.startswith("./") else v
            for k, v in card.model_args.items()}
    module = build_pretrained(card.architecture, **args)
    state = load_weights(path, card)
    # strict=False only to allow the shipped backbone weights to be absent; every other key is checked here
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(tuple(getattr(module, "external_prefixes", ())))]
    if missing or unexpected:
        raise WeightsError(f"{path}: weights do not fit {card.architecture} (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    return module.eval()


def load_backbone(name: str) -> tuple[nn.Module, list[str]]:
    """A shipped pretrained MusiCNN tagger (``MSD_musicnn``, ``MTT_vgg``, ...) and its tag vocabulary."""
    path = backbone_dir(name)
    card = read(path)
    return load_module(path, card), list(card.labels)


def load_model(path: Path, card: ModelCard, *, device: str = "auto", backend: str = "auto",
               batch_size: int | None = None, threads: int | None = None) -> LoadedModel:
    """Load the model directory ``path``, whose ``card`` the caller has read (``modeldir.locate``), onto a runtime
    backend (ONNX Runtime or torch)."""
    if card.features is None:
        raise WeightsError(f"{path / 'config.json'}: missing key 'features'")
    chosen = choose_backend(card, device=device, backend=backend)
    tags = list(card.tags)
    runner: Runner
    if chosen == "onnx":
        from .runtime.onnx import DEFAULT_THREADS, OnnxModel

        runner = OnnxModel(onnx_file(path, card), threads=threads or DEFAULT_THREADS)
        backbone = onnx_backbone(card)
    else:
        from .models.prune import prune_constant_channels
        from .runtime.torch import TorchRunner

        module = load_module(path, card)
        backbone = module_backbone(module, card)
        module = prune_constant_channels(module)  # exact: MusiCNN's constant channels folded
        tags = tags or list(getattr(module, "tag_names", []))
        runner = TorchRunner(module, device=device, batch_size=batch_size, threads=threads)
    return LoadedModel(
        name=card.name, labels=list(card.labels), features=card.features, card=card, path=path, runner=runner,
        tag_names=tags, temperature=card.temperature if card.temperature is not None else 1.0,
        temperatures=card.temperature_by_windows,
        backbone=None if backbone is None else feature_identity(backbone, card.features),
    )


def module_backbone(module: nn.Module, card: ModelCard) -> tuple[str, str] | None:
    """(name, version) of the pretrained part ``backbone`` that ``fill_pretrained`` loaded into ``module``; a
    backbone whose weights the model file overrides (fine-tuned, not in ``external_prefixes``) gets the model's
    own name and version appended, since its embeddings are its own."""
    found = dict(getattr(module, "pretrained_versions", {})).get("backbone")
    if found is None:
        return None
    name, version = found
    if "backbone." not in tuple(getattr(module, "external_prefixes", ())):
        version = f"{version}+{card.name}-{card.version}"
    return str(name), str(version)


def onnx_backbone(card: ModelCard) -> tuple[str, str] | None:
    """(name, version) of the backbone baked into a card's ONNX graph, as its export recorded it
    (``"onnx": {..., "backbone": {"name": "MSD_musicnn", "version": "0.1.0"}}``); None when not recorded.
    Read from the card ``load()`` already holds: no second config.json read."""
    entry = None if card.onnx is None else card.onnx.extra.get("backbone")
    if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("version"), str):
        return entry["name"], entry["version"]
    return None
