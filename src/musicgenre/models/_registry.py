"""Architecture registry, a leaf module (timm's ``_registry`` pattern): it imports no model code.

Each architecture registers its builder with ``@register_model(features=...)``, declaring the input it
takes (sample rate, window, front end) where it is defined. ``models/__init__`` imports every
architecture module, so importing ``musicgenre.models`` fills the registry. Loading models from disk
lives in ``musicgenre.hub``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError
from ..features import FeatureConfig


@dataclass(frozen=True)
class Architecture:
    name: str
    builder: Callable[..., Any]
    features: FeatureConfig  # the input its windows have by default (sample rate, window, front end)
    trainable: bool  # whether `musicgenre train ARCH` builds it from scratch/a backbone
    head_names: tuple[str, ...]  # submodules `--freeze-encoder` leaves trainable

    @property
    def description(self) -> str:
        return (self.builder.__doc__ or "").strip().splitlines()[0]


_ARCHITECTURES: dict[str, Architecture] = {}


def register_model(
    fn: Callable[..., Any] | None = None, *, features: FeatureConfig = FeatureConfig(), trainable: bool = True,
    head_names: tuple[str, ...] = ("head",),
) -> Any:
    """Register an architecture builder under its function name, with the input it expects
    (bare ``@register_model`` means MusiCNN log-mel patches, ``FeatureConfig()``)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _ARCHITECTURES[fn.__name__] = Architecture(fn.__name__, fn, features, trainable, head_names)
        return fn

    return wrap(fn) if fn is not None else wrap


def get_architecture(name: str) -> Architecture:
    if name not in _ARCHITECTURES:
        raise ParameterError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHITECTURES))}")
    return _ARCHITECTURES[name]


def list_architectures(*, trainable_only: bool = False) -> dict[str, str]:
    """Architecture name -> one-line description."""
    return {n: a.description for n, a in sorted(_ARCHITECTURES.items()) if a.trainable or not trainable_only}


def create_model(architecture: str, **kwargs: Any) -> Any:
    return get_architecture(architecture).builder(**kwargs)
