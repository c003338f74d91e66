"""One inference path: predict, explain and evaluate give the same label and scores for the same file and model;
the package has no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from musicgenre import load

from .conftest import EXAMPLES, ROOT


@pytest.mark.slow
def test_predict_explain_evaluate_agree(tmp_path):
    from musicgenre.data.datasets import Example
    from musicgenre.train.evaluate import evaluate
    from musicgenre.train.explain import explain

    clip = EXAMPLES / "jazz_vibe_ace.ogg"
    clf = load(device="cpu")
    pred = clf.predict(clip, max_seconds=30)
    expl = explain(None, clip, tmp_path / "sal.png", max_seconds=30, device="cpu")
    assert expl["label"] == pred.label
    assert expl["score"] == pytest.approx(pred.scores[pred.label], abs=1e-4)
    np.testing.assert_allclose(expl["scores"], [pred.scores[lab] for lab in clf.labels], atol=1e-4)

    rep = evaluate(None, [Example(source=str(clip), label="jazz", name=clip.name)], None, None, device="cpu")
    row = rep["predictions"][0]
    assert row["predicted"] == pred.label
    assert row["score"] == pytest.approx(pred.scores[pred.label], abs=1e-6)


def _module_imports(path: Path, package: str) -> set[str]:
    """Modules of the package that ``path`` imports anywhere (module level or inside functions)."""
    mod = package + "." + ".".join(path.relative_to(ROOT / "src").with_suffix("").parts[1:])
    mod = mod.removesuffix(".__init__")
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = mod.split(".")
            base = base[: len(base) - node.level + (1 if is_pkg else 0)]
            target = ".".join(base + ([node.module] if node.module else []))
            # ``from . import x`` names a sibling module: the package itself is already initialised (a child
            # module only runs inside its package's import), so it is not an edge back to the package
            names = ([] if node.module is None else [target]) + [f"{target}.{a.name}" for a in node.names]
            out.update(n for n in names if n.startswith(package))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith(package + "."))
    return out


def test_no_import_cycles():
    """No import circle anywhere in the package (lazy imports inside functions count too); the package root,
    whose lazy ``__getattr__`` only names the public API, is its own entry point."""
    src = ROOT / "src" / "musicgenre"
    modules = {}
    for path in src.rglob("*.py"):
        name = "musicgenre." + ".".join(path.relative_to(src).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {m: {t for t in _module_imports(p, "musicgenre") if t in modules and t != m} for m, p in modules.items()}
    skip = {"musicgenre"}
    cycles = []
    for start in graph:
        if start in skip:
            continue
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node] - skip:
                if nxt == start:
                    cycles.append(" -> ".join(trail + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
    assert not cycles, cycles


# --- the rules of docs/architecture.md, as checks -------------------------------------------------------------

SRC = ROOT / "src" / "musicgenre"
# Deliberate exceptions, each listed (with its reason) in docs/architecture.md: (module file, function).
ENV_WRITERS = {("web/analyzer.py", "import_gradio"), ("web/server.py", "serve")}
THREAD_SETTERS = {"cli.py", "runtime/torch.py"}  # files that may change torch's process-wide thread counts


def _calls(tree: ast.AST) -> list[tuple[ast.Call, str | None]]:
    """Every call in ``tree`` with the name of the function (def) it sits in, None at module level."""
    out: list[tuple[ast.Call, str | None]] = []

    def walk(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call):
                out.append((child, func))
            walk(child, inner)

    walk(tree, None)
    return out


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _env_writes(tree: ast.AST) -> list[tuple[int, str | None]]:
    """(line, enclosing function) of every write to the process environment."""
    writes = [(c.lineno, f) for c, f in _calls(tree)
              if _dotted(c.func) in ("os.environ.setdefault", "os.environ.update", "os.environ.pop",
                                     "os.environ.clear", "os.putenv", "os.unsetenv")]

    def walk(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            targets = (child.targets if isinstance(child, ast.Assign) else
                       [child.target] if isinstance(child, (ast.AugAssign, ast.AnnAssign)) else
                       child.targets if isinstance(child, ast.Delete) else [])
            for t in targets:
                if isinstance(t, ast.Subscript) and _dotted(t.value) == "os.environ":
                    writes.append((child.lineno, func))
            walk(child, inner)

    walk(tree, None)
    return writes


def test_no_environment_writes_outside_the_listed_exceptions():
    """Library code leaves the process environment alone: never at import, and in a function only where the
    architecture doc lists it (gradio reads its settings from the environment)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for line, func in _env_writes(ast.parse(path.read_text())):
            if func is None or (rel, func) not in ENV_WRITERS:
                bad.append(f"{rel}:{line} ({func or 'module level'})")
    assert not bad, bad
    for rel, func in ENV_WRITERS:
        assert f"{rel.removesuffix('.py').replace('/', '.')}.{func}" in doc, f"{rel} {func} is not listed in the doc"


def test_thread_settings_only_in_the_cli_and_the_runtime():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for call, _ in _calls(ast.parse(path.read_text())):
            name = _dotted(call.func)
            if name.endswith(("set_num_threads", "set_num_interop_threads")) and rel not in THREAD_SETTERS:
                bad.append(f"{rel}:{call.lineno} {name}")
    assert not bad, bad


