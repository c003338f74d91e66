"""ONNX Runtime vs torch for the shipped model: front end, forward pass, threads, batch size, RSS, int8.

    python -m benchmarks.onnx_runtime                    # everything, JSON to stdout
    python -m benchmarks.onnx_runtime --only logmel forward -o benchmarks/results/onnx.json

Times are wall-clock seconds, min and median over ``--repeats`` rounds; the configurations of one section
run interleaved within each round, so a busy machine slows them alike. The load average is recorded
with the results: on a shared machine, compare figures of one run only. Windows are cut from the audio by
the pipeline's own cutter (``windows.Windows``). Needs torch, onnxruntime and the exported ``model.onnx``
(scripts/export_onnx.py). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import ROOT, timed, write_results

SR = 16000
CLIP_SECONDS = 30.0


def min_median(fns: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, float]]:
    """``timed`` (one warm-up, ``repeats`` interleaved rounds): min and median seconds of each function."""
    return {k: {"min": round(min(v), 5), "median": round(statistics.median(v), 5)}
            for k, v in timed(fns, repeats).items()}


def clip(seconds: float = CLIP_SECONDS, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def model_dir() -> Path:
    from musicgenre.modeldir import resolve

    return resolve(None)


def onnx_path(d: Path) -> Path:
    """The model directory's checked ONNX file."""
    from musicgenre.modeldir import onnx_file, read

    return onnx_file(d, read(d))


def onnx_session(path: Path, *, threads: int, spinning: bool = False, level: str = "all") -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def bench_logmel(repeats: int) -> dict[str, Any]:
    """Log-mel of a 30-s clip: numpy (float32 rfft) vs torch, 1 torch thread."""
    import torch

    from musicgenre.features import FeatureConfig, LogMel, centre_pad, frame
    from musicgenre.models.frontends import TorchLogMel

    torch.set_num_threads(1)
    cfg, y = FeatureConfig(), clip()
    np_mel, torch_mel = LogMel(cfg), TorchLogMel(cfg)
    padded = centre_pad(y, n_fft=cfg.n_fft)
    return {
        "clip_seconds": CLIP_SECONDS,
        "seconds": min_median({
            "numpy": lambda: np_mel.from_frames(frame(padded, n_fft=cfg.n_fft, hop_length=cfg.hop_length)),
            "torch_1_thread": lambda: torch_mel.from_frames(
                torch.from_numpy(padded).unfold(0, cfg.n_fft, cfg.hop_length)),
        }, repeats),
    }


def windows_of(y: np.ndarray) -> np.ndarray:
    """The log-mel windows of ``y`` (16 kHz samples), cut as ``predict`` cuts them (``windows.Windows``)."""
    from musicgenre.features import FeatureConfig
    from musicgenre.windows import Windows

    return Windows((y, SR), FeatureConfig()).all()[0]


def bench_forward(repeats: int, batches: list[int]) -> dict[str, Any]:
    """Seconds per window. By batch size: torch vs ORT, one thread each. At batch 2: 1 vs 2 threads,
    and ORT's spinning intra-op workers (its default) vs blocking ones (ours)."""
    import torch

    from musicgenre.loader import load_module

    d = model_dir()
    module = load_module(d)
    onnx_file = onnx_path(d)
    x = windows_of(clip(max(batches + [8]) * 3.0 + 1))
    sessions = {
        "ort_1_thread": onnx_session(onnx_file, threads=1),
        "ort_2_threads": onnx_session(onnx_file, threads=2),
        "ort_2_threads_spinning": onnx_session(onnx_file, threads=2, spinning=True),
    }

    def torch_run(threads: int, b: int, n: int) -> Callable[[], Any]:
        def run() -> None:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                for i in range(0, n, b):
                    module(torch.from_numpy(x[i : i + b]))
        return run

    def ort_run(session: Any, b: int, n: int) -> Callable[[], Any]:
        def run() -> None:
            for i in range(0, n, b):
                session.run(None, {"logmel": x[i : i + b]})
        return run

    def per_window(res: dict[str, dict[str, float]], n: int) -> dict[str, dict[str, float]]:
        return {k: {s: round(v[s] / n, 5) for s in v} for k, v in res.items()}

    out: dict[str, Any] = {"seconds_per_window_by_batch": {}}
    for b in batches:
        n = max(8, b)
        res = min_median({"torch_1_thread": torch_run(1, b, n),
                          "ort_1_thread": ort_run(sessions["ort_1_thread"], b, n)}, repeats)
        out["seconds_per_window_by_batch"][f"batch_{b}"] = {"windows": n, **per_window(res, n)}
    fns = {"torch_1_thread": torch_run(1, 2, 8), "torch_2_threads": torch_run(2, 2, 8)}
    fns.update({k: ort_run(s, 2, 8) for k, s in sessions.items()})
    out["seconds_per_window_by_threads_batch_2"] = {"windows": 8, **per_window(min_median(fns, repeats), 8)}
    torch.set_num_threads(1)
    return out


