"""Export shipped (or given) model directories to ONNX for the ONNX Runtime backend.

    python -m scripts.export_onnx                      # every directory under src/musicgenre/weights/
    python -m scripts.export_onnx path/to/model_dir    # just these
    python -m scripts.export_onnx --int8               # also an int8 dynamically quantized copy (not default)

For each directory, the torch module that ``hub.load_module(dir)`` builds (eval mode) goes through
``models.prune.prune_constant_channels`` (MusiCNN's provably constant channels removed, their constants
folded: same outputs, about a quarter of the arithmetic) and is exported with torch.onnx (torch.export-based
exporter, one self-contained file, dynamic batch axis) to ``model.onnx``;
input ``logmel`` (batch, window_frames, n_mels) float32 for log-mel models or ``waveform`` (batch, samples)
for waveform models; outputs named after the module's dict keys ("logits", "tags"). The export is checked
against the unpruned torch module on random input (max abs difference below 1e-4), then its file name, sha256 and
opset are recorded in the directory's config.json under "onnx". Runs once per weights change, by a
maintainer; the outputs are committed.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from musicgenre._io import sha256_file
from musicgenre.features import FeatureConfig
from musicgenre.loader import load_module, module_backbone
from musicgenre.modeldir import OnnxEntry, read, weights_dir
from musicgenre.models.prune import prune_constant_channels

ROOT = Path(__file__).resolve().parents[1]

OPSET = 18
TOLERANCE = 1e-4
log = logging.getLogger("export_onnx")


def example_input(cfg: FeatureConfig, batch: int = 2, seed: int = 0) -> np.ndarray:
    """Random input in the model's shape and a realistic range (log-mel values lie in about 0..5)."""
    rng = np.random.default_rng(seed)
    if cfg.input == "waveform":
        return (0.3 * rng.standard_normal((batch, cfg.window_samples))).astype(np.float32)
    return rng.uniform(0.0, 4.0, (batch, cfg.window_frames, cfg.n_mels)).astype(np.float32)


def export(model_dir: Path, *, filename: str = "model.onnx", opset: int = OPSET) -> dict[str, Any]:
    """Export one model directory; returns the "onnx" entry written to its config.json."""
    import torch

    card = read(model_dir)
    features = card.features or FeatureConfig()
    reference = load_module(model_dir, card)
    module = prune_constant_channels(load_module(model_dir, card))  # what runs: exact, smaller
    x = torch.from_numpy(example_input(features))
    with torch.inference_mode():
        expected = reference(x)  # the export is checked against the unpruned module
    output_names = list(expected)  # the dict keys, in order: "logits"[, "tags", "embedding"]
    input_name = "waveform" if features.input == "waveform" else "logmel"
    out = model_dir / filename
    tmp = out.with_suffix(".onnx.tmp")
    torch.onnx.export(
        module, (x,), str(tmp), input_names=[input_name], output_names=output_names, opset_version=opset,
        dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False,
        verbose=False,
    )
    max_diff = compare(tmp, {k: v.numpy() for k, v in expected.items()}, x.numpy())
    os.replace(tmp, out)
    entry: dict[str, Any] = {"file": filename, "sha256": sha256_file(out), "opset": opset, "inputs": [input_name],
             "outputs": output_names, "torch": torch.__version__, "max_abs_diff_vs_torch": float(f"{max_diff:.3g}"),
             "pruned": "constant MusiCNN channels folded (models.prune.prune_constant_channels)"}
    backbone = module_backbone(reference, card)
    if "embedding" in output_names and backbone is not None:  # what the library stores its features under
        entry["backbone"] = {"name": backbone[0], "version": backbone[1]}
    onnx = OnnxEntry(file=filename, sha256=entry["sha256"], extra={k: v for k, v in entry.items()
                                                                    if k not in ("file", "sha256")})
    # the ONNX backend names the tags from the card, without the module
    tags = tuple(getattr(module, "tag_names", ())) if "tags" in output_names else card.tags
    card.replace(onnx=onnx, tags=tags).save(model_dir)
    return entry


def compare(onnx_file: Path, expected: dict[str, np.ndarray], x: np.ndarray, batch: int = 1) -> float:
    """Max abs difference between ONNX Runtime's outputs and ``expected``; raises above TOLERANCE.

    Also runs a batch of a different size than the export's, so the batch axis is proven dynamic.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    if set(got) != set(expected):
        raise SystemExit(f"{onnx_file}: outputs {sorted(got)} differ from the module's {sorted(expected)}")
    diff = max(float(np.abs(got[k] - expected[k]).max()) for k in expected)
    if diff > TOLERANCE:
        raise SystemExit(f"{onnx_file}: ONNX Runtime differs from torch by {diff:.2e} (> {TOLERANCE:g})")
    one = session.run(None, {session.get_inputs()[0].name: x[:batch]})
    if one[0].shape[0] != batch:
        raise SystemExit(f"{onnx_file}: batch axis is not dynamic")
    return diff


def quantize_int8(model_dir: Path, *, filename: str = "model.int8.onnx") -> Path:
    """int8 dynamic quantization (weights int8, activations quantized at run time) of model.onnx."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = model_dir / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(model_dir / filename), weight_type=QuantType.QInt8)
    return model_dir / filename


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="*", type=Path, help="model directories (default: every shipped model)")
    p.add_argument("--opset", type=int, default=OPSET)
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (not recorded in config.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dirs = args.dirs or sorted(d.parent for d in weights_dir().glob("*/config.json"))
    for d in dirs:
        entry = export(d, opset=args.opset)
        log.info("%s: %s sha256 %s (max |onnx - torch| = %.1e)", d.name, entry["file"], entry["sha256"][:12],
                 entry["max_abs_diff_vs_torch"])
        if args.int8:
            log.info("%s: %s", d.name, quantize_int8(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
