"""Genre architectures (torch), behind a registry that imports no torch until a model is built.

``create_model(name, **kw)`` builds one; ``list_architectures()`` names them (both import the architecture
modules, whose ``@register_model`` decorators fill the registry). ``declared_architectures()`` reads the same
names, descriptions and requirements from the modules' source, without importing them: the light install
(no torch) lists them too. Model directories on disk are loaded by ``musicgenre.loader``.
"""

from __future__ import annotations

from typing import Any

from . import _registry
from ._registry import ARCHITECTURE_MODULES, Architecture, Declared, declared_architectures, register_model

__all__ = ["ARCHITECTURE_MODULES", "Architecture", "Declared", "create_model", "declared_architectures",
           "get_architecture", "list_architectures", "register_model"]


def _register_all() -> None:
    """Import every architecture module (ARCHITECTURE_MODULES), filling the registry (timm's pattern)."""
    from . import architectures, genre, hf, musicnn  # noqa: F401


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name`` (a ParameterError naming the known ones otherwise)."""
    _register_all()
    return _registry.get_architecture(name)


def list_architectures(*, trainable_only: bool = False) -> dict[str, str]:
    """Architecture name -> one-line description."""
    _register_all()
    return _registry.list_architectures(trainable_only=trainable_only)


def create_model(architecture: str, **kwargs: Any) -> Any:
    """Build the graph of a registered architecture (no weights are read: ``hub`` loads them)."""
    return get_architecture(architecture).builder(**kwargs)
