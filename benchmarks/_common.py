"""Helpers the benchmark scripts share: where the repository and the results are, process-tree memory, and a
``musicgenre serve`` process to measure (``Server``, ``post``, ``make_clips``), and the accuracy benchmarks' row
summary and degradation stability (``brief``, ``stability``).

Every script runs as ``python benchmarks/NAME.py`` against the installed package (``pip install -e .``), so
neither ``src/`` nor this folder is put on ``sys.path`` by hand: Python puts a script's own folder there,
which is how ``from _common import ...`` resolves.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from musicgenre.train.recipe import Recipe, Scorer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # every results file (JSON, markdown tables) lives here


def write_results(path: Path, results: Any) -> None:
    """Pretty JSON (the results files' one format), creating ``benchmarks/results/`` if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def _tree_sum(pid: int, measure: Callable[[Any], float]) -> float:
    """``measure`` summed over a process and its live children (0 once it has exited)."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for q in procs:
        try:
            total += measure(q)
        except psutil.NoSuchProcess:
            pass
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children, in MiB (0 once it has exited)."""
    return _tree_sum(pid, lambda q: q.memory_info().rss) / 2**20


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children (0 once it has exited)."""
    return _tree_sum(pid, lambda q: sum(q.cpu_times()[:2]))


def make_mp3_clips(folder: Path, n: int, seconds: float) -> list[Path]:
    """``n`` MP3 clips of ``seconds`` cut from the repo's example clips at varied gains (no ../shared needed)."""
    import soundfile as sf

    sources = sorted((ROOT / "examples").glob("*.ogg"))
    out = []
    for i in range(n):
        y, sr = sf.read(sources[i % len(sources)], dtype="float32")
        reps = int(np.ceil(seconds * sr / len(y)))
        clip = np.tile(y, (reps, 1) if y.ndim == 2 else reps)[: int(seconds * sr)] * (0.6 + 0.4 * (i % 5) / 4)
        path = folder / f"clip{i:04d}.mp3"
        sf.write(path, clip, sr, format="MP3", subtype="MPEG_LAYER_III")
        out.append(path)
    return out


# --- a `musicgenre serve` process (bench_server, bench_idle, tests/test_web.py) ---------------------------------

CLIPS = sorted((ROOT / "examples").glob("*.ogg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``musicgenre serve`` in a subprocess; ``env`` extras (e.g. TMPDIR) go to it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "musicgenre", "serve", "--port", str(self.port), *args]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def wait_ready(self, timeout: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + "".join(self.output))
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("server did not start: " + "".join(self.output))

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid)

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM; returns the seconds it took to exit (kills it and raises if it does not)."""
        t0 = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return time.monotonic() - t0


def post(url: str, clip: Path, *, quick: bool = True, retry_busy: bool = True) -> int:
    """One classify request; returns its final status (503s retried when ``retry_busy``)."""
    import httpx

    while True:
        r = httpx.post(url + "/api/classify", params={"quick": str(quick).lower(), "segments": "false"},
                       files={"file": (clip.name, clip.read_bytes())}, timeout=300)
        if r.status_code != 503 or not retry_busy:
            return r.status_code
        time.sleep(min(1.0, float(r.headers.get("Retry-After", "1"))))


def make_clips(seconds: float, folder: Path) -> list[Path]:
    import soundfile as sf

    out = []
    for src in CLIPS:
        y, sr = sf.read(src, frames=int(seconds * sf.info(src).samplerate), dtype="float32")
        out.append(folder / f"{src.stem}.flac")
        sf.write(out[-1], y, sr)
    return out


# --- accuracy benchmarks (accuracy.py, head_variants.py) -----------------------------------------------------


def brief(rep: dict[str, Any]) -> dict[str, Any]:
    """A clip report's table row: n, accuracy, top-3, macro-F1, ECE (and its floor), recalls, precisions."""
    recalls = {k: v["recall"] for k, v in rep["per_class"].items() if v["support"]}
    wa = rep.get("window_accuracy")
    return {"n": rep["n"], "accuracy": round(rep["accuracy"], 4), "top3": round(rep["top3_accuracy"], 4),
            "window_accuracy": None if wa is None else round(wa, 4),
            "macro_f1": round(rep["macro_f1"], 4), "ece": round(rep["ece"], 4), "ci95": rep["ci95"],
            "ece_if_calibrated": rep["ece_if_calibrated"],
            "min_recall": min(recalls.values()), "recall": recalls,
            "precision": {k: v["precision"] for k, v in rep["per_class"].items() if v["support"] or v["precision"]},
            "uncalibrated_ece": round(rep.get("uncalibrated_ece", float("nan")), 4),
            **({"lengths": rep["lengths"]} if "lengths" in rep else {})}


def stability(recipe: Recipe, score: Scorer, temperature: float, head: Any = None) -> dict[str, Any]:
    """Share of valid clips whose label under each degradation equals the clean label (a validation run's
    model at its temperature: the label ``predict`` would show); with ``head``, also the share of single
    windows whose own label is kept (the timeline's, a 3-s input's)."""
    from musicgenre.train.degrade import CONDITIONS
    from musicgenre.train.head import window_logits
    from musicgenre.train.recipe import assemble

    valid = [c for c in recipe.clips() if c.split == "valid"]
    labels: dict[str, dict[str, int]] = {}
    windows: dict[str, dict[str, np.ndarray]] = {}
    for cond in CONDITIONS:
        data = assemble(recipe, valid, (cond,))
        pred = score(data)(temperature).argmax(1)
        labels[cond] = {c.key: int(p) for c, p in zip(data.clips, pred)}
        if head is not None:
            wl = window_logits(head, data).argmax(1)
            windows[cond] = {c.key: wl[data.clip == i] for i, c in enumerate(data.clips)}
    out: dict[str, Any] = {}
    for cond in CONDITIONS[1:]:
        keys = sorted(set(labels["clean"]) & set(labels[cond]))
        for source in ("gtzan", "emotify", "all"):
            ks = [k for k in keys if source == "all" or k.startswith(source)]
            if ks:
                out[f"{cond}/{source}"] = {"n": len(ks), "same_label": round(
                    float(np.mean([labels["clean"][k] == labels[cond][k] for k in ks])), 4)}
                same = [windows["clean"][k] == windows[cond][k] for k in ks
                        if head is not None and len(windows["clean"][k]) == len(windows[cond][k])]
                if same:
                    out[f"{cond}/{source}"].update(windows=int(sum(len(x) for x in same)),
                                                   same_window_label=round(float(np.mean(np.concatenate(same))), 4))
    return out
