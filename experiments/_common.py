"""What the experiment scripts share: the benchmarks' helpers (``benchmarks._common``: the one result writer,
the one timing helper, the accuracy reports' row summary, confusions and degradation stability), and this
folder's own results folder.

Every script runs from the repository root as ``python -m experiments.NAME`` against the installed package
(``pip install -e .``), so ``experiments`` and ``benchmarks`` are packages on the path and the helpers are
imported, not copied.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from benchmarks._common import ROOT, best_of, brief, fmt_ci, stability, takes_from, timed, write_results

T = TypeVar("T")
RESULTS = ROOT / "experiments" / "results"  # every experiment's results file (JSON, markdown tables) lives here


def in_work_folder(work: Path | None, job: Callable[[Path], T]) -> T:
    """``job(folder)`` in ``work`` (made if missing, kept after the run) or, without one, in a temporary folder."""
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        return job(work)
    with tempfile.TemporaryDirectory() as tmp:
        return job(Path(tmp))


def robustness_figures(val: dict[str, Any]) -> dict[str, Any]:
    """A validation run's (``train.recipe.validation_run``) clean figures per source and input length and its
    robustness report, in the shape the robustness and distillation results files keep."""
    lengths = val["lengths"]
    return {
        "clean": {
            **{s: {"n": val[s]["n"], "top1": round(val[s]["accuracy"], 4),
                   "top1_by_windows": {k: val[s]["lengths"][k]["accuracy"] for k in ("1", "3", "10")}}
               for s in ("gtzan", "emotify")},
            "pooled": {k: {f: lengths[k][f] for f in ("n", "accuracy", "confident_share", "confident_accuracy")}
                       for k in ("1", "3", "10", "whole")},
        },
        "robustness": val["robustness"],
    }


__all__ = ["RESULTS", "ROOT", "best_of", "brief", "fmt_ci", "in_work_folder", "robustness_figures", "stability",
           "takes_from", "timed", "write_results"]
