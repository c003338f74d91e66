"""Genre architectures (torch). Importing this package registers every architecture.

``create_model(name, **kw)`` builds one; ``list_architectures()`` names them. Model directories on disk
are loaded by ``musicgenre.hub``.
"""

from __future__ import annotations

from . import architectures, genre, hf, musicnn  # noqa: F401  (their @register_model decorators fill the registry)
from ._registry import create_model, get_architecture, list_architectures, register_model

__all__ = ["create_model", "get_architecture", "list_architectures", "register_model"]
