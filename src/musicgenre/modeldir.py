"""Model directories on disk, as a typed contract: :class:`ModelCard` is ``config.json``.

A model directory is self-describing: ``config.json`` (the card: name, version, architecture,
model_args, labels, features, weights file + sha256, optional ONNX file + sha256, calibration,
licence, metrics) next to ``model.safetensors`` (and ``model.onnx`` for shipped models). Shipped
models live in ``musicgenre/weights/<name>/``, the pretrained MusiCNN taggers in
``weights/backbones/<name>/``; ``musicgenre train`` writes the same kind of directory.

This module is the only reader and writer of ``config.json``: :func:`read` validates every key it
knows (a missing or mistyped key is a ``WeightsError`` naming it), :meth:`ModelCard.save` is the one
save (weights and checksum written together). It sits below ``models/`` and imports neither torch nor
any model code, so the light install reads cards and checks files without them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import sha256_file, write_atomic, write_json
from .errors import ParameterError, WeightsError
from .features import FeatureConfig
from .openset import OpenSet

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "musicnn-gtzan"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"

# Keys a card types; every other key of config.json (description, licence, training, metrics, source,
# reference, ...) is kept as it was read, in ``extra``.
_HEAD = ("name", "version", "architecture", "model_args", "members", "labels", "features", "temperature",
         "temperature_by_windows", "open_set")
_TAIL = ("weights", "sha256", "onnx", "tags")


@dataclass(frozen=True)
class OnnxEntry:
    """The ONNX export recorded in a card: its file (relative to the directory), the file's sha256 and what
    the exporter noted about it (opset, inputs, outputs, torch version, ...)."""

    file: str
    sha256: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``"onnx"`` value of config.json."""
        return {"file": self.file, **({"sha256": self.sha256} if self.sha256 is not None else {}), **self.extra}


