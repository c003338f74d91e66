"""The beets plugin's costs: what it adds to every `beet` command, and what classifying through beets
costs per file next to `musicgenre scan` on the same files.

    python -m benchmarks.bench_beets [--items 1000] [--ls-runs 21] [--files 24] [--seconds 30] [--rounds 3]

Writes benchmarks/results/beets.json. Neither command draws a progress bar here (`musicgenre scan -q`;
`beet musicgenre` draws one only on a terminal).

1. ``beet ls`` on a library of ``--items`` items (added through beets' API; no audio needed), with
   ``plugins: musicgenre`` and with no plugins, ``--ls-runs`` times each, interleaved; the median wall
   time of each and their difference (target: at most 50 ms).
2. ``--files`` and ``2 * --files`` MP3 clips of ``--seconds`` s (cut from the example clips), classified
   by ``musicgenre scan --db NEW`` and by ``beet musicgenre`` on a fresh library that holds the same files
   (imported as-is, without copying, before the clock starts), ``--rounds`` times each, interleaved:
   once storing the results only, once also writing tags into the files (``--write-tags`` / ``-w``, both
   at ``--min-confidence 0`` so every file is written, on fresh copies of the clips). Wall and CPU time
   (the command's process tree), medians over the rounds: per file over the whole command (start-up and
   model load included), and the marginal cost of one more file, (T(2n) - T(n)) / n, which start-up does
   not enter. Target: beets at most 10% more per file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS, make_mp3_clips, run_measured, write_results

BEET = str(Path(sys.executable).with_name("beet"))
MUSICGENRE = str(Path(sys.executable).with_name("musicgenre"))


def beets_dir(root: Path, plugins: str, *, library: Path | None = None) -> dict[str, str]:
    """A beets config folder; returns the environment that points beets at it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(
        f"directory: {root / 'music'}\nlibrary: {library or root / 'library.db'}\nplugins: {plugins}\n"
        "import:\n  copy: no\n  write: no\n  autotag: no\n  quiet: yes\nmusicgenre:\n  auto: no\n")
    return {**os.environ, "BEETSDIR": str(root), "HOME": str(root)}


def measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall and CPU seconds of one command (its whole process tree, once reaped: ``run_measured``) and the last
    line of its output; exit status 1 (some files failed) is accepted."""
    return run_measured(cmd, env=env, ok=(0, 1), tails=True)


def bench_ls(work: Path, items: int, runs: int) -> dict[str, Any]:
    from beets.library import Item, Library

    db = work / "ls-library.db"
    lib = Library(str(db), str(work / "music"))
    with lib.transaction():
        for i in range(items):
            lib.add(Item(title=f"Track {i}", artist=f"Artist {i % 50}", album=f"Album {i // 10}", track=i % 10 + 1,
                         path=str(work / "music" / f"{i}.mp3"), format="MP3"))
    lib._close()
    envs = {"with_plugin": beets_dir(work / "ls-on", "musicgenre", library=db),
            "without": beets_dir(work / "ls-off", "[]", library=db)}
    for env in envs.values():  # warm the page cache and run beets' one-time database migrations
        measured([BEET, "ls"], env)
    times: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(runs):
        for name, env in envs.items():
            times[name].append(measured([BEET, "ls"], env)["wall_s"])
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"items": items, "runs": runs, "median_s": med, "all_s": times,
            "difference_ms": round((med["with_plugin"] - med["without"]) * 1000, 1)}


def bench_classify(work: Path, files: int, seconds: float, rounds: int) -> dict[str, Any]:
    """Each tool on ``files`` and on ``2 * files`` clips, ``rounds`` times, interleaved. Per file: the whole
    command's time over ``files`` (start-up included), and the marginal cost, (T(2n) - T(n)) / n on the
    medians, which start-up (importing beets or musicgenre, loading the model) does not enter."""
    clips = work / "clips"
    clips.mkdir()
    make_mp3_clips(clips, 2 * files, seconds)
    half = work / "clips-half"
    half.mkdir()
    for p in sorted(clips.iterdir())[:files]:
        shutil.copy2(p, half / p.name)
    out: dict[str, Any] = {"files": files, "seconds_per_file": seconds, "rounds": rounds}
    for mode in ("store", "write"):
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in range(rounds):
            for n, source in ((files, half), (2 * files, clips)):
                for tool in ("scan", "beets") if r % 2 == 0 else ("beets", "scan"):
                    folder = work / f"{mode}-{tool}-{n}-{r}"
                    shutil.copytree(source, folder)  # fresh, untagged copies for every run
                    if tool == "scan":
                        cmd = [MUSICGENRE, "scan", str(folder), "--db", str(folder) + ".sqlite", "-q"]
                        if mode == "write":
                            cmd += ["--write-tags", "--min-confidence", "0"]
                        res = measured(cmd)
                    else:
                        env = beets_dir(work / f"beets-{mode}-{n}-{r}", "musicgenre")
                        subprocess.run([BEET, "import", "-A", "-C", "-W", "-q", str(folder)], env=env, check=True,
                                       capture_output=True)
                        cmd = [BEET, "musicgenre", "--min-confidence", "0", "-w" if mode == "write" else "-W"]
                        res = measured(cmd, env)
                    runs.setdefault((tool, n), []).append(res)
                    print(f"{mode} {tool} {n} files round {r}: {res['wall_s']:.2f} s wall, {res['cpu_s']:.2f} s CPU",
                          file=sys.stderr)
        summary: dict[str, Any] = {}
        for tool in ("scan", "beets"):
            med = {(n, k): statistics.median(x[k] for x in runs[(tool, n)])
                   for n in (files, 2 * files) for k in ("wall_s", "cpu_s")}
            summary[tool] = {
                "wall_s_per_file": med[(files, "wall_s")] / files,
                "cpu_s_per_file": med[(files, "cpu_s")] / files,
                "marginal_wall_s_per_file": (med[(2 * files, "wall_s")] - med[(files, "wall_s")]) / files,
                "marginal_cpu_s_per_file": (med[(2 * files, "cpu_s")] - med[(files, "cpu_s")]) / files,
                "runs": {str(n): runs[(tool, n)] for n in (files, 2 * files)},
            }
        for key in ("wall_s_per_file", "cpu_s_per_file", "marginal_wall_s_per_file", "marginal_cpu_s_per_file"):
            summary[f"beets_over_scan_{key}"] = summary["beets"][key] / summary["scan"][key] - 1
        out[mode] = summary
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--ls-runs", type=int, default=21)
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "beets.json")
    args = ap.parse_args()
    import beets

    with tempfile.TemporaryDirectory(prefix="bench-beets-") as tmp:
        work = Path(tmp)
        ls = bench_ls(work, args.items, args.ls_runs)
        print(f"beet ls: {ls['median_s']} -> +{ls['difference_ms']} ms with the plugin", file=sys.stderr)
        classify = bench_classify(work, args.files, args.seconds, args.rounds)
    result = {"beets": beets.__version__, "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "command": " ".join(["python", "-m", "benchmarks.bench_beets", *sys.argv[1:]]),
              "beet_ls": ls, "classify": classify,
              "note": "2 CPU cores shared with other jobs; wall and CPU time per file include start-up and "
                      "model load (whole commands)"}
    write_results(args.output, result)
    for mode in ("store", "write"):
        c = classify[mode]
        print(f"{mode}: per file (whole command) scan {c['scan']['cpu_s_per_file']:.3f} s CPU, beets "
              f"{c['beets']['cpu_s_per_file']:.3f} ({c['beets_over_scan_cpu_s_per_file']:+.1%} CPU, "
              f"{c['beets_over_scan_wall_s_per_file']:+.1%} wall); marginal scan "
              f"{c['scan']['marginal_cpu_s_per_file']:.3f} s CPU, beets {c['beets']['marginal_cpu_s_per_file']:.3f} "
              f"({c['beets_over_scan_marginal_cpu_s_per_file']:+.1%} CPU, "
              f"{c['beets_over_scan_marginal_wall_s_per_file']:+.1%} wall)", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
