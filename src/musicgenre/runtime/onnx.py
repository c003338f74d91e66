"""ONNX Runtime backend: runs a model directory's exported graph (``model.onnx``) without torch.

The graph is written by ``scripts/export_onnx.py`` from the torch module, and its sha256 is recorded
in the directory's ``config.json`` under ``"onnx"``; ``modeldir.onnx_file`` checks it before a session opens.
The outputs are the raw ones of the torch module (``logits``, and ``tags`` where the model has them):
softmax/sigmoid stay with the caller, as for the torch backend.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import WeightsError

log = logging.getLogger(__name__)

# Two intra-op threads by default: on a 2-core CPU one file alone then uses both cores (benchmarks/onnx_runtime.py
# measures threads and batch sizes; load(threads=...) sets another count). The batch commands ask for one per
# worker when their workers fill the cores (runtime.threads_per_worker: 2-4% faster over a folder).
DEFAULT_THREADS = 2


class OnnxModel:
    """A model directory's ONNX graph in an ONNX Runtime CPU session.

    ``threads`` is the session's intra-op thread count; operators run one after another (the graphs
    are a chain, so inter-op parallelism has nothing to overlap).
    """

    backend = "onnx"
    device = "cpu"

    def __init__(self, file: Path, *, threads: int = DEFAULT_THREADS) -> None:
        """``file``: a checked ONNX file (``modeldir.onnx_file`` verifies it against the model's card)."""
        import onnxruntime as ort

        ort.disable_telemetry_events()  # offline by design: no usage events, ever
        self.file = Path(file)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers burn a core while waiting for work, which other processes on the CPU need: block.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # errors only: the exporter's unused-initializer warnings are noise
        try:
            self.session = ort.InferenceSession(str(self.file), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own error types for garbled graphs
            raise WeightsError(f"{self.file}: cannot load the ONNX model ({e})") from e
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """(n, ...) float32 model input -> raw outputs by name ("logits", optionally "tags"), one window per
        session call: on the CPU that is the fastest (0.41 s vs 0.51 s for ten 3-s windows at batch 10) and
        keeps the convolutions' intermediate buffers, and so peak memory, at their smallest."""
        outs: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for i in range(len(x)):
            feed = {self.input_name: np.ascontiguousarray(x[i : i + 1], dtype=np.float32)}
            for name, value in zip(self.output_names, self.session.run(self.output_names, feed)):
                outs[name].append(value)
        return {name: np.concatenate(v) for name, v in outs.items()}
