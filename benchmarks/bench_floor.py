"""How close `musicgenre predict` and `scan` over a folder of MP3s come to the speed ffmpeg merely decodes it.

    python -m benchmarks.bench_floor                 # writes benchmarks/results/floor.json (about 3 minutes)
    python -m benchmarks.bench_floor --songs 4 --repeats 2 -o /tmp/floor-smoke.json
    python -m benchmarks.bench_floor --baseline-model OLD_MODEL_DIR    # a new default against the old, same run

The same ``--songs`` song-length MP3s (44.1 kHz stereo, 192 kb/s, libmp3lame; made at run time in a temporary
folder from GTZAN clips of one genre joined end to end, or from the repository's example clips without
``../shared``) are, in one run:

- ``floor``: ffmpeg alone decoding and resampling each file to 16 kHz mono float, two files at a time (two
  processes), output discarded: the time no decoder-bound classifier can beat on this machine;
- ``decode``: our decode path alone (``audio.stream_audio``: ffmpeg at the native rate, downmix, soxr to
  16 kHz, the no-music evidence), two files at a time in threads, as ``predict`` runs them;
- ``windows``: the same plus the log-mel windows (``windows.Windows``);
- ``model``: the model alone on every file's windows, cut beforehand (``Classifier.run``), two files at a time;
- ``predict``: ``python -m musicgenre predict -q -f jsonl -o OUT FOLDER``, a new process as a user runs it;
- ``scan``: ``python -m musicgenre scan -q --db NEW.db FOLDER``, a new process and a new database each time;
- ``predict_baseline`` (with ``--baseline-model DIR``): ``predict -m DIR``, the same folder, in the same rounds.

Floor, predict and scan are timed in interleaved rounds (``_common.timed``), so a machine that gets busier
slows them alike; the ratios are taken from the medians and from the fastest round. Then: one 30-s clip as a
cold process (``--repeats`` runs: wall and peak RSS), and peak RSS of ``predict`` and ``scan`` on one track of
1, 4 and 16 minutes (the songs joined by stream copy): flat when the 16-minute track's peak is at most
``FLAT_MB`` above the 1-minute one's. Each file's label and top score are recorded, so a change to the path
can be checked for moved scores run against run.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS, ROOT, run_measured, timed, write_results

DATA = ROOT.parent / "shared" / "data"
MP3_ARGS = ("-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "192k")
FLAT_MB = 25.0  # peak RSS growth from a 1- to a 16-minute track that still counts as flat
CLI = (sys.executable, "-m", "musicgenre")


def _ffmpeg(*args: str) -> None:
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {args[-1]}: {proc.stderr.strip()[-300:]}")


def _sources() -> tuple[list[list[Path]], str]:
    """Groups of clips to join into songs: GTZAN by genre, else the example clips."""
    genres = sorted(p for p in (DATA / "gtzan" / "genres").glob("*") if p.is_dir())
    if genres:
        return [sorted(g.glob("*.wav"))[:12] for g in genres], "GTZAN clips of one genre joined end to end"
    examples = sorted((ROOT / "examples").glob("*.ogg"))
    return [examples[i:] + examples[:i] for i in range(len(examples))], "the example clips joined end to end"


def make_songs(folder: Path, n: int, seconds: float) -> tuple[list[Path], str]:
    """``n`` MP3 songs of about ``seconds`` each (lengths vary by +-30% so files end at different times)."""
    groups, kind = _sources()

    def one(i: int) -> Path:
        clips = groups[i % len(groups)][i // len(groups):]
        length = seconds * (0.7 + 0.6 * ((i * 5) % 8) / 7)
        listing = folder / f"song{i:02d}.txt"
        listing.write_text("".join(f"file '{c}'\n" for c in clips))
        out = folder / f"song{i:02d}.mp3"
        _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-t", f"{length:.1f}", *MP3_ARGS, str(out))
        listing.unlink()
        return out

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, range(n))), kind


def join(songs: list[Path], out: Path, seconds: float) -> Path:
    """One track of ``seconds`` from the songs, cycled (stream copy: one encoding throughout)."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{s}'\n" for s in songs * int(seconds // 30 + 1)))
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-t", f"{seconds:.0f}", "-c", "copy", str(out))
    listing.unlink()
    return out


def duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60).stdout
    return float(out.strip())


