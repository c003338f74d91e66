"""ONNX Runtime backend: runs a model directory's exported graph (``model.onnx``) without torch.

The graph is written by ``scripts/export_onnx.py`` from the torch module, and its sha256 is recorded
in the directory's ``config.json`` under ``"onnx"``; a shipped model without that checksum is refused.
The outputs are the raw ones of the torch module (``logits``, and ``tags`` where the model has them):
softmax/sigmoid stay with the caller, as for the torch backend.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightsError

log = logging.getLogger(__name__)

# One intra-op thread per session: on 2 cores, two files run side by side (predict_many) beat one file
# on two threads; see benchmarks/onnx_runtime.py for the measurement.
DEFAULT_THREADS = 1


def check_onnx_file(path: Path, config: dict[str, Any]) -> Path:
    """The directory's ONNX file after checking it against the sha256 in ``config["onnx"]`` (a missing
    checksum is an error for shipped models; for user model directories it only skips the check)."""
    from ..hub import check_file, is_shipped

    entry = config.get("onnx")
    if not isinstance(entry, dict) or "file" not in entry:
        raise WeightsError(f"{path / 'config.json'}: no ONNX export recorded (run scripts/export_onnx.py)")
    file = path / entry["file"]
    if not file.is_file():
        raise WeightsError(f"{file}: ONNX file not found")
    if entry.get("sha256") is None and not is_shipped(path):
        log.warning("%s: no sha256 recorded; the ONNX file is not checked", file)
    check_file(file, entry.get("sha256"), required=is_shipped(path))
    return file


class OnnxModel:
    """A model directory's ONNX graph in an ONNX Runtime CPU session.

    ``threads`` is the session's intra-op thread count; operators run one after another (the graphs
    are a chain, so inter-op parallelism has nothing to overlap).
    """

    backend = "onnx"
    device = "cpu"

    def __init__(self, path: Path, config: dict[str, Any], *, threads: int = DEFAULT_THREADS) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.file = check_onnx_file(self.path, config)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers burn a core while waiting for work: on a shared 2-core machine, block instead.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # errors only: the exporter's unused-initializer warnings are noise
        try:
            self.session = ort.InferenceSession(str(self.file), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own error types for garbled graphs
            raise WeightsError(f"{self.file}: cannot load the ONNX model ({e})") from e
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """(batch, ...) float32 model input -> raw outputs by name ("logits", optionally "tags")."""
        outputs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(self.output_names, outputs))
