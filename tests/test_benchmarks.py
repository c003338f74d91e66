"""Every benchmark script imports and prints its ``--help`` (so a renamed import or a broken argument parser
shows up here, not on the day someone reruns a figure); results live in benchmarks/results/."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


def _help(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess[str]]:
    """All scripts' --help, run a few at a time (each start imports its dependencies: seconds, not minutes)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([p.name for p in SCRIPTS], pool.map(_help, [p.name for p in SCRIPTS])))


@pytest.mark.parametrize("script", [p.name for p in SCRIPTS])
def test_benchmark_imports_and_prints_help(script: str, helps: dict[str, subprocess.CompletedProcess[str]]) -> None:
    run = helps[script]
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout


def test_benchmarks_keep_results_in_results_folder_and_src_off_the_path() -> None:
    assert not list(BENCHMARKS.glob("results-*")), "results files belong in benchmarks/results/"
    for path in SCRIPTS:
        text = path.read_text()
        assert 'ROOT / "src"' not in text.replace('"PYTHONPATH": str(ROOT / "src")', ""), (
            f"{path.name}: imports the installed package; no sys.path insert of src/")
        assert "sys.path.insert(0, str(ROOT / \"benchmarks\"))" not in text, path.name


def test_no_benchmark_imports_another_script() -> None:
    """Shared code lives in benchmarks/_common.py, not in a script another one imports."""
    import ast

    stems = {p.stem for p in SCRIPTS}
    for path in SCRIPTS:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not stems & set(names), f"{path.name} imports {stems & set(names)}"
