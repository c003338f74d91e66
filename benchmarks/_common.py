"""Helpers the benchmark scripts share: where the repository and the results are, and process-tree memory.

Every script runs as ``python benchmarks/NAME.py`` against the installed package (``pip install -e .``), so
neither ``src/`` nor this folder is put on ``sys.path`` by hand: Python puts a script's own folder there,
which is how ``from _common import ...`` resolves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # every results file (JSON, markdown tables) lives here


def write_results(path: Path, results: Any) -> None:
    """Pretty JSON (the results files' one format), creating ``benchmarks/results/`` if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children, in MiB (0 once it has exited)."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20
