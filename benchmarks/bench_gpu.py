"""Folder throughput on a GPU: windows batched across files, torch (CUDA) and ONNX Runtime (CUDA provider).

    python -m benchmarks.bench_gpu                         # -> benchmarks/results/gpu.json
    python -m benchmarks.bench_gpu --device cpu --clips 4 --batches 8 -o /tmp/gpu-smoke.json   # smoke test

A folder of ``--clips`` generated 30-s clips (music-like: chords, a drum pattern, noise; made in memory at the
model's 16 kHz, so no decoder is needed and the figures are the model path's) is cut into windows by the
package's own front end (``windows.Windows``, numpy) in a pool of CPU threads, and the windows of all files
are run through the model in large batches. Measured:

- ``features``: windows per second of the numpy front end over the CPU pool;
- ``model``: windows per second of the shipped model for each batch size, torch on the device with the
  pruned MusiCNN (what ``--backend torch`` runs) in float32 (TF32 off: the scores of the CPU), then with
  TF32 allowed, the unpruned network for comparison, and ONNX Runtime's CUDA provider on the shipped
  graph when the installed onnxruntime has it;
- ``folder``: the whole folder end to end (front end in the pool while the device runs the batches, then
  the per-file mean of window probabilities), against ``predict_many`` (one file per model call);
- ``agreement``: max |difference| of genre probabilities against ONNX Runtime on the CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import RESULTS, best_of, write_results

SR = 16000
CLIP_SECONDS = 30.0


def music_like(seed: int, seconds: float = CLIP_SECONDS, sr: int = SR) -> np.ndarray:
    """A chord progression of harmonic tones, a kick/hi-hat pattern and some noise; float32 mono."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    root = 110 * 2 ** (rng.integers(0, 12) / 12)
    for i, start in enumerate(range(0, n, sr * 2)):
        seg = slice(start, min(n, start + sr * 2))
        for interval in (0, 4, 7):
            f = root * 2 ** ((interval + 5 * (i % 4)) / 12)
            for h in (1, 2, 3):
                y[seg] += 0.15 / h * np.sin(2 * np.pi * f * h * t[seg])
    beat = int(sr * 60 / rng.uniform(80, 140))
    for k in range(0, n - 2000, beat):
        y[k : k + 2000] += 0.6 * np.exp(-np.arange(2000) / 300) * np.sin(2 * np.pi * 55 * np.arange(2000) / sr)
    y += 0.02 * rng.standard_normal(n)
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


def windows_of(y: np.ndarray, cfg: Any) -> np.ndarray:
    from musicgenre.windows import Windows

    return Windows((y, SR), cfg).all()[0]


def seed_windows(seed: int, cfg: Any) -> np.ndarray:
    """A worker process's share of the folder: make clip ``seed`` (standing in for decoding it) and cut it."""
    return windows_of(music_like(seed), cfg)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def rate(fn: Any, n: int, device: str, repeats: int = 3) -> float:
    """Items per second of ``fn()`` processing ``n`` items: the best of ``repeats`` after one warm-up."""
    return n / best_of(fn, repeats, sync=lambda: sync(device))


