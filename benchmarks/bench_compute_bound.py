"""How fast can the shipped model possibly run on this machine? The arithmetic floor of the speed targets.

    python -m benchmarks.bench_compute_bound            # -> benchmarks/results/compute-bound.json

Counts the floating-point operations of one model window (torch's FlopCounterMode: convolutions and
matrix products, a multiply-add counted as 2) for the network that actually runs (MusiCNN with its
provably constant channels pruned, ``models.musicnn.prune_constant_channels``: what the torch backend runs
and the shipped ONNX graph was exported from) and, for comparison, for the unpruned one; measures the best
dense float32 matrix-product rate this machine sustains (ONNX Runtime MatMul with the same 2 intra-op
threads as inference, spinning allowed: an upper bound for any convolution, which runs as a matrix
product), and times the shipped ONNX graph per window in the session inference uses
(``runtime.onnx.OnnxModel``).
From these: the fastest a 30-s clip can be classified with the same model (same scores), and so the
highest real-time factor, before decoding and the log-mel are even counted. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

from benchmarks._common import RESULTS, best_of, write_results


def model_flops(path: Path, *, pruned: bool) -> tuple[int, dict[str, int], tuple[int, ...], float]:
    """FLOPs of one window through the torch twin of the model (``pruned``: the network that runs), by
    operator; the window's shape and seconds."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from musicgenre.features import FeatureConfig
    from musicgenre.loader import load_module
    from musicgenre.modeldir import read
    from musicgenre.models.prune import prune_constant_channels

    card = read(path)
    module = load_module(path, card)
    if pruned:
        module = prune_constant_channels(module)
    feat = card.features or FeatureConfig()
    shape = (1, feat.window_frames, feat.n_mels)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(torch.zeros(shape))
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()), by_op, shape, feat.window_seconds


def _peak_session(path: Path, threads: int):
    """A session for the MatMul peak in ONNX Runtime's most favourable setting (spinning threads, which
    inference turns off to share a loaded machine): the floor derived from it is a generous one."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def matmul_rate(threads: int, n: int, tmp: Path, repeats: int) -> float:
    """Sustained float32 GFLOP/s of an n x n x n MatMul in ONNX Runtime (the best case for MLAS)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    path = tmp / "matmul.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    sess = _peak_session(path, threads)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    seconds = best_of(lambda: sess.run(["c"], {"a": a, "b": b}), repeats)
    return 2 * n**3 / seconds / 1e9


def main() -> None:
    import tempfile

    from musicgenre.modeldir import onnx_file, read, resolve
    from musicgenre.runtime.onnx import OnnxModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="musicnn-gtzan")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (inference uses 2)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--clip-seconds", type=float, default=30.0)
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "compute-bound.json")
    args = ap.parse_args()

    load_start = os.getloadavg()[0]
    path = resolve(args.model)
    flops, by_op, shape, window_s = model_flops(path, pruned=True)
    full_flops, full_by_op, _, _ = model_flops(path, pruned=False)
    sess = OnnxModel(onnx_file(path, read(path)), threads=args.threads).session  # as inference runs it
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    name = sess.get_inputs()[0].name
    window_time = best_of(lambda: sess.run(None, {name: x}), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        peak = max(matmul_rate(args.threads, n, Path(tmp), args.repeats) for n in (512, 1024, 2048))
    windows = int(args.clip_seconds // window_s)
    floor_s = windows * flops / (peak * 1e9)
    full_floor_s = windows * full_flops / (peak * 1e9)
    result = {
        "model": args.model, "threads": args.threads, "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "loadavg_start": round(load_start, 2),
        "loadavg_end": round(os.getloadavg()[0], 2), "window_shape": list(shape), "window_seconds": round(window_s, 3),
        "network": "pruned (constant channels folded): the graph that runs",
        "gflop_per_window": round(flops / 1e9, 3),
        "gflop_by_operator": {k: round(v / 1e9, 3) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "unpruned_gflop_per_window": round(full_flops / 1e9, 3),
        "unpruned_gflop_by_operator": {k: round(v / 1e9, 3)
                                       for k, v in sorted(full_by_op.items(), key=lambda kv: -kv[1])},
        "matmul_peak_gflops": round(peak, 1),
        "onnx_window_seconds": round(window_time, 4),
        "onnx_achieved_gflops": round(flops / window_time / 1e9, 1),
        "clip_seconds": args.clip_seconds, "windows_per_clip": windows,
        "clip_model_seconds_at_peak": round(floor_s, 4),
        "max_realtime_at_peak": round(args.clip_seconds / floor_s, 1),
        "unpruned_clip_model_seconds_at_peak": round(full_floor_s, 4),
        "unpruned_max_realtime_at_peak": round(args.clip_seconds / full_floor_s, 1),
        "clip_model_seconds_measured": round(windows * window_time, 4),
        "realtime_measured_model_only": round(args.clip_seconds / (windows * window_time), 1),
    }
    sys.stdout.write(write_results(args.output, result))


if __name__ == "__main__":
    main()
