"""Speed and memory of `musicgenre predict` on this machine.

    python benchmarks/bench_predict.py            # writes benchmarks/results-predict.json

Measures, end to end (decode + features + model): seconds of audio classified per wall-clock second
for 100 30-s MP3 clips and for one 10-minute MP3, the peak RSS of each run (separate processes),
and the cold start of the `musicgenre predict` command on one example clip.
Clips are made from the shipped examples (looped to length, MP3-encoded with soundfile).
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_clips(folder: Path, n: int, seconds: float) -> list[Path]:
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


def run_child(files: list[str]) -> dict:
    """Classify ``files`` in this process; report throughput and peak RSS."""
    from musicgenre import Classifier

    clf = Classifier.from_pretrained(device="cpu")
    t0 = time.perf_counter()
    audio_s = sum(p.duration for p in clf.predict_many(files))
    wall = time.perf_counter() - t0
    return {"files": len(files), "audio_seconds": round(audio_s, 1), "wall_seconds": round(wall, 2),
            "realtime_factor": round(audio_s / wall, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def child(files: list[Path]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, files)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def cold_start(repeats: int = 3) -> float:
    exe = Path(sys.executable).with_name("musicgenre")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([str(exe), "predict", str(ROOT / "examples/jazz_vibe_ace.ogg")], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t0)
    return round(min(times), 2)


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), 100, 30.0)
        (Path(tmp) / "long").mkdir()
        ten_min = make_clips(Path(tmp) / "long", 1, 600.0)
        results = {
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
            "clips_30s_x100": child(clips),
            "file_10min": child(ten_min),
            "cold_start_seconds": cold_start(),
        }
    (ROOT / "benchmarks/results-predict.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(run_child(sys.argv[2:])))
    else:
        main()