def ffmpeg_floor(files: list[Path]) -> None:
    """ffmpeg alone: decode + resample to 16 kHz mono float32, two processes at a time, output discarded."""

    def one(f: Path) -> None:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(f), "-ac", "1", "-ar", "16000",
                        "-f", "f32le", "pipe:1"], stdout=subprocess.DEVNULL, check=True, timeout=600)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, files))


def two_at_a_time(fn: Callable[[Path], object], files: list[Path]) -> Callable[[], None]:
    def run() -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(fn, files))
    return run


def with_cpu(fn: Callable[[], None], cpu: list[float]) -> Callable[[], None]:
    """``fn`` that also appends the CPU seconds it took (this process and the children it waited for)."""

    def run() -> None:
        t0 = os.times()
        fn()
        t1 = os.times()
        cpu.append(sum(t1[:4]) - sum(t0[:4]))
    return run


def summary(times: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "all_s": [round(t, 3) for t in times]}


def labels_of(jsonl: Path) -> dict[str, dict[str, Any]]:
    """file name -> its label and top scores, from predict's JSONL."""
    rows = (json.loads(line) for line in jsonl.read_text().splitlines())
    return {Path(r["source"]).name: {"label": r["label"], "scores": r["scores"]} for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=8, help="songs in the folder (default 8)")
    ap.add_argument("--seconds", type=float, default=82.0, help="mean song length (default 82 s: ~650 s in all)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds of floor / predict / scan")
    ap.add_argument("--folder", type=Path, default=None,
                    help="keep the songs here (made when it holds none) to rerun on the same files")
    ap.add_argument("--baseline-model", type=Path, default=None,
                    help="also time `predict -m DIR` in the same rounds (e.g. the previous release's model "
                         "directory): whether a new default is slower, measured beside it")
    ap.add_argument("--label", default="", help="names the run in the JSON")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "floor.json")
    args = ap.parse_args()
    import musicgenre
    from musicgenre.audio import stream_audio
    from musicgenre.windows import Windows

    res: dict[str, Any] = {"label": args.label, "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                           "musicgenre": str(Path(musicgenre.__file__).parent)}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        work = Path(tmp)
        folder = args.folder or work / "songs"
        folder.mkdir(parents=True, exist_ok=True)
        files, kind = sorted(folder.glob("song*.mp3")), f"kept in {folder}"
        if not files:
            print("making songs ...", file=sys.stderr)
            files, kind = make_songs(folder, args.songs, args.seconds)
        audio_s = sum(duration(f) for f in files)
        res["inputs"] = {"songs": len(files), "audio_s": round(audio_s, 1), "source": kind,
                         "encoding": " ".join(MP3_ARGS)}

        print("whole processes ...", file=sys.stderr)
        jsonl, db = work / "out.jsonl", work / "scan.db"
        procs: dict[str, list[dict[str, Any]]] = {"predict": [], "scan": []}

        def predict() -> None:
            procs["predict"].append(run_measured([*CLI, "predict", "-q", "-f", "jsonl", "-o", str(jsonl), str(folder)]))

        def scan() -> None:
            for p in work.glob("scan.db*"):
                p.unlink()
            procs["scan"].append(run_measured([*CLI, "scan", "-q", "--db", str(db), str(folder)]))

        jobs: dict[str, Callable[[], None]] = {"floor": lambda: ffmpeg_floor(files), "predict": predict, "scan": scan}
        if args.baseline_model is not None:
            procs["predict_baseline"] = []
            res["baseline_model"] = str(args.baseline_model)

            def predict_baseline() -> None:
                procs["predict_baseline"].append(run_measured([*CLI, "predict", "-q", "-m", str(args.baseline_model),
                                                               "-f", "jsonl", "-o", os.devnull, str(folder)]))

            jobs["predict_baseline"] = predict_baseline
        rounds = timed(jobs, args.repeats)
        res["processes"] = {k: summary(v) for k, v in rounds.items()}
        for k in procs:
            res["processes"][k].update(cpu_s=[r["cpu_s"] for r in procs[k][1:]],
                                       peak_rss_mb=max(r["peak_rss_mb"] for r in procs[k]))
        med = {k: statistics.median(v) for k, v in rounds.items()}
        res["ratio_to_floor"] = {k: {"median": round(med[k] / med["floor"], 2),
                                     "best": round(min(rounds[k]) / min(rounds["floor"]), 2),
                                     "x_realtime": round(audio_s / med[k])} for k in procs}
        res["labels"] = labels_of(jsonl)
        with sqlite3.connect(db) as con:
            res["scan_rows"] = con.execute("SELECT count(*) FROM tracks").fetchone()[0]

        print("cold one clip ...", file=sys.stderr)
        clip = work / "clip30.mp3"
        _ffmpeg("-i", str(files[0]), "-t", "30", "-c", "copy", str(clip))
        cold = [run_measured([*CLI, "predict", "-q", "-f", "jsonl", "-o", os.devnull, str(clip)])
                for _ in range(args.repeats)]
        res["cold_one_clip"] = {**summary([r["wall_s"] for r in cold]),
                                "peak_rss_mb": max(r["peak_rss_mb"] for r in cold)}

        print("memory by track length ...", file=sys.stderr)
        memory: dict[str, dict[str, float]] = {"predict": {}, "scan": {}}
        for minutes in (1, 4, 16):
            track = join(files, work / f"track{minutes}.mp3", minutes * 60)
            memory["predict"][f"{minutes}_min"] = run_measured(
                [*CLI, "predict", "-q", "-f", "jsonl", "-o", os.devnull, str(track)])["peak_rss_mb"]
            for p in work.glob("scan.db*"):
                p.unlink()
            memory["scan"][f"{minutes}_min"] = run_measured(
                [*CLI, "scan", "-q", "--db", str(db), str(track)])["peak_rss_mb"]
            track.unlink()
        for m in memory.values():
            m["growth_mb"] = round(m["16_min"] - m["1_min"], 1)
            m["flat"] = m["growth_mb"] <= FLAT_MB
        res["peak_rss_by_track_length"] = memory

        # last, so that the processes above are not forked from a parent holding the model (Linux counts the
        # parent's pages in a child's peak RSS until it execs)
        print("in-process steps ...", file=sys.stderr)
        clf = musicgenre.load()
        sr = clf.model.features.sr
        cut = {f: Windows(f, clf.model.features).all()[0] for f in files}
        fns = {
            "floor": lambda: ffmpeg_floor(files),
            "decode": two_at_a_time(lambda f: sum(len(b) for b in stream_audio(f, sr=sr).blocks), files),
            "windows": two_at_a_time(lambda f: Windows(f, clf.model.features).all(), files),
            "model": two_at_a_time(lambda f: clf.run(cut[f]), files),
        }
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        steps = timed({k: with_cpu(fn, cpu[k]) for k, fn in fns.items()}, args.repeats)
        res["in_process"] = {k: {**summary(v), "cpu_median_s": round(statistics.median(cpu[k][1:]), 3)}
                             for k, v in steps.items()}
    res["loadavg_end"] = os.getloadavg()
    write_results(args.output, res)
    print(json.dumps({k: res[k] for k in ("inputs", "in_process", "processes", "ratio_to_floor", "cold_one_clip",
                                          "peak_rss_by_track_length") if k in res}, indent=1))


if __name__ == "__main__":
    main()
