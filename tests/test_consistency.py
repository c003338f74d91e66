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
            names = [target] + [f"{target}.{a.name}" for a in node.names]
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