def torch_rates(module: Any, x: np.ndarray, batches: list[int], device: str) -> dict[str, float]:
    import torch

    xt = torch.from_numpy(x).to(device)
    out = {}
    for b in batches:
        def run(b: int = b) -> None:
            with torch.inference_mode():
                for i in range(0, len(xt), b):
                    module(xt[i : i + b])
        out[str(b)] = round(rate(run, len(xt), device), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    import musicgenre
    from musicgenre.loader import load_module
    from musicgenre.scores import softmax

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=512)
    p.add_argument("--batches", default="64,256,1024", help="batch sizes in windows, comma-separated")
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="front-end threads")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "gpu.json")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    device = args.device
    result: dict[str, Any] = {"command": " ".join(["python", "-m", "benchmarks.bench_gpu", *(argv or sys.argv[1:])]),
                              "platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                              "clips": args.clips, "clip_seconds": CLIP_SECONDS}
    if device == "cuda":
        result["device"] = torch.cuda.get_device_name(0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        clips = list(pool.map(music_like, range(args.clips)))
    result["generate_s"] = round(time.perf_counter() - t0, 2)

    clf = musicgenre.load(backend="torch", device=device)
    cfg = clf.model.features
    module = clf.model.runner.module
    with ThreadPoolExecutor(args.threads) as pool:
        t0 = time.perf_counter()
        per_file = list(pool.map(lambda y: windows_of(y, cfg), clips))
        feat_s = time.perf_counter() - t0
    x = np.ascontiguousarray(np.concatenate(per_file))
    n = len(x)
    result["features"] = {"threads": args.threads, "windows": n, "seconds": round(feat_s, 3),
                          "windows_per_s": round(n / feat_s, 1)}

    # the model alone, every batch size: pruned fp32 (the CPU's scores), pruned TF32, unpruned fp32
    model: dict[str, Any] = {}
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model["torch_pruned_fp32"] = torch_rates(module, x, batches, device)
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        model["torch_pruned_tf32"] = torch_rates(module, x, batches, device)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    full = load_module(clf.model.path).to(device).eval()
    model["torch_unpruned_fp32"] = torch_rates(full, x, batches, device)

    import onnxruntime as ort

    onnx_path = str(clf.model.path / "model.onnx")  # the shipped graph (the ONNX backend checks its sha256)
    result["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    cpu_sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    ref_x = x[: min(64, n)]
    reference = cpu_sess.run(["logits"], {"logmel": ref_x})[0]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        sess = ort.InferenceSession(onnx_path, providers=["CUDAExecutionProvider"])
        ort_rates = {}
        for b in batches:
            def run_ort(b: int = b) -> None:
                for i in range(0, n, b):
                    sess.run(["logits"], {"logmel": x[i : i + b]})
            ort_rates[str(b)] = round(rate(run_ort, n, "cpu"), 1)
        model["onnxruntime_cuda"] = ort_rates
        got = sess.run(["logits"], {"logmel": ref_x})[0]
        result["agreement_onnxruntime_cuda"] = float(np.abs(softmax(got, clf.model.temperature)
                                                            - softmax(reference, clf.model.temperature)).max())
    else:
        model["onnxruntime_cuda"] = "not available: the installed onnxruntime has no CUDA provider"
    result["model_windows_per_s"] = model
    with torch.inference_mode():
        got = module(torch.from_numpy(ref_x).to(device))["logits"].float().cpu().numpy()
    result["agreement_torch_fp32_vs_onnx_cpu"] = float(np.abs(softmax(got, clf.model.temperature)
                                                              - softmax(reference, clf.model.temperature)).max())

    # the folder end to end: front end in the pool, batches of windows across files on the device
    big = max(batches)
    runner = clf.model.runner
    runner.batch_size = big

    def folder(per_file: Iterable[np.ndarray]) -> list[np.ndarray]:
        """Windows of consecutive files gathered into batches of ``big``; the per-file mean probability."""
        scores: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        sizes: list[int] = []
        for w in per_file:
            pending.append(w)
            sizes.append(len(w))
            if sum(sizes) >= big or len(sizes) == len(clips) - len(scores):
                probs = clf.run(np.concatenate(pending))[0]
                for part in np.split(probs, np.cumsum(sizes)[:-1]):
                    scores.append(part.mean(axis=0))
                pending, sizes = [], []
        return scores

    audio_s = args.clips * CLIP_SECONDS
    with ThreadPoolExecutor(args.threads) as pool:
        t0 = time.perf_counter()
        scores = folder(pool.map(lambda y: windows_of(y, cfg), clips))
        sync(device)
        folder_s = time.perf_counter() - t0
    result["folder"] = {"front_end": f"{args.threads} threads", "batch_windows": big, "seconds": round(folder_s, 3),
                        "files_per_s": round(args.clips / folder_s, 1), "x_realtime": round(audio_s / folder_s, 1),
                        "files": len(scores)}
    # the front end in processes (no GIL), each making its clip as a stand-in for decoding; pool started first
    with ProcessPoolExecutor(args.threads, mp_context=multiprocessing.get_context("spawn")) as ppool:
        list(ppool.map(seed_windows, range(args.threads), [cfg] * args.threads))
        t0 = time.perf_counter()
        scores = folder(ppool.map(seed_windows, range(args.clips), [cfg] * args.clips, chunksize=4))
        sync(device)
        folder_s = time.perf_counter() - t0
    result["folder_processes"] = {
        "front_end": f"{args.threads} processes, each making its clips (music_like, {result['generate_s']} s for all "
                     "clips in threads) before cutting them", "batch_windows": big, "seconds": round(folder_s, 3),
        "files_per_s": round(args.clips / folder_s, 1), "x_realtime": round(audio_s / folder_s, 1),
        "files": len(scores)}
    runner.batch_size = 64 if device == "cuda" else 2
    many = clips[: min(len(clips), 128)]
    list(musicgenre.predict_many(clf, [(y, SR) for y in many[:4]], workers=4))
    t0 = time.perf_counter()
    list(musicgenre.predict_many(clf, [(y, SR) for y in many], workers=4))
    many_s = time.perf_counter() - t0
    result["predict_many"] = {"files": len(many), "workers": 4, "seconds": round(many_s, 3),
                              "x_realtime": round(len(many) * CLIP_SECONDS / many_s, 1),
                              "note": "one file per model call (its 10 windows), per-file decode evidence included"}
    sys.stdout.write(write_results(args.output, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
