"""`scan --engine ray` against a local Ray instance with 2 CPUs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from musicgenre.genres import display
from musicgenre.library.db import read_rows
from musicgenre.library.scan import scan
from musicgenre.library.tags import TagWriter, read_genre

from .test_library import make_library

ray = pytest.importorskip("ray", reason="distributed extra not installed")  # the test set-up installs it


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_scan_matches_local_scan(local_ray, classifier, tmp_path):
    from musicgenre.library.ray_engine import scan_ray

    lib = tmp_path / "lib"
    make_library(lib, n=6)
    (lib / "broken.flac").write_bytes(b"fLaC" + b"\x01" * 100)
    odd = Path(os.fsdecode(os.fsencode(lib) + b"/caf\xe9.flac"))  # not UTF-8: travels as bytes
    shutil.copy(lib / "t001.flac", odd)
    all_files = sorted(lib.iterdir())
    db = tmp_path / "ray.sqlite"
    s = scan_ray(all_files, db, None, shards=tmp_path / "shards")
    assert (s.done, s.failed) == (7, 1)
    ray_rows = {r["path"]: r for r in read_rows(db)}
    shard_rows = {r["path"]: r for r in read_rows(tmp_path / "shards")}  # export reads shards too
    assert ray_rows.keys() == shard_rows.keys() and len(ray_rows) == 8 and str(odd) in ray_rows

    local_db = tmp_path / "local.sqlite"
    scan(all_files, local_db, classifier)
    for r in read_rows(local_db):
        other = ray_rows[r["path"]]
        assert (other["label"], other["content_hash"], other["model"]) == (r["label"], r["content_hash"], r["model"])
        if r["scores"]:
            assert abs(other["scores"][r["label"]] - r["scores"][r["label"]]) < 1e-4

    # incremental: a second Ray run has nothing to do
    again = scan_ray(all_files, db, None, shards=tmp_path / "shards2")
    assert (again.done, again.skipped) == (0, 8)
    assert not list((tmp_path / "shards2").glob("*.parquet"))  # no job was run

    # a run that wrote its shards but stopped before importing them: the next run imports them first
    fresh_db = tmp_path / "fresh.sqlite"
    resumed = scan_ray(all_files, fresh_db, None, shards=tmp_path / "shards")
    assert (resumed.done, resumed.skipped) == (0, 8) and len(list(read_rows(fresh_db))) == 8

    # --write-tags after the classifying runs: tags the 5 taggable files (not the WAVs), no new job
    tagged = scan_ray(all_files, db, None, shards=tmp_path / "shards3",
                     tagger=TagWriter(report=lambda m: None, min_confidence=0.0, unknown=False))
    assert (tagged.done, tagged.skipped, tagged.tagged) == (0, 8, 5)
    assert read_genre(odd)[0] == display(ray_rows[str(odd)]["label"])
    again = scan_ray(all_files, db, None, shards=tmp_path / "shards4",
                    tagger=TagWriter(report=lambda m: None, min_confidence=0.0, unknown=False))
    assert (again.done, again.skipped, again.tagged) == (0, 8, 0)


@pytest.mark.slow
def test_quiet_ray_scan_prints_nothing_of_rays(tmp_path):
    """`scan --engine ray -q` in its own process: Ray starts, runs the job and stops without one line of its own
    (progress logs, start-up warnings, its C++ core's lines); only our summary line is printed. Without -q,
    Ray's progress is printed as Ray prints it."""
    import subprocess
    import sys

    lib = tmp_path / "lib"
    make_library(lib, n=3)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("RAY_ADDRESS", None)

    def scan_cli(*extra: str) -> tuple[subprocess.CompletedProcess, Path]:
        db = tmp_path / f"lib{len(extra)}.sqlite"
        cmd = [sys.executable, "-m", "musicgenre", "scan", str(lib), "--db", str(db), "--engine", "ray", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300), db

    quiet, db = scan_cli("-q")
    assert quiet.returncode == 0, quiet.stderr
    summary = f"{db}: 3 classified, 0 skipped (unchanged), 0 failed"
    assert quiet.stdout == "" and quiet.stderr.splitlines() == [summary], quiet.stderr
    assert len(list(read_rows(db))) == 3

    loud, db = scan_cli()
    assert loud.returncode == 0 and "Dataset" in loud.stderr + loud.stdout, loud.stderr
    assert loud.stderr.splitlines()[-1] == f"{db}: 3 classified, 0 skipped (unchanged), 0 failed"