@dataclass(frozen=True)
class ModelCard:
    """A model directory's ``config.json``, typed.

    ``architecture`` names a registered model (``models.create_model``) or ``"ensemble"`` (then ``members``
    holds the member directories, relative to the ensemble's). ``weights``/``sha256`` are set by :meth:`save`.
    ``temperature`` is the calibration temperature (``None``: none fitted); ``temperature_by_windows[n - 1]``
    recalibrates a clip of n windows. ``extra`` is every other key, kept in its order.
    """

    name: str
    version: str
    architecture: str
    labels: tuple[str, ...]
    model_args: Mapping[str, Any] = field(default_factory=dict)
    features: FeatureConfig | None = None
    members: tuple[str, ...] = ()
    temperature: float | None = None
    temperature_by_windows: tuple[float, ...] = ()
    open_set: OpenSet | None = None  # the "unknown" detector (openset.py); None: a model without one
    weights: str | None = None
    sha256: str | None = None
    onnx: OnnxEntry | None = None
    tags: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_ensemble(self) -> bool:
        """Whether the directory is an ensemble of other model directories."""
        return self.architecture == "ensemble"

    def get(self, key: str, default: Any = None) -> Any:
        """An ``extra`` key (``description``, ``licence``, ``metrics``, ...)."""
        return self.extra.get(key, default)

    @property
    def description(self) -> str:
        """The card's one-paragraph description (``extra``), or empty."""
        return str(self.extra.get("description", ""))

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` (checked as if read from disk); ``None`` removes an optional key."""
        d = self.to_dict()
        for k, v in _as_json(changes).items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        return from_dict(d, where="ModelCard.replace")

    def to_dict(self) -> dict[str, Any]:
        """config.json's content: typed keys first, then ``extra`` in its order, then weights, sha256, onnx and
        tags (the order every writer has used, so a card read and written back is byte-identical)."""
        head: dict[str, Any] = {"name": self.name, "version": self.version, "architecture": self.architecture}
        if self.model_args or not self.is_ensemble:
            head["model_args"] = dict(self.model_args)
        if self.members:
            head["members"] = list(self.members)
        head["labels"] = list(self.labels)
        if self.features is not None:
            head["features"] = self.features.to_dict()
        if self.temperature is not None:
            head["temperature"] = self.temperature
        if self.temperature_by_windows:
            head["temperature_by_windows"] = list(self.temperature_by_windows)
        if self.open_set is not None:
            head["open_set"] = self.open_set.to_dict()
        tail: dict[str, Any] = {}
        if self.weights is not None:
            tail["weights"] = self.weights
        if self.sha256 is not None:
            tail["sha256"] = self.sha256
        if self.onnx is not None:
            tail["onnx"] = self.onnx.to_dict()
        if self.tags:
            tail["tags"] = list(self.tags)
        return {**head, **self.extra, **tail}

    def save(self, directory: Path, state: Mapping[str, torch.Tensor] | None = None) -> ModelCard:
        """Write this card as ``directory/config.json``; with ``state``, first its tensors as
        ``directory/model.safetensors``, and record that file and its sha256 in the card, so a weights file
        never exists without its checksum. Both files are written atomically. Returns the card written."""
        directory.mkdir(parents=True, exist_ok=True)
        card = self
        if state is not None:
            from safetensors.torch import save

            tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
            write_atomic(directory / WEIGHTS, save(tensors))
            card = dataclasses.replace(self, weights=WEIGHTS, sha256=sha256_file(directory / WEIGHTS))
        write_json(directory / CONFIG, card.to_dict())
        return card


def _as_json(changes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in changes.items():
        if isinstance(v, FeatureConfig | OnnxEntry | OpenSet):
            v = v.to_dict()
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def _want(cfg: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, *, required: bool = True
          ) -> Any:
    if key not in cfg:
        if required:
            raise WeightsError(f"{where}: missing key {key!r}")
        return None
    value = cfg[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                                               else (kind,))):
        names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise WeightsError(f"{where}: key {key!r} must be {names}, not {type(value).__name__}")
    return value


def _strings(cfg: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> tuple[str, ...]:
    value = _want(cfg, key, list, where, required=required)
    if value is None:
        return ()
    if not all(isinstance(v, str) for v in value):
        raise WeightsError(f"{where}: key {key!r} must be a list of strings")
    return tuple(value)


def _features(cfg: Mapping[str, Any], where: str) -> FeatureConfig | None:
    raw = _want(cfg, "features", dict, where, required=False)
    if raw is None:
        return None
    defaults = FeatureConfig()
    for k, v in raw.items():
        name = {"patch_frames": "window_frames"}.get(k, k)  # older directories' key, still read
        if not hasattr(defaults, name):
            continue
        kind = type(getattr(defaults, name))
        ok = isinstance(v, str) if kind is str else (isinstance(v, int | float) and not isinstance(v, bool))
        if not ok or (kind is int and not isinstance(v, int)):
            raise WeightsError(f"{where}: key 'features.{k}' must be {kind.__name__}, not {type(v).__name__}")
    try:
        return FeatureConfig.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{where}: key 'features' is invalid ({e})") from None


def from_dict(cfg: Mapping[str, Any], *, where: str = CONFIG) -> ModelCard:
    """The card of a parsed config.json; ``where`` names it in errors."""
    if not isinstance(cfg, Mapping):
        raise WeightsError(f"{where}: a model config must be a JSON object")
    architecture = _want(cfg, "architecture", str, where)
    ensemble = architecture == "ensemble"
    onnx = None
    raw_onnx = _want(cfg, "onnx", dict, where, required=False)
    if raw_onnx is not None:
        onnx = OnnxEntry(file=_want(raw_onnx, "file", str, f"{where} [onnx]"),
                         sha256=_want(raw_onnx, "sha256", str, f"{where} [onnx]", required=False),
                         extra={k: v for k, v in raw_onnx.items() if k not in ("file", "sha256")})
    temperature = _want(cfg, "temperature", (int, float), where, required=False)
    if temperature is not None and not temperature > 0:
        raise WeightsError(f"{where}: key 'temperature' must be > 0, not {temperature}")
    by_windows = _want(cfg, "temperature_by_windows", list, where, required=False) or []
    if not all(isinstance(t, int | float) and not isinstance(t, bool) and t > 0 for t in by_windows):
        raise WeightsError(f"{where}: key 'temperature_by_windows' must be a list of numbers > 0")
    labels = _strings(cfg, "labels", where, required=True)
    if not labels:
        raise WeightsError(f"{where}: key 'labels' is empty")
    card = ModelCard(
        name=_want(cfg, "name", str, where),
        version=_want(cfg, "version", str, where),
        architecture=architecture,
        labels=labels,
        model_args=dict(_want(cfg, "model_args", dict, where, required=not ensemble) or {}),
        features=_features(cfg, where),
        members=_strings(cfg, "members", where, required=ensemble),
        temperature=None if temperature is None else float(temperature),
        temperature_by_windows=tuple(float(t) for t in by_windows),
        open_set=None if cfg.get("open_set") is None else OpenSet.from_dict(cfg["open_set"], where=where),
        weights=_want(cfg, "weights", str, where, required=False),  # set by save; a model needs it to load
        sha256=_want(cfg, "sha256", str, where, required=False),
        onnx=onnx,
        tags=_strings(cfg, "tags", where),
        extra={k: v for k, v in cfg.items() if k not in _HEAD and k not in _TAIL},
    )
    if not ensemble and card.features is None:
        raise WeightsError(f"{where}: missing key 'features'")
    return card


def weights_dir() -> Path:
    """The installed package's ``weights/`` folder (shipped models and backbones)."""
    return Path(str(resources.files("musicgenre") / "weights"))


def is_shipped(path: Path) -> bool:
    """Whether ``path`` lies inside the installed package's weights (whose files must carry checksums)."""
    return weights_dir().resolve() in path.resolve().parents


def read(path: Path) -> ModelCard:
    """The card of a model directory (or of its ``config.json`` itself)."""
    path = path / CONFIG if path.is_dir() else path
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{path}: model config not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: unreadable model config ({e})") from e
    return from_dict(cfg, where=str(path))


def resolve(name_or_dir: str | Path | None) -> Path:
    """A shipped model's name (``musicnn-gtzan``; ``None`` is the default model), a shipped backbone
    (``backbones/MSD_musicnn``) or a directory holding config.json."""
    if name_or_dir is None:
        name_or_dir = DEFAULT_MODEL
    as_path = Path(name_or_dir)
    if (as_path / CONFIG).is_file():
        return as_path
    shipped = weights_dir() / str(name_or_dir).replace("-", "_")
    if (shipped / CONFIG).is_file():
        return shipped
    if as_path.exists():
        raise WeightsError(f"{as_path}: not a model directory (no config.json)")
    known = ", ".join(list_shipped())
    raise ParameterError(f"unknown model {str(name_or_dir)!r}: not a shipped model ({known}) nor a model directory")


def locate(name_or_dir: str | Path | None) -> tuple[Path, ModelCard]:
    """``resolve`` then ``read``: a model's directory and its card, config.json read once (``load()`` passes the
    card down from here)."""
    path = resolve(name_or_dir)
    return path, read(path)


def list_shipped() -> dict[str, ModelCard]:
    """Shipped model name -> its card (labels, metrics, licence...); backbones are not listed."""
    cards = (read(p) for p in sorted(weights_dir().glob(f"*/{CONFIG}")))
    return {card.name: card for card in cards}


def backbone_dir(name: str) -> Path:
    """The directory of a shipped pretrained MusiCNN tagger (``MSD_musicnn``, ``MTT_vgg``, ...)."""
    return weights_dir() / "backbones" / name


def identity(name_or_dir: str | Path | None) -> tuple[str, str]:
    """(name, version) of a model without loading its weights: what a library row records."""
    _, card = locate(name_or_dir)
    return card.name, card.version


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


def load_weights(directory: Path, card: ModelCard) -> dict[str, torch.Tensor]:
    """The directory's safetensors state dict (torch tensors), after its checksum check."""
    from safetensors.torch import load_file

    if card.weights is None:
        raise WeightsError(f"{directory / CONFIG}: missing key 'weights'")
    path = directory / card.weights
    check_file(path, card.sha256, required=is_shipped(directory))
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated/garbled files
        raise WeightsError(f"{path}: cannot read weights ({e})") from e


def onnx_file(directory: Path, card: ModelCard) -> Path:
    """The directory's ONNX file, checked against the card's sha256 (a missing checksum is an error for shipped
    models; a user's own directory is only warned about)."""
    import logging

    if card.onnx is None:
        raise WeightsError(f"{directory / CONFIG}: no ONNX export recorded (run scripts/export_onnx.py)")
    file = directory / card.onnx.file
    if not file.is_file():
        raise WeightsError(f"{file}: ONNX file not found")
    if card.onnx.sha256 is None and not is_shipped(directory):
        logging.getLogger(__name__).warning("%s: no sha256 recorded; the ONNX file is not checked", file)
    check_file(file, card.onnx.sha256, required=is_shipped(directory))
    return file
