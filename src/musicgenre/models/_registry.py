"""Architecture registry, a leaf module (timm's ``_registry`` pattern): it imports no model code and no torch.

Each architecture registers its builder with ``@register_model(features=...)``, declaring the input it
takes (sample rate, window, front end) and what it needs beyond the package (``requires``) where it is
defined. ``models.get_architecture`` / ``create_model`` import every module of ``ARCHITECTURE_MODULES`` first,
which fills the registry; ``declared_architectures`` reads the same declarations from their source without
importing them. Loading models from disk lives in ``musicgenre.loader``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    requires: tuple[str, ...] = ("torch",)  # importable packages it needs
    extra: str = "train"  # the pip extra that installs them: pip install 'musicgenre[EXTRA]'

    @property
    def description(self) -> str:
        """The first line of the builder's docstring."""
        return (self.builder.__doc__ or "").strip().splitlines()[0]


_ARCHITECTURES: dict[str, Architecture] = {}


def register_model(
    fn: Callable[..., Any] | None = None, *, features: FeatureConfig = FeatureConfig(), trainable: bool = True,
    head_names: tuple[str, ...] = ("head",), requires: tuple[str, ...] = ("torch",), extra: str = "train",
) -> Any:
    """Register an architecture builder under its function name, with the input it expects
    (bare ``@register_model`` means MusiCNN log-mel windows, ``FeatureConfig()``)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _ARCHITECTURES[fn.__name__] = Architecture(fn.__name__, fn, features, trainable, head_names, requires,
                                                    extra)
        return fn

    return wrap(fn) if fn is not None else wrap


def get_architecture(name: str) -> Architecture:
    """A registered architecture by name (a ParameterError naming the known ones otherwise)."""
    if name not in _ARCHITECTURES:
        raise ParameterError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHITECTURES))}")
    return _ARCHITECTURES[name]


def list_architectures(*, trainable_only: bool = False) -> dict[str, str]:
    """Architecture name -> one-line description."""
    return {n: a.description for n, a in sorted(_ARCHITECTURES.items()) if a.trainable or not trainable_only}


# The modules whose @register_model decorators fill the registry (models.__init__ imports exactly these).
ARCHITECTURE_MODULES = ("architectures", "genre", "hf", "musicnn")


@dataclass(frozen=True)
class Declared:
    """An architecture as its source declares it, read without importing it."""

    name: str
    description: str
    trainable: bool
    requires: tuple[str, ...]
    extra: str


def declared_architectures() -> dict[str, Declared]:
    """Every ``@register_model`` function of ARCHITECTURE_MODULES, read from the source (no torch import):
    name -> its description, whether ``musicgenre train`` builds it, and the packages it needs."""
    out: dict[str, Declared] = {}
    for module in ARCHITECTURE_MODULES:
        tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                target = call.func if call is not None else deco
                if not (isinstance(target, ast.Name) and target.id == "register_model"):
                    continue
                kw = {k.arg: k.value for k in (call.keywords if call is not None else [])}
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                out[node.name] = Declared(
                    node.name, doc[0] if doc else "",
                    bool(ast.literal_eval(kw["trainable"])) if "trainable" in kw else True,
                    tuple(ast.literal_eval(kw["requires"])) if "requires" in kw else ("torch",),
                    str(ast.literal_eval(kw["extra"])) if "extra" in kw else "train")
    return dict(sorted(out.items()))