def bench_clip(repeats: int, batch: int) -> dict[str, Any]:
    """A 30-s clip end to end from samples: log-mel windows (``windows.Windows``, the front end both backends
    run) + forward on its 10 windows, torch and ORT (1 thread each); the ORT model alone."""
    import torch

    from musicgenre.loader import load_module

    torch.set_num_threads(1)
    d = model_dir()
    module = load_module(d)
    session = onnx_session(onnx_path(d), threads=1)
    y = clip()
    x = windows_of(y)

    def torch_all() -> None:
        w = torch.from_numpy(windows_of(y))
        with torch.inference_mode():
            for i in range(0, len(w), batch):
                module(w[i : i + batch])

    def ort_numpy() -> None:
        w = windows_of(y)
        for i in range(0, len(w), batch):
            session.run(None, {"logmel": w[i : i + batch]})

    def ort_only() -> None:
        for i in range(0, len(x), batch):
            session.run(None, {"logmel": x[i : i + batch]})

    return {"clip_seconds": CLIP_SECONDS, "windows": len(x), "batch": batch, "seconds": min_median(
        {"numpy_logmel+torch_model": torch_all, "numpy_logmel+ort_model": ort_numpy, "ort_model_only": ort_only},
        repeats)}


RSS_CODE = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
backend = sys.argv[1]
from musicgenre.modeldir import onnx_file, read, resolve
d = resolve(None)
x = np.random.default_rng(0).uniform(0, 4, (2, 187, 96)).astype(np.float32)
if backend == "onnx":
    from musicgenre.runtime.onnx import OnnxModel
    m = OnnxModel(onnx_file(d, read(d)))
    loaded = time.perf_counter()
    m.run(x)
else:
    import torch
    from musicgenre.loader import load_module
    torch.set_num_threads(1)
    module = load_module(d)
    loaded = time.perf_counter()
    with torch.inference_mode():
        module(torch.from_numpy(x))
