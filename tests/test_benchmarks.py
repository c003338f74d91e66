"""Every benchmark and experiment script imports and prints its ``--help`` when run as documented,
``python -m benchmarks.NAME`` from the repository root (so a renamed import or a broken argument parser shows up
here, not on the day someone reruns a figure); results live in benchmarks/results/ and experiments/results/,
written by the one result writer; timing and window cutting are done once; no folder loads another's files by
path."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks import _common as common
from experiments import _common as experiments_common

from .conftest import ROOT

FOLDERS = (ROOT / "benchmarks", ROOT / "experiments")
SCRIPTS = sorted(p for folder in FOLDERS for p in folder.glob("*.py") if not p.name.startswith("_"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _module(path: Path) -> str:
    """The name a script runs under: ``benchmarks/bench_scan.py`` is ``benchmarks.bench_scan``."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _help(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", _module(path), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess[str]]:
    """All scripts' --help, run a few at a time (each start imports its dependencies: seconds, not minutes)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(map(_name, SCRIPTS), pool.map(_help, SCRIPTS)))


def test_both_folders_hold_scripts() -> None:
    assert {p.parent.name for p in SCRIPTS} == {"benchmarks", "experiments"}
    assert all((folder / "__init__.py").is_file() for folder in (*FOLDERS, ROOT / "scripts")), "packages, run with -m"


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
        by_hand = r'"(benchmarks|experiments)" / "results"|ROOT / "(benchmarks|experiments)/results'
        assert not re.search(by_hand, text), f"{_name(path)}: results paths come from _common.RESULTS"


def _imported(tree: ast.AST) -> set[str]:
    """Every module an import statement names: ``from benchmarks import bench_scan`` names ``benchmarks`` and
    ``benchmarks.bench_scan``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return names


def test_no_script_imports_another_script() -> None:
    """Shared code lives in benchmarks/_common.py (experiments/_common.py passes it on), not in a script another
    one imports."""
    modules = {_module(p) for p in SCRIPTS}
    for path in SCRIPTS:
        imported = _imported(ast.parse(path.read_text()))
        assert not modules & imported, f"{_name(path)} imports {modules & imported}"


LOADS_BY_PATH = {"spec_from_file_location", "spec_from_loader", "SourceFileLoader", "run_path", "addsitedir"}
PATH_EDITS = {"insert", "append", "extend", "remove", "pop", "clear", "__setitem__", "__iadd__"}


def _is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")


def _loads_by_path(tree: ast.AST) -> list[str]:
    """Where a file reaches another's code by its path: importlib's file loaders, ``runpy.run_path``, or an edit
    of ``sys.path`` (a method call on it, or an assignment to it or to a slice of it)."""
    found = []
    for node in ast.walk(tree):
        names = ({node.attr} if isinstance(node, ast.Attribute) else {node.id} if isinstance(node, ast.Name) else
                 {a.name for a in node.names} if isinstance(node, ast.ImportFrom) else set())
        if names & LOADS_BY_PATH:
            found.append(f"line {node.lineno}: {', '.join(sorted(names & LOADS_BY_PATH))}")
        if isinstance(node, ast.Attribute) and node.attr in PATH_EDITS and _is_sys_path(node.value):
            found.append(f"line {node.lineno}: sys.path.{node.attr}")
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            if _is_sys_path(target) or (isinstance(target, ast.Subscript) and _is_sys_path(target.value)):
                found.append(f"line {node.lineno}: assigns sys.path")
        if isinstance(node, ast.ImportFrom) and node.module == "sys" and "path" in {a.name for a in node.names}:
            found.append(f"line {node.lineno}: from sys import path")
    return found


def test_no_folder_loads_another_folders_files_by_path() -> None:
    """benchmarks, experiments and scripts are packages imported by name from the repository root (pytest's
    ``pythonpath``, ``python -m`` from the root) and the product is the installed package: no file of these
    folders, the tests or src/ loads a file by its path or edits ``sys.path``."""
    checked, offenders = 0, []
    for folder in ("tests", "benchmarks", "experiments", "scripts", "src"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ".venv" in path.parts or "site-packages" in path.parts:
                continue
            checked += 1
            offenders += [f"{_name(path)} {where}" for where in _loads_by_path(ast.parse(path.read_text()))]
    assert checked > 100 and not offenders, offenders


def test_the_path_rule_sees_each_way_of_loading_by_path() -> None:
    """The rule above, on snippets of what it forbids and of what it allows."""
    forbidden = ['sys.path.insert(0, str(ROOT / "scripts"))', "sys.path.append('x')", "sys.path[:0] = ['x']",
                 "sys.path += ['x']", "sys.path = ['x']", "from sys import path",
                 "importlib.util.spec_from_file_location('m', 'x.py')",
                 "from importlib.util import spec_from_file_location", "runpy.run_path('x.py')"]
    for code in forbidden:
        assert _loads_by_path(ast.parse(code)), code
    for code in ["print(sys.path)", "from benchmarks import bench_scan", "importlib.import_module('benchmarks.x')",
                 "os.path.join('a', 'b')", "x.path.insert(0, 'y')"]:
        assert not _loads_by_path(ast.parse(code)), code


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
    """bench_vs_musicnn runs as a child in the musicnn tagger's venv (``-m`` from the repository root, no
    PYTHONPATH): the package and its _common must import there."""
    code = ("import benchmarks._common, benchmarks.bench_vs_musicnn, sys; "
            "print(sorted(m for m in ('numpy', 'musicgenre', 'torch') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_experiments_share_the_benchmarks_helpers() -> None:
    assert experiments_common.RESULTS == ROOT / "experiments" / "results"
    for name in ("write_results", "timed", "best_of", "brief", "stability", "takes_from", "fmt_ci"):
        assert getattr(experiments_common, name) is getattr(common, name), name
        assert getattr(experiments_common, name).__code__.co_filename == str(ROOT / "benchmarks" / "_common.py")


def test_timed_warms_up_then_interleaves_rounds() -> None:
    calls: list[str] = []
    times = common.timed({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3} and min(times["a"]) >= 0
    synced: list[int] = []
    assert common.best_of(lambda: None, 4, warmup=0, sync=lambda: synced.append(1)) >= 0
    assert len(synced) == 8  # before the clock starts and before it stops, every call


def test_write_results_writes_json_or_markdown(tmp_path: Path) -> None:
    text = common.write_results(tmp_path / "new" / "r.json", {"a": [1, 2]})
    assert (tmp_path / "new" / "r.json").read_text() == text == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert common.write_results(tmp_path / "r.md", "| t |\n") == (tmp_path / "r.md").read_text() == "| t |\n"
