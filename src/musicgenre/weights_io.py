"""Reading and writing model weights: safetensors plus a JSON manifest, sha256-checked at load.

One export function writes both files so a weights file can never ship without its checksum,
licence and provenance.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import WeightsError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_weights(state: dict[str, Any], path: Path, manifest: dict[str, Any], manifest_path: Path) -> dict[str, Any]:
    """Write ``state`` to ``path`` (safetensors) and ``manifest`` + its sha256 to ``manifest_path``."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))
    manifest = {**manifest, "weights": path.name, "sha256": sha256_file(path)}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_weights(path: Path, sha256: str | None) -> dict[str, Any]:
    """Load a safetensors file after checking it against ``sha256`` (None skips the check)."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise WeightsError(
                f"{path}: checksum mismatch (expected sha256 {sha256[:12]}..., got {actual[:12]}...); "
                "the file is corrupt or was modified; reinstall musicgenre or re-export the model"
            )
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated/garbled files
        raise WeightsError(f"{path}: cannot read weights ({e})") from e


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{path}: model config not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: unreadable model config ({e})") from e
