"""Every benchmark and experiment script imports and prints its ``--help`` (so a renamed import or a broken
argument parser shows up here, not on the day someone reruns a figure); results live in benchmarks/results/ and
experiments/results/, written by the one result writer; timing and window cutting are done once."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import ROOT, load_benchmark

FOLDERS = (ROOT / "benchmarks", ROOT / "experiments")
SCRIPTS = sorted(p for folder in FOLDERS for p in folder.glob("*.py") if not p.name.startswith("_"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _help(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess[str]]:
    """All scripts' --help, run a few at a time (each start imports its dependencies: seconds, not minutes)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(map(_name, SCRIPTS), pool.map(_help, SCRIPTS)))


def test_both_folders_hold_scripts() -> None:
    assert {p.parent.name for p in SCRIPTS} == {"benchmarks", "experiments"}


@pytest.mark.parametrize("script", [_name(p) for p in SCRIPTS])
def test_script_imports_and_prints_help(script: str, helps: dict[str, subprocess.CompletedProcess[str]]) -> None:
    run = helps[script]
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout


def test_scripts_keep_results_in_results_folder_and_src_off_the_path() -> None:
    for folder in FOLDERS:
        assert not list(folder.glob("results-*")), f"results files belong in {folder.name}/results/"
    for path in SCRIPTS:
        text = path.read_text()
        assert 'ROOT / "src"' not in text.replace('"PYTHONPATH": str(ROOT / "src")', ""), (
            f"{_name(path)}: imports the installed package; no sys.path insert of src/")
        assert "sys.path.insert(0, str(ROOT / \"benchmarks\"))" not in text, _name(path)
        by_hand = r'"(benchmarks|experiments)" / "results"|ROOT / "(benchmarks|experiments)/results'
        assert not re.search(by_hand, text), f"{_name(path)}: results paths come from _common.RESULTS"


def test_no_script_imports_another_script() -> None:
    """Shared code lives in benchmarks/_common.py (experiments/_common.py passes it on), not in a script another
    one imports."""
    stems = {p.stem for p in SCRIPTS}
    for path in SCRIPTS:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not stems & set(names), f"{_name(path)} imports {stems & set(names)}"


def test_results_go_through_the_one_writer_and_timing_through_the_one_helper() -> None:
    """No script writes JSON by hand (``_common.write_results`` does) or defines its own repeat-and-time loop
    (``_common.timed`` / ``best_of``)."""
    for path in SCRIPTS:
        text = path.read_text()
        assert not re.search(r"json\.dump\(|write_text\(json\.dumps", text), f"{_name(path)} writes JSON by hand"
        defined = {n.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)}
        assert not defined & {"timed", "best_of", "write_results"}, f"{_name(path)} defines {defined}"


def test_no_script_cuts_windows_by_hand() -> None:
    """Audio is cut into analysis windows by ``musicgenre.windows.Windows`` only: no ``x[: len(x) // t * t]``
    reshaping of frames into windows in a script."""
    for path in SCRIPTS:
        assert not re.search(r"//\s*(\w+)\s*\*\s*\1\b", path.read_text()), f"{_name(path)} cuts windows itself"


def test_common_imports_only_the_standard_library() -> None:
    """bench_vs_musicnn.py runs as a child in the musicnn tagger's venv: _common must import there."""
    code = "import _common, sys; print(sorted(m for m in ('numpy', 'musicgenre', 'torch') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=ROOT / "benchmarks")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_experiments_share_the_benchmarks_helpers(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("experiments_common", ROOT / "experiments" / "_common.py")
    assert spec is not None and spec.loader is not None
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    assert exp.RESULTS == ROOT / "experiments" / "results"
    for name in ("write_results", "timed", "best_of", "brief", "stability", "takes_from", "fmt_ci"):
        assert getattr(exp, name).__code__.co_filename == str(ROOT / "benchmarks" / "_common.py"), name


def test_timed_warms_up_then_interleaves_rounds() -> None:
    common = load_benchmark("_common")
    calls: list[str] = []
    times = common.timed({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3} and min(times["a"]) >= 0
    synced: list[int] = []
    assert common.best_of(lambda: None, 4, warmup=0, sync=lambda: synced.append(1)) >= 0
    assert len(synced) == 8  # before the clock starts and before it stops, every call


def test_write_results_writes_json_or_markdown(tmp_path: Path) -> None:
    common = load_benchmark("_common")
    text = common.write_results(tmp_path / "new" / "r.json", {"a": [1, 2]})
    assert (tmp_path / "new" / "r.json").read_text() == text == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert common.write_results(tmp_path / "r.md", "| t |\n") == (tmp_path / "r.md").read_text() == "| t |\n"
