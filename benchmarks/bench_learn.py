"""``musicgenre learn`` at library scale: the whole run on synthetic stored features.

    python -m benchmarks.bench_learn                   # 1,000 and 10,000 files: benchmarks/results/learn.json
    python -m benchmarks.bench_learn --files 1000      # one size

A synthetic library database (``synthetic_library``, also what tests/test_learn.py trains on) is written with
the package's own row writer (``library.db.upsert``): N files in G genres (12 by default), 8 files per artist,
each file stored as ``scan`` stores it (up to 10 windows of a 200-d embedding and 50 tag logits, float16, the
MSD_musicnn backbone's identity) with its own tags (genre in several spellings, artist, album). The features
are Gaussian clusters (genre centre + artist + file + window noise); in the benchmark they overlap
(``SEPARATION``) so that the out-of-fold top-1 is that of a real library, not 1.0. 3% of the labelled files
carry a wrong genre, 5% none, and one rare genre is dropped.

Timed: the whole command, ``musicgenre learn --db DB -o DIR --report R.json``, in this process
(``whole_run_s``, ``_common.timed``, one round), then once more in a new process (``new_process``: start-up and
imports included, with its CPU seconds and peak memory, ``_common.run_measured``). Both cover reading the
database, the vocabulary, the out-of-fold fits, the calibration (fitted once on all out-of-fold scores and
cross-fitted for the reported figures), suspects, the final fit and writing the model directory (ONNX graph
surgery and its check included). The 1,000-file run is done twice and the weights' sha256 compared
(determinism). Target: under 2 minutes for 10,000 files on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS, run_measured, timed, write_results
from musicgenre.testing import synthetic_learning_library as synthetic_library  # shared with the tests

SEPARATION = 0.2  # genre centres' spread in the benchmark: out-of-fold top-1 0.7-0.9 (docs/learn.md's real ones)


def weights_sha256(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def run_size(n: int, folder: Path, *, twice: bool) -> dict[str, Any]:
    """Build an n-file library, time one whole `learn` run (twice when ``twice``: determinism)."""
    from musicgenre.cli import main

    db = folder / f"lib-{n}.db"
    t0 = time.perf_counter()
    made = synthetic_library(db, n, separation=SEPARATION)
    build_s = time.perf_counter() - t0
    outs = [folder / f"model-{n}-a", folder / f"model-{n}-b"]
    report = folder / f"report-{n}.json"
    runs = iter(outs)

    def whole_run() -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # the command's summary table
            code = main(["learn", "--db", str(db), "-o", str(next(runs)), "--report", str(report), "-q"])
        if code != 0:
            raise SystemExit(f"learn failed with exit status {code}")

    seconds = timed({"learn": whole_run}, repeats=2 if twice else 1, warmup=0)["learn"]
    # the same command as a user runs it: a new process (start-up and imports included), its CPU time and peak memory
    process = run_measured([sys.executable, "-m", "musicgenre", "learn", "--db", str(db), "-o",
                            str(folder / f"model-{n}-c"), "-q"])
    rep = json.loads(report.read_text())
    val = rep["validation"]
    shas = [weights_sha256(o) for o in outs[:len(seconds)]]
    flagged = {s["path"] for s in rep["suspects"]}
    return {
        "files": n, "separation": SEPARATION, "labelled": rep["library"]["labelled"],
        "windows": rep["library"]["windows"],
        "genres": len(rep["genres"]), "dropped": [d["genre"] for d in rep["dropped"]],
        "database_build_s": round(build_s, 2), "database_mb": round(db.stat().st_size / 2**20, 1),
        "whole_run_s": [round(s, 2) for s in seconds], "new_process": process,
        "top1_out_of_fold": val["top1"], "confident": val["confident"],
        "suspects": len(rep["suspects"]),
        "mistagged_found": f"{len(flagged & set(made['mistagged']))} of {len(made['mistagged'])}",
        "to_tag": len(rep["to_tag"]),
        "same_weights_twice": (len(set(shas)) == 1) if twice else None,
        "same_weights_new_process": weights_sha256(folder / f"model-{n}-c") == shas[0],
        "weights_sha256": shas[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, nargs="+", default=[1000, 10000], help="library sizes (default 1000 10000)")
    p.add_argument("--out", type=Path, default=RESULTS / "learn.json")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    results: dict[str, Any] = {"command": "python -m benchmarks.bench_learn " + " ".join(map(str, args.files)),
                               "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                               "target": "whole run under 120 s for 10,000 files on 2 cores", "sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.files:
            row = run_size(n, Path(tmp), twice=n <= 1000)
            results["sizes"].append(row)
            print(json.dumps(row))
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    big = [r for r in results["sizes"] if r["files"] >= 10000]
    if big:
        results["target_met"] = all(max(r["whole_run_s"]) < 120 for r in big)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
