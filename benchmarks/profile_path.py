"""Where a 30-s MP3's time goes on the inference path, step by step, through the public API.

    python -m benchmarks.profile_path                      # writes benchmarks/results/profile-path.json
    PYTHONPATH=OTHER/src python -m benchmarks.profile_path -o OUT.json   # another checkout, same clips

On ``--clips`` generated 30-s MP3s (44.1 kHz stereo, from the example clips): decoding alone
(``audio.stream_audio``), decoding + log-mel windows (``windows.Windows``), the model on a clip's windows
(``Classifier.run``), one warm ``predict``; then ``predict_many`` (1 and 2 workers) with its wall clock and
the process's CPU time per file (CPU well above wall x workers means threads busy elsewhere: this is how
OpenBLAS threads spinning after the mel projection were found). Medians over clips and ``--repeats`` passes; the
ONNX Runtime per-operator profile of one clip's windows with ``--ort-profile`` (the ONNX backend only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import musicgenre
from benchmarks._common import RESULTS, make_mp3_clips, timed, write_results
from musicgenre.audio import stream_audio
from musicgenre.pipeline import predict_many
from musicgenre.windows import Windows


def median_ms(fn: Callable[[Path], object], clips: list[Path], repeats: int) -> float:
    """Median milliseconds of ``fn(clip)`` over the clips and ``repeats`` passes (``timed``, no warm-up)."""
    times = timed({str(c): partial(fn, c) for c in clips}, repeats, warmup=0)
    return round(1000 * statistics.median(t for ts in times.values() for t in ts), 1)


def many(clf: Any, clips: list[Path], workers: int, repeats: int) -> dict[str, float]:
    """Best of ``repeats`` runs of predict_many: wall ms and process CPU ms per file."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        c0, t0 = os.times(), time.perf_counter()
        list(predict_many(clf, clips, workers=workers))
        wall, c1 = time.perf_counter() - t0, os.times()
        cpu = (c1.user - c0.user) + (c1.system - c0.system)
        if not best or wall * 1000 / len(clips) < best["wall_ms_per_file"]:
            best = {"wall_ms_per_file": round(1000 * wall / len(clips), 1),
                    "cpu_ms_per_file": round(1000 * cpu / len(clips), 1)}
    return best


def ort_profile(clf: Any, clip: Path) -> dict[str, float]:
    """ms per operator type for one clip's windows in a profiling session of the model's own graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = ort.InferenceSession(str(clf.model.runner.file), opts, providers=["CPUExecutionProvider"])
    windows = Windows(clip, clf.model.features).all()[0]
    feed = {session.get_inputs()[0].name: windows}
    for _ in range(3):
        session.run(None, feed)
    profile = json.loads(Path(session.end_profiling()).read_text())
    per_op: Counter[str] = Counter()
    for event in profile:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 3 / 1000
    return {op: round(ms, 2) for op, ms in per_op.most_common()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ort-profile", action="store_true")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "profile-path.json")
    args = ap.parse_args()
    clf = musicgenre.load()
    sr = clf.model.features.sr
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_mp3_clips(Path(tmp), args.clips, 30.0)
        clf.predict(clips[0])  # warm-up
        windows = {c: Windows(c, clf.model.features).all()[0] for c in clips}
        res: dict[str, Any] = {
            "musicgenre": str(Path(musicgenre.__file__).parent), "clips": args.clips, "loadavg": os.getloadavg(),
            "decode_ms": median_ms(lambda c: sum(len(b) for b in stream_audio(c, sr=sr).blocks), clips, args.repeats),
            "decode_and_logmel_ms": median_ms(lambda c: Windows(c, clf.model.features).all(), clips, args.repeats),
            "model_ms_per_clip": median_ms(lambda c: clf.run(windows[c]), clips, args.repeats),
            "predict_ms": median_ms(clf.predict, clips, args.repeats),
            "predict_many_1_worker": many(clf, clips, 1, args.repeats),
            "predict_many_2_workers": many(clf, clips, 2, args.repeats),
        }
        if args.ort_profile:
            res["onnx_ms_by_operator"] = ort_profile(clf, clips[0])
    write_results(args.output, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
