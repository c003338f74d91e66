"""Model registry: architectures by name, and loading of saved/shipped models.

Architectures register a builder with ``@register_model``; a model on disk is a directory with
``config.json`` (architecture, its arguments, labels, features, sha256 of the weights) and a
safetensors file. Shipped models live in ``musicgenre/weights/<name>/``; the same loader reads
the directories that ``musicgenre train`` writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ParameterError, WeightsError
from ..features import FeatureConfig
from ..weights_io import load_weights, read_manifest

DEFAULT_MODEL = "musicnn-gtzan"
_ARCHITECTURES: dict[str, Callable[..., Any]] = {}


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register an architecture builder under its function name."""
    _ARCHITECTURES[fn.__name__] = fn
    return fn


def _ensure_registered() -> None:
    # importing the architecture modules runs their @register_model decorators
    from . import architectures, genre, hf  # noqa: F401


def list_architectures() -> dict[str, str]:
    """Architecture name -> one-line description."""
    _ensure_registered()
    return {n: (fn.__doc__ or "").strip().splitlines()[0] for n, fn in sorted(_ARCHITECTURES.items())}


def create_model(architecture: str, **kwargs: Any) -> Any:
    _ensure_registered()
    if architecture not in _ARCHITECTURES:
        raise ParameterError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(_ARCHITECTURES))}")
    return _ARCHITECTURES[architecture](**kwargs)


def weights_dir() -> Path:
    return Path(str(resources.files("musicgenre") / "weights"))


def list_pretrained() -> dict[str, dict[str, Any]]:
    """Shipped model name -> its config (labels, metrics, licence...)."""
    out = {}
    for cfg_path in sorted(weights_dir().glob("*/config.json")):
        cfg = read_manifest(cfg_path)
        out[cfg["name"]] = cfg
    return out


@dataclass
class LoadedModel:
    """A ready-to-run model: torch module in eval mode plus everything needed to use it."""

    name: str
    module: Any  # torch.nn.Module returning {"logits": (batch, n_labels)[, "tags": (batch, n_tags)]}
    labels: list[str]
    features: FeatureConfig
    config: dict[str, Any]
    path: Path

    @property
    def tag_names(self) -> list[str]:
        return list(getattr(self.module, "tag_names", []))


def resolve_model_dir(name_or_dir: str | Path | None) -> Path:
    """A shipped model's name, or a directory holding config.json."""
    if name_or_dir is None:
        name_or_dir = DEFAULT_MODEL
    as_path = Path(name_or_dir)
    if (as_path / "config.json").is_file():
        return as_path
    shipped = weights_dir() / str(name_or_dir).replace("-", "_")
    if (shipped / "config.json").is_file():
        return shipped
    known = ", ".join(list_pretrained())
    if as_path.exists():
        raise WeightsError(f"{as_path}: not a model directory (no config.json)")
    raise ParameterError(f"unknown model {str(name_or_dir)!r}: not a shipped model ({known}) nor a model directory")


def model_identity(name_or_dir: str | Path | None) -> tuple[str, str]:
    """(name, version) of a model without loading its weights: what a library row records."""
    path = resolve_model_dir(name_or_dir)
    cfg = read_manifest(path / "config.json")
    return cfg.get("name", path.name), str(cfg.get("version", "0"))


def load_model(name_or_dir: str | Path | None = None) -> LoadedModel:
    """Build the architecture named in the directory's config.json and load its checked weights."""
    path = resolve_model_dir(name_or_dir)
    cfg = read_manifest(path / "config.json")
    try:
        arch, weights_file, sha = cfg["architecture"], cfg["weights"], cfg.get("sha256")
        labels = list(cfg["labels"])
    except KeyError as e:
        raise WeightsError(f"{path / 'config.json'}: missing key {e}") from None
    module = create_model(arch, **cfg.get("model_args", {}))
    state = load_weights(path / weights_file, sha)
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(getattr(module, "external_prefixes", ()))]
    if missing or unexpected:
        raise WeightsError(f"{path}: weights do not fit {arch} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    module.eval()
    return LoadedModel(
        name=cfg.get("name", path.name),
        module=module,
        labels=labels,
        features=FeatureConfig.from_dict(cfg.get("features", {})),
        config=cfg,
        path=path,
    )