def test_no_pyplot_or_global_matplotlib_backend():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name}: {n}" for n in names if "pyplot" in n]
        bad += [f"{path.name}:{c.lineno}" for c, _ in _calls(tree) if _dotted(c.func) == "matplotlib.use"]
    assert not bad, bad


def test_the_checks_catch_what_they_forbid():
    """The checkers themselves: a module-level environment write and a thread setting are found."""
    tree = ast.parse("import os\nos.environ['A'] = '1'\ndef f():\n    os.environ.setdefault('B', '2')\n"
                     "    torch.set_num_threads(1)\n")
    assert sorted(_env_writes(tree), key=lambda w: w[0]) == [(2, None), (4, "f")]
    assert [(_dotted(c.func), f) for c, f in _calls(tree)] == [("os.environ.setdefault", "f"),
                                                               ("torch.set_num_threads", "f")]


# --- the registry, read with and without torch ---------------------------------------------------------------


def test_declared_architectures_are_the_registry():
    """What `musicgenre models` reads from the source (no torch) is what the registry holds once imported."""
    pytest.importorskip("torch")
    from musicgenre.models import _registry, declared_architectures, list_architectures

    list_architectures()  # imports every architecture module
    registered = {n: (a.description, a.trainable, a.requires, a.extra) for n, a in _registry._ARCHITECTURES.items()}
    declared = {n: (d.description, d.trainable, d.requires, d.extra) for n, d in declared_architectures().items()}
    assert declared == registered
    init = ast.parse((ROOT / "src" / "musicgenre" / "models" / "__init__.py").read_text())
    imported = {a.name for node in ast.walk(init) if isinstance(node, ast.ImportFrom) and node.module is None
                for a in node.names}
    assert imported - {"_registry"} == set(_registry.ARCHITECTURE_MODULES)


def test_models_command_lists_architectures_in_the_light_install():
    import subprocess
    import sys

    code = "import sys; sys.modules['torch'] = None\nfrom musicgenre.cli import main\nsys.exit(main(['models']))\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for name in ("crnn", "vgg19_bn_cqt", "parallel_cnn_rnn", "musicnn_transfer", "hf"):
        assert f"  {name}: " in run.stdout
    assert "missing torch: pip install 'musicgenre[train]'" in run.stdout
    assert "musicnn_genre:" not in run.stdout  # built by `train --recipe`, not `train ARCH DATA`


def test_light_modules_import_without_torch():
    """The light install (no torch) reads recipes, model cards and the registry: `musicgenre evaluate --recipe`
    scores the ONNX model, `musicgenre models` lists architectures."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import musicgenre.cli, musicgenre.loader, musicgenre.modeldir, musicgenre.models\n"
            "import musicgenre.train.evaluate\n"
            "from musicgenre.train.recipe import Recipe\n"
            f"r = Recipe.load({str(ROOT / 'recipes' / 'musicnn-genre.toml')!r})\n"
            "from musicgenre.modeldir import read, resolve\n"
            "assert read(resolve(None)).onnx is not None and r.labels\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


# The layers (docs/architecture.md): core <- evaluation <- features <- adapters. A feature package never imports
# another; web maps HTTP onto the features as cli maps the command line, so it is an adapter.
FEATURES = ("library", "learn", "train")
ADAPTERS = ("cli", "__main__", "web", "testing")  # testing: synthetic libraries for tests and benchmarks


def _layer(module: str) -> tuple[int, str]:
    """(layer, package) of a module: 0 core, 1 evaluation, 2 a feature package, 3 an adapter."""
    part = module.split(".")[1] if "." in module else ""
    if part == "evaluation":
        return 1, part
    if part in FEATURES:
        return 2, part
    if part in ADAPTERS:
        return 3, part
    return 0, "core"


def _package_graph(package: str) -> dict[str, set[str]]:
    src = ROOT / "src" / package
    modules = {}
    for path in src.rglob("*.py"):
        name = package + "." + ".".join(path.relative_to(src).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return {m: {t for t in _module_imports(p, package)} for m, p in modules.items()}


def test_layers_import_downward_only():
    """Every import (lazy ones too) goes to the same layer or below; the feature packages (library, learn,
    train) never import each other; the core never imports evaluation or anything above it."""
    wrong = []
    for module, targets in _package_graph("musicgenre").items():
        if module == "musicgenre":  # the root's lazy __getattr__ names the public API only
            continue
        layer, pkg = _layer(module)
        for target in targets:
            t_layer, t_pkg = _layer(target)
            if t_layer > layer or (t_layer == layer == 2 and t_pkg != pkg):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_importing_learn_loads_no_audio_windows_or_torch():
    """``learn`` trains from stored features: importing it loads no decoder, window cutter, model runtime,
    torch, nor the library or the torch trainer."""
    import subprocess
    import sys

    code = ("import sys, musicgenre.learn.run, musicgenre.learn.options, musicgenre.learn.report; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'soundfile', 'librosa', "
            "'onnxruntime') or m.startswith(('musicgenre.audio', 'musicgenre.windows', 'musicgenre.pipeline', "
            "'musicgenre.library', 'musicgenre.train'))); print(bad); sys.exit(bool(bad))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
