"""The light install: a wheel built from the repo installs in a fresh venv without torch and classifies the
example clips there, outside the repo (what `pip install musicgenre` gives a user), lists the architectures it
could train with the `train` extra, and ships py.typed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from .conftest import EXAMPLES, ROOT


@pytest.mark.slow
def test_wheel_installs_without_torch_and_classifies(tmp_path):
    pytest.importorskip("build", reason="the test extra installs 'build'")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    wheel = next(dist.glob("musicgenre-*.whl"))
    assert "musicgenre/py.typed" in zipfile.ZipFile(wheel).namelist()  # typed package (PEP 561)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    # the examples are copied away from the repo: nothing may come from the checkout
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(EXAMPLES / "classical_hungarian_dance_5.ogg", work)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(py), "-c", "import importlib.util as u, musicgenre; "
                            "print(u.find_spec('torch') is None, musicgenre.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=120)
    no_torch, location = probe.stdout.split()
    assert no_torch == "True" and str(venv) in location
    out = subprocess.run([str(venv / "bin" / "musicgenre"), "predict", "classical_hungarian_dance_5.ogg", "-f", "json"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    pred = json.loads(out.stdout)[0]
    assert pred["label"] == "classical" and pred["model"] == "musicnn-gtzan"
    models = subprocess.run([str(venv / "bin" / "musicgenre"), "models"], capture_output=True, text=True, cwd=work,
                            env=env, timeout=120)
    assert models.returncode == 0, models.stderr[-2000:]
    assert "  crnn: " in models.stdout and "missing torch: pip install 'musicgenre[train]'" in models.stdout
