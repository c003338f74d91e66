"""Helpers the benchmark and experiment scripts share: where the repository and the results are, the one result
writer (``write_results``), the one timing helper (``timed``, ``best_of``) and a measured command
(``run_measured``), process-tree memory, a ``musicgenre serve`` process to measure (``Server``, ``post``,
``make_clips``), and the accuracy reports' row summary, confusions and degradation stability (``brief``,
``takes_from``, ``fmt_ci``, ``stability``).

Every script runs from the repository root as ``python -m benchmarks.NAME`` against the installed package
(``pip install -e .``): ``benchmarks`` is a package there, so scripts import ``benchmarks._common`` and nothing is
put on ``sys.path`` by hand. Only the standard library is imported at top level here (numpy and the rest inside
the helpers that need them): ``bench_vs_musicnn`` also runs as a child in the musicnn tagger's own venv. The
experiment scripts (``experiments/``) reach this module through ``experiments._common``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from musicgenre.train.recipe import Recipe, Scorer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # every benchmark's results file (JSON, markdown tables) lives here


def write_results(path: Path, results: Any) -> str:
    """Write a results file, creating its folder if needed; returns the text written. A ``str`` (a markdown
    table) is written as it is; anything else as pretty JSON (the results files' one format)."""
    text = results if isinstance(results, str) else json.dumps(results, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


# --- timing ---------------------------------------------------------------------------------------------------


def timed(fns: Mapping[str, Callable[[], object]], repeats: int, *, warmup: int = 1,
          sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Wall-clock seconds of each function: ``warmup`` untimed calls each, then ``repeats`` rounds in which every
    function runs once, interleaved, so a machine that gets busier slows them alike. ``sync`` runs before the
    clock starts and before it stops (``torch.cuda.synchronize`` for work queued on a GPU)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            if sync:
                sync()
            t0 = time.perf_counter()
            fn()
            if sync:
                sync()
            times[k].append(time.perf_counter() - t0)
    return times


def best_of(fn: Callable[[], object], repeats: int, *, warmup: int = 1,
            sync: Callable[[], None] | None = None) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (``timed``), in seconds."""
    return min(timed({"fn": fn}, repeats, warmup=warmup, sync=sync)["fn"])


def _rss_mb(pid: int) -> float | None:
    """Resident memory of one process from /proc, in MiB (None once it has gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) / 1024 if m else None


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, sample: bool = False,
                 every: float = 0.25, ok: tuple[int, ...] = (0,), tails: bool = False,
                 cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` to completion: wall seconds (start-up included), CPU seconds and peak RSS of its process tree,
    optionally RSS samples (``sample``) and the last line of its output (``tails``); ``cwd``: where it runs.

    CPU time and the peak come from the kernel (``wait4``'s rusage: the process and the children it waited for),
    so they are exact however short the run; samples read /proc every ``every`` s to show how memory evolves. An
    exit status outside ``ok`` raises ``RuntimeError`` with the end of its stderr.
    """
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out if tails else subprocess.DEVNULL,
                                stderr=err)
        done = threading.Event()

        def poll() -> None:
            while not done.wait(every):
                rss = _rss_mb(proc.pid)
                if rss is not None:
                    samples.append((round(time.perf_counter() - t0, 2), round(rss, 1)))

        sampler = threading.Thread(target=poll, daemon=True)
        if sample:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        if sample:
            sampler.join()
        err.seek(0)
        err_lines = err.read().decode(errors="replace").strip().splitlines()
        out.seek(0)
        out_lines = out.read().decode(errors="replace").strip().splitlines()
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n" + "\n".join(err_lines[-15:]))
    res: dict[str, Any] = {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                           "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    if sample:
        res["rss_samples"] = samples
    if tails:
        res.update(stderr_tail=err_lines[-1:], stdout_tail=out_lines[-1:])
    return res


# --- memory, clips ----------------------------------------------------------------------------------------------


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
    import numpy as np
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


# --- accuracy reports (benchmarks/accuracy.py, experiments/accuracy.py, experiments/head_variants.py) -----------


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


def fmt_ci(b: dict[str, Any], key: str) -> str:
    """A ``brief`` row's figure with its 95% interval, for the markdown tables."""
    lo, hi = b["ci95"][key]
    return f"{b[key]:.3f} [{lo:.2f}, {hi:.2f}]"


def takes_from(rep: dict[str, Any], label: str) -> dict[str, Any]:
    """Which genres' clips a label takes (clips of other genres called ``label``) and where its own clips go,
    from a report's confusion matrix."""
    import numpy as np

    labels = list(rep["per_class"])
    if label not in labels:
        return {}
    m = np.array(rep["confusion_matrix"])
    i = labels.index(label)
    return {"called_" + label: {labels[r]: int(m[r, i]) for r in range(len(labels)) if r != i and m[r, i]},
            label + "_called": {labels[c]: int(m[i, c]) for c in range(len(labels)) if m[i, c]}}


def stability(recipe: Recipe, score: Scorer, temperature: float, head: Any = None) -> dict[str, Any]:
    """Share of valid clips whose label under each degradation equals the clean label (a validation run's
    model at its temperature: the label ``predict`` would show); with ``head``, also the share of single
    windows whose own label is kept (the timeline's, a 3-s input's)."""
    import numpy as np

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
