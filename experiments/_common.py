"""What the experiment scripts share: the benchmarks' helpers (``benchmarks/_common.py``: the one result
writer, the one timing helper, the accuracy reports' row summary, confusions and degradation stability),
and this folder's own results folder.

Every script runs as ``python experiments/NAME.py`` against the installed package (``pip install -e .``):
Python puts a script's own folder on ``sys.path``, which is how ``from _common import ...`` resolves. The
benchmarks' module is loaded from its file here, once, so nothing (neither ``src/`` nor ``benchmarks/``) is
put on ``sys.path`` by hand and no helper is copied.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")


def _benchmarks_common() -> ModuleType:
    name = "benchmarks_common"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks"
                                                      / "_common.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # registered before it runs, as an import would
        spec.loader.exec_module(module)
    return sys.modules[name]


_shared = _benchmarks_common()
ROOT: Path = _shared.ROOT
RESULTS = ROOT / "experiments" / "results"  # every experiment's results file (JSON, markdown tables) lives here
write_results = _shared.write_results
timed = _shared.timed
best_of = _shared.best_of
brief = _shared.brief
fmt_ci = _shared.fmt_ci
stability = _shared.stability
takes_from = _shared.takes_from



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
