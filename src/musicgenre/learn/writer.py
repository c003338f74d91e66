"""The learned head as a model directory in the shipped format, written without torch.

- ``config.json``: a ``modeldir.ModelCard`` (built with ``modeldir.from_dict``, written by ``ModelCard.save``,
  the one writer): architecture ``musicnn_genre`` with ``model_args`` {n_labels, backbone MSD_musicnn,
  hidden 0, features "embedding+tags"}, so the torch path builds ``models.genre.MusicnnGenre`` with a
  ``Standardize`` + ``Linear`` head and fills the shipped backbone; the labels in the owner's words; the window
  temperature and per-length temperatures; the backbone's tag names (what the ONNX backend names tags with).
- ``model.safetensors``: only the head's four tensors, named as ``make_head(250, n, hidden=0)`` names them
  (``HEAD_KEYS``), written with ``safetensors.numpy``.
- ``model.onnx``: the shipped default model's graph (``musicnn-gtzan``: the pruned MSD MusiCNN backbone, its
  tag logits and its embedding, all outputs) with its genre head cut away and this head put in its place
  (``head_graph``): Concat(embedding, tags) -> Sub(mean) -> Div(std) -> MatMul(weight.T) -> Add(bias) is the new
  ``logits``. One backbone pass per window gives logits, tags and embedding, as the shipped model's does. The
  graph is checked against ``fit.Head.logits`` on its own embedding and tags before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import sha256_file, write_atomic
from ..errors import WeightsError
from ..features import feature_identity
from ..modeldir import DEFAULT_MODEL, WEIGHTS, ModelCard, backbone_dir, from_dict, locate, onnx_file, read
from .fit import Head

if TYPE_CHECKING:
    import onnx

ARCHITECTURE = "musicnn_genre"
BACKBONE = "MSD_musicnn"
FEATURES = "embedding+tags"
BASE_MODEL = DEFAULT_MODEL  # whose ONNX graph supplies the backbone pass
ONNX_FILE = "model.onnx"
HEAD_KEYS = {"mean": "head.0.mean", "std": "head.0.std", "weight": "head.2.weight", "bias": "head.2.bias"}
TOLERANCE = 1e-4  # |ONNX logits - numpy head on the graph's own embedding and tags|


def shipped_backbone() -> tuple[str, str]:
    """(name, version) of the shipped backbone whose graph the learned model reuses (as the ONNX export records it)."""
    card = read(backbone_dir(BACKBONE))
    return card.name, card.version


def backbone_identity() -> tuple[str, str]:
    """(name, version) of the features the learned head reads: the shipped backbone behind the base model's front
    end (``features.feature_identity``), what stored features must come from."""
    return feature_identity(shipped_backbone(), locate(BASE_MODEL)[1].features)


def base_model() -> tuple[Path, ModelCard]:
    """The shipped model whose ONNX graph the learned model reuses, checked: it reads ``BACKBONE`` and ships an
    ONNX file whose recorded backbone (when recorded) is the shipped one."""
    path, card = locate(BASE_MODEL)
    if card.model_args.get("backbone") != BACKBONE or card.onnx is None:
        raise WeightsError(f"{path}: the base model must run {BACKBONE} and ship an ONNX file")
    recorded = card.onnx.extra.get("backbone")
    if isinstance(recorded, dict) and (recorded.get("name"), recorded.get("version")) != shipped_backbone():
        raise WeightsError(f"{path}: its ONNX graph holds backbone {recorded.get('name')} {recorded.get('version')}, "
                           f"not the shipped {' '.join(shipped_backbone())}; re-export it (scripts/export_onnx.py)")
    return path, card


def head_state(head: Head) -> dict[str, np.ndarray]:
    """The head's tensors under the names ``models.genre.MusicnnGenre`` loads them by."""
    return {HEAD_KEYS[k]: np.ascontiguousarray(getattr(head, k), dtype=np.float32) for k in HEAD_KEYS}