status = open("/proc/self/status").read()  # VmHWM, not ru_maxrss: that one counts the parent before exec
rss, peak = (int(status.split(f"{k}:")[1].split()[0]) // 1024 for k in ("VmRSS", "VmHWM"))
print(json.dumps({"rss_mb": rss, "peak_rss_mb": peak,
                  "import_and_load_s": round(loaded - t0, 3), "modules_torch": "torch" in sys.modules}))
"""


def bench_rss() -> dict[str, Any]:
    """RSS of a fresh process after importing, loading the model and running one batch of 2 windows."""
    out = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for backend in ("onnx", "torch"):
        run = subprocess.run([sys.executable, "-c", RSS_CODE, backend], capture_output=True, text=True, env=env,
                             check=True)
        out[backend] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def bench_optimisation(repeats: int) -> dict[str, Any]:
    """Session creation and per-window time by graph optimisation level; a saved ORT-optimised model."""
    d = model_dir()
    onnx_file = onnx_path(d)
    x = windows_of(clip(7.0))[:2]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        import onnxruntime as ort

        saved = Path(tmp) / "optimised.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(saved)
        ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        files = {"disable": onnx_file, "basic": onnx_file, "extended": onnx_file, "all": onnx_file,
                 "saved_extended+all": saved}
        levels = {k: "all" if k.startswith("saved") else k for k in files}
        create = {k: (lambda f=f, lv=levels[k]: onnx_session(f, threads=1, level=lv)) for k, f in files.items()}
        out["session_create_seconds"] = min_median(create, max(2, repeats // 2))
        sessions = {k: fn() for k, fn in create.items()}
        out["seconds_per_batch_of_2"] = min_median(
            {k: (lambda s=s: s.run(None, {"logmel": x})) for k, s in sessions.items()}, repeats)  # type: ignore[misc]
        out["saved_file_mb"] = round(saved.stat().st_size / 1e6, 2)
    return out


def bench_int8(repeats: int) -> dict[str, Any]:
    """int8 dynamic quantization: speed per window and max score difference on the examples/ clips."""
    from musicgenre.features import FeatureConfig
    from musicgenre.windows import Windows
    from scripts.export_onnx import quantize_int8

    d = model_dir()
    from musicgenre.modeldir import read

    cfg = read(d).features or FeatureConfig()
    clips = sorted((ROOT / "examples").glob("*.ogg"))
    with tempfile.TemporaryDirectory() as tmp:
        qdir = Path(tmp)
        (qdir / "model.onnx").symlink_to(d / "model.onnx")
        q_file = quantize_int8(qdir)
        fp32, int8 = onnx_session(d / "model.onnx", threads=1), onnx_session(q_file, threads=1)
        per_clip = {}
        worst_window = worst_clip = worst_tag = 0.0
        for c in clips:
            w, _ = Windows(c, cfg).all()
            probs = {}
            for name, s in (("fp32", fp32), ("int8", int8)):
                logits, tags = s.run(["logits", "tags"], {"logmel": w})
                e = np.exp(logits - logits.max(1, keepdims=True))
                probs[name] = (e / e.sum(1, keepdims=True), 1 / (1 + np.exp(-tags)))
            worst_window = max(worst_window, float(np.abs(probs["fp32"][0] - probs["int8"][0]).max()))
            a, b = probs["fp32"][0].mean(0), probs["int8"][0].mean(0)
            worst_clip = max(worst_clip, float(np.abs(a - b).max()))
            worst_tag = max(worst_tag, float(np.abs(probs["fp32"][1].mean(0) - probs["int8"][1].mean(0)).max()))
            per_clip[c.name] = {"same_label": bool(a.argmax() == b.argmax()), "max_score_diff": round(
                float(np.abs(a - b).max()), 5)}
        x = windows_of(clip(16 * 3.0 + 1))[:16]
        speed = min_median({k: (lambda s=s: [s.run(None, {"logmel": x[i : i + 2]}) for i in range(0, 16, 2)])  # type: ignore[misc]
                       for k, s in (("fp32", fp32), ("int8", int8))}, repeats)
        return {
            "clips": len(clips), "per_clip": per_clip, "max_clip_score_diff": round(worst_clip, 5),
            "max_window_score_diff": round(worst_window, 5), "max_clip_tag_diff": round(worst_tag, 5),
            "seconds_per_window_batch_2": {k: {s: round(v[s] / 16, 5) for s in v} for k, v in speed.items()},
            "file_mb": {"fp32": round((d / "model.onnx").stat().st_size / 1e6, 2),
                        "int8": round(q_file.stat().st_size / 1e6, 2)},
        }


SECTIONS = ("logmel", "forward", "clip", "rss", "optimisation", "int8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--clip-batch", type=int, default=2)
    p.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    import onnxruntime
    import torch

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
        "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "repeats": args.repeats,
    }
    for section in args.only:
        if section == "logmel":
            results["logmel"] = bench_logmel(args.repeats * 4)
        elif section == "forward":
            results["forward"] = bench_forward(args.repeats, args.batches)
        elif section == "clip":
            results["clip"] = bench_clip(args.repeats, args.clip_batch)
        elif section == "rss":
            results["rss"] = bench_rss()
        elif section == "optimisation":
            results["optimisation"] = bench_optimisation(args.repeats)
        elif section == "int8":
            results["int8"] = bench_int8(args.repeats)
        print(json.dumps({section: results[section]}), file=sys.stderr, flush=True)
    results["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    sys.stdout.write(write_results(args.output, results) if args.output else json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
