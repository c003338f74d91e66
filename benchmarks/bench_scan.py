"""Library scan throughput: local engine vs Ray (local, 2 CPUs) on generated 30-s clips.

    python benchmarks/bench_scan.py --n 1000      # writes benchmarks/results-scan.json

Each engine scans the same freshly generated folder into its own new database, in its own process.
Reported: files per second (wall clock, planning and DB writes included) and peak memory, sampled
every 0.5 s as the summed RSS of the scanning process and all its children (Ray's workers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


RAY_CHILD = """
import sys, ray
from pathlib import Path
from musicgenre.library.ray_engine import scan_ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
files = sorted(Path(sys.argv[1]).glob("*.mp3"))
print(scan_ray(files, Path(sys.argv[2]), None, shards=Path(sys.argv[2] + ".shards")).line(), file=sys.stderr)
"""


def make_clips(folder: Path, n: int, seconds: float) -> list[Path]:
    """``n`` MP3 clips of ``seconds`` cut from the repo's example clips at varied gains (no ../shared needed)."""
    import numpy as np
    import soundfile as sf

    sources = sorted((ROOT / "examples").glob("*.ogg"))
    out = []
    for i in range(n):
        y, sr = sf.read(sources[i % len(sources)], dtype="float32")
        reps = int(np.ceil(seconds * sr / len(y)))
        clip = np.tile(y, (reps, 1) if y.ndim == 2 else reps)[: int(seconds * sr)] * (0.6 + 0.4 * (i % 5) / 4)
        path = folder / f"clip{i:04d}.mp3"
        sf.write(path, clip, sr, format="MP3", subtype="MPEG_LAYER_III")
        out.append(path)
    return out


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


def measure(cmd: list[str], n: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.5)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    t.join()
    if proc.returncode not in (0, 1):
        raise RuntimeError(err)
    return {"files": n, "wall_seconds": round(wall, 1), "files_per_second": round(n / wall, 2),
            "peak_rss_mb": round(peak[0]), "summary": err.strip().splitlines()[-1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    exe = Path(sys.executable).with_name("musicgenre")
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        lib.mkdir()
        make_clips(lib, args.n, 30.0)
        results = {
            "clips": f"{args.n} generated 30-s MP3 clips",
            "local": measure([str(exe), "scan", str(lib), "--db", f"{tmp}/local.sqlite", "-q"], args.n),
            "ray_local_2cpu": measure([sys.executable, "-c", RAY_CHILD, str(lib), f"{tmp}/ray.sqlite"], args.n),
        }
    (ROOT / "benchmarks/results-scan.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
