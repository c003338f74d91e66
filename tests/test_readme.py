"""The README's Python example runs as written (with the example clip standing in for song.mp3)."""

from __future__ import annotations

import re

from .conftest import EXAMPLES, ROOT


def test_readme_python_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"### Python\n\n```python\n(.*?)```", text, re.S)
    assert block, "README lost its Python example"
    code = block.group(1).replace('"song.mp3"', repr(str(EXAMPLES / "classical_hungarian_dance_5.ogg")))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["pred"].label == "classical"
    out = capsys.readouterr().out
    assert "broken.flac: file not found" in out and "Prediction(" in out


def test_readme_table_example_is_what_the_cli_prints(capsys, monkeypatch):
    """The README's "What it does" output, the `tags:` line included, is what `musicgenre predict` prints."""
    from musicgenre.cli import main

    text = (ROOT / "README.md").read_text()
    block = re.search(r"```\n\$ musicgenre (predict [^\n]*)\n(.*?)```", text, re.S)
    assert block, "README lost its table example"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert main(block.group(1).split()) == 0
    assert capsys.readouterr().out.strip() == block.group(2).strip()