def head_graph(base: onnx.ModelProto, head: Head, n_labels: int) -> onnx.ModelProto:
    """``base`` (outputs logits, tags[, embedding]) with its genre head replaced by ``head``: the nodes only its
    ``logits`` needed are dropped, and Concat(embedding, tags) -> Sub -> Div -> MatMul -> Add is the new
    ``logits``. Outputs: logits, tags, embedding (one backbone pass)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = base.graph
    outputs = {o.name: o for o in g.output}
    if not {"tags", "embedding"} <= set(outputs):
        raise WeightsError("the base ONNX graph lacks a 'tags' or 'embedding' output; re-export it "
                           "(scripts/export_onnx.py)")
    need = {"tags", "embedding"}
    kept = []
    for node in reversed(g.node):  # nodes are in topological order: walk back from what is kept
        if any(o in need for o in node.output):
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
                raise WeightsError(f"the base ONNX graph's node {node.name} holds a subgraph; not supported")
            kept.append(node)
            need.update(i for i in node.input if i)
    kept.reverse()
    batch = outputs["tags"].type.tensor_type.shape.dim[0].dim_param or "batch"
    state = {"mean": head.mean, "std": head.std, "weight_t": np.ascontiguousarray(head.weight.T), "bias": head.bias}
    initializers = [t for t in g.initializer if t.name in need]
    initializers += [numpy_helper.from_array(np.asarray(v, np.float32), f"learned_head.{k}") for k, v in state.items()]
    nodes = kept + [
        helper.make_node("Concat", ["embedding", "tags"], ["learned_head.features"], axis=1,
                         name="learned_head_concat"),
        helper.make_node("Sub", ["learned_head.features", "learned_head.mean"], ["learned_head.centred"],
                         name="learned_head_sub"),
        helper.make_node("Div", ["learned_head.centred", "learned_head.std"], ["learned_head.standardised"],
                         name="learned_head_div"),
        helper.make_node("MatMul", ["learned_head.standardised", "learned_head.weight_t"], ["learned_head.linear"],
                         name="learned_head_matmul"),
        helper.make_node("Add", ["learned_head.linear", "learned_head.bias"], ["logits"], name="learned_head_add"),
    ]
    graph = helper.make_graph(
        nodes, "musicgenre_learned", list(g.input),
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, n_labels]), outputs["tags"],
         outputs["embedding"]],
        initializers, value_info=[v for v in g.value_info if v.name in need],
    )
    model = helper.make_model(graph, opset_imports=list(base.opset_import), ir_version=base.ir_version,
                              producer_name="musicgenre.learn")
    model.functions.extend(base.functions)
    onnx.checker.check_model(model)
    return model


def example_windows(features: Any, n: int = 3, seed: int = 0) -> np.ndarray:
    """Random log-mel windows in the model's shape and range (as scripts/export_onnx.py checks its exports)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 4.0, (n, features.window_frames, features.n_mels)).astype(np.float32)


def check_graph(data: bytes, head: Head, features: Any) -> float:
    """Max |ONNX logits - ``head.logits`` of the graph's own embedding ++ tags| on a few windows; WeightsError
    above ``TOLERANCE``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {session.get_inputs()[0].name: example_windows(features)})))
    expected = head.logits(np.concatenate([out["embedding"], out["tags"]], axis=1))
    diff = float(np.abs(out["logits"] - expected).max())
    if not diff <= TOLERANCE:
        raise WeightsError(f"the learned ONNX graph differs from the head by {diff:.2e} (> {TOLERANCE:g})")
    return diff


def write_model_dir(directory: Path, head: Head, labels: Sequence[str], *, temperature: float,
                    temperature_by_windows: Sequence[float], name: str, extra: Mapping[str, Any],
                    checked_base: tuple[Path, ModelCard] | None = None) -> ModelCard:
    """Write the learned model into ``directory`` (which must exist and be empty): weights, ONNX graph (checked
    first), then config.json through ``ModelCard.save``. The version is the weights' sha256 (first 12 digits):
    the same data gives the same version, and a library scanned with another head is classified again.
    ``checked_base``: ``base_model()``'s result when the caller already has it."""
    import onnx
    from safetensors.numpy import save

    base_path, base = checked_base if checked_base is not None else base_model()
    assert base.onnx is not None and base.features is not None  # base_model checked both
    graph = head_graph(onnx.load(str(onnx_file(base_path, base))), head, len(labels))
    data = graph.SerializeToString()
    diff = check_graph(data, head, base.features)
    write_atomic(directory / WEIGHTS, save(head_state(head)))
    write_atomic(directory / ONNX_FILE, data)
    weights_sha = sha256_file(directory / WEIGHTS)
    bb_name, bb_version = shipped_backbone()
    onnx_entry = {
        "file": ONNX_FILE, "sha256": sha256_file(directory / ONNX_FILE),
        "opset": next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None),
        "inputs": [i.name for i in graph.graph.input], "outputs": [o.name for o in graph.graph.output],
        "backbone": {"name": bb_name, "version": bb_version},
        "made": f"graph surgery without torch (musicgenre.learn.writer): {base.name} {base.version}'s graph "
                f"(sha256 {base.onnx.sha256}) with its genre head replaced by this one",
        "max_abs_diff_vs_numpy": float(f"{diff:.3g}"),
        **({"pruned": base.onnx.extra["pruned"]} if "pruned" in base.onnx.extra else {}),
    }
    card = from_dict({
        "name": name, "version": weights_sha[:12], "architecture": ARCHITECTURE,
        "model_args": {"n_labels": len(labels), "backbone": BACKBONE, "hidden": 0, "features": FEATURES},
        "labels": list(labels), "features": base.features.to_dict(), "temperature": float(temperature),
        "temperature_by_windows": [float(t) for t in temperature_by_windows], **extra,
        "weights": WEIGHTS, "sha256": weights_sha, "onnx": onnx_entry, "tags": list(base.tags),
    }, where=str(directory / "config"))
    return card.save(directory)
