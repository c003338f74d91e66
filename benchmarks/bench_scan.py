"""Library scan benchmarks: scale (one large library) and engines (local vs Ray).

    python -m benchmarks.bench_scan --files 20000  # scale: writes benchmarks/results/scan-scale-20000.json
    python -m benchmarks.bench_scan --n 1000       # engines: writes benchmarks/results/scan.json

Scale (``--files N``): a generated library of N short clips (1.5 s) in every format soundfile writes
(WAV, FLAC, MP3, Ogg Vorbis, Opus, AIFF, AU; a few M4A when ffmpeg exists), nested artist/album folders,
odd names (spaces, quotes, a leading dash, non-Latin scripts, 200-character names, names that are not
valid UTF-8) and about 1% bad files (empty, random bytes, truncated, text). Measured: the time to list
and stat the library (``find_audio_files`` + ``os.stat``), one ``musicgenre scan`` in a subprocess with
the RSS and CPU time of its process tree and the database's row count sampled every 0.5 s, files per
second and CPU milliseconds per file over the first and the last thousand rows (CPU time is the scan's
own cost, unaffected by other load on a shared machine), database bytes per file, and a rescan of the
unchanged library (the whole CLI command, start-up included). ``check_scale`` is what the slow test
asserts: one row per file, and memory flat after warm-up (the first 10% of files): the median RSS of the
process tree in each tenth of the rest of the run (at least 5 s) stays within 10% of the first tenth's (a
median, so that a decoder child living a fraction of a second does not count as growth; the peak keeps it).

Engines (``--n N``): each engine scans the same folder of N generated 30-s MP3 clips into its own new
database, in its own process. Reported: files per second (wall clock, planning and DB writes included)
and peak memory, sampled every 0.5 s as the summed RSS of the scanning process and all its children
(Ray's workers).

Features (``--features N``): what storing the backbone's features and the files' own tags costs
(docs/library.md). A copy of the shipped model is exported to ONNX with its ``embedding`` output (what the
next shipped export gives) unless ``--model DIR`` names one; N generated 30-s MP3 clips are scanned into new
databases, in this process, four ways interleaved (``_common.timed``): ``today`` (the shipped model, whose
ONNX graph has no embedding output, without tag reading: today's scan), ``baseline`` (the exported graph,
features not kept, no tag reading), ``tags`` (what a model without an embedding output now does) and
``features`` (features and tags). Reported: wall and process CPU seconds per file of each, the added work per
file timed piece by piece, database bytes per file (on disk, per table, at scale, and the features row's
payload), and the float16 rounding of the stored arrays. ``--tradeoff`` adds what
the number of stored windows costs in accuracy: GTZAN clips from ../shared, each run once, their windows
joined six at a time into 3-minute pseudo-tracks of one genre; the clip label (the shipped model's one
aggregation) from k windows picked as the scan picks them, against the label from all windows and the truth.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS, ROOT, make_mp3_clips, tree_cpu_seconds, tree_rss_mb, write_results

RAY_CHILD = """
import sys, ray
from pathlib import Path
from musicgenre.library.ray_engine import scan_ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
files = sorted(Path(sys.argv[1]).glob("*.mp3"))
print(scan_ray(files, Path(sys.argv[2]), None, shards=Path(sys.argv[2] + ".shards")).line(), file=sys.stderr)
"""


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


# ---- scale --------------------------------------------------------------------------------------------

CLIP_SECONDS = 1.5  # the shortest clip the music detector accepts as music; the model sees one window
# (extension, soundfile format, subtype, sample rate, share of the library)
FORMATS = [(".mp3", "MP3", "MPEG_LAYER_III", 22050, 30), (".flac", "FLAC", None, 22050, 25),
           (".ogg", "OGG", "VORBIS", 22050, 15), (".wav", "WAV", None, 16000, 10), (".opus", "OGG", "OPUS", 48000, 8),
           (".aiff", "AIFF", None, 16000, 6), (".au", "AU", None, 16000, 6)]
VARIANTS = 6  # different clips per format
ODD = ["with space {i}", "'quote' & \"dq\" {i}", "-leading-dash {i}", "日本語の曲 {i}", "Ünïcödé {i}",
       "emoji 🎵 {i}", "long " + "x" * 190 + " {i}"]


def _clip(variant: int, sr: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(variant)
    t = np.arange(int(CLIP_SECONDS * sr)) / sr
    f0 = 110 * 2 ** (variant / 5)
    beat = (1 + np.sign(np.sin(2 * np.pi * (1.5 + variant % 3) * t))) / 2  # on/off rhythm
    y = 0.3 * np.sin(2 * np.pi * f0 * t) * beat + 0.15 * np.sin(2 * np.pi * 1.5 * f0 * t)
    return (y + rng.normal(0, 0.03, len(t))).astype(np.float32)


def _encoded(ext: str, fmt: str, subtype: str | None, sr: int, variant: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, _clip(variant, sr), sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _m4a(sr: int, variant: int) -> bytes | None:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return None
    wav = _encoded(".wav", "WAV", None, sr, variant)
    with tempfile.TemporaryDirectory() as tmp:  # the MP4 muxer needs a seekable output
        out = Path(tmp) / "clip.m4a"
        subprocess.run([ffmpeg, "-v", "error", "-f", "wav", "-i", "pipe:0", "-c:a", "aac", str(out)],
                       input=wav, capture_output=True, check=True)
        return out.read_bytes()


def make_library(root: Path, n: int) -> dict[str, Any]:
    """``n`` files under ``root`` (see the module docstring); returns what was made. Clips are encoded once
    per format and variant, then written as bytes, so even 20,000 files take seconds."""
    import numpy as np

    rng = np.random.default_rng(18)
    blobs = {ext: [_encoded(ext, fmt, sub, sr, v) for v in range(VARIANTS)] for ext, fmt, sub, sr, _ in FORMATS}
    m4a = [b for b in (_m4a(22050, v) for v in range(2)) if b]
    if m4a:
        blobs[".m4a"] = m4a
    weights = np.array([w for *_, w in FORMATS], float)
    exts = [e for e, *_ in FORMATS]
    made: dict[str, Any] = {"files": n, "bad": 0, "odd_names": 0, "formats": {}}
    base = os.fsencode(root)
    for i in range(n):
        ext = ".m4a" if m4a and i % 500 == 250 else exts[rng.choice(len(exts), p=weights / weights.sum())]
        data = blobs[ext][i % len(blobs[ext])]
        if i % 100 == 37:  # ~1% bad files, four kinds
            kind = (i // 100) % 4
            data = [b"", rng.bytes(4096), data[: len(data) // 4], b"not audio at all\n" * 20][kind]
            made["bad"] += 1
        folder = base + f"/Artist {i // 100:04d}/Album {i // 20 % 5}".encode()
        if i % 50 == 11:
            made["odd_names"] += 1
            if i % 150 == 11:
                name = f"caf{i}".encode() + b"\xe9 latin-1" + ext.encode()  # not valid UTF-8
            else:
                name = (ODD[(i // 50) % len(ODD)].format(i=i) + ext).encode()
        else:
            name = f"{i % 20 + 1:02d} Track {i}{ext}".encode()
        os.makedirs(folder, exist_ok=True)
        with open(folder + b"/" + name, "wb") as f:
            f.write(data)
        made["formats"][ext] = made["formats"].get(ext, 0) + 1
    made["m4a"] = "a few, through ffmpeg" if m4a else "none: ffmpeg is not installed"
    return made


def list_and_stat(root: Path) -> tuple[int, float]:
    from musicgenre.audio import find_audio_files

    t0 = time.perf_counter()
    errors: list[str] = []
    files = list(find_audio_files([root], errors=errors))
    for f in files:
        os.stat(f)
    return len(files), time.perf_counter() - t0


def _rows(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT count(*) FROM tracks").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or busy
        return -1


def run_scan(cmd: list[str], db: Path, every: float = 0.5) -> dict[str, Any]:
    """Run a scan command; sample (seconds, process-tree RSS in MiB, rows in ``db``, process-tree CPU seconds)
    every ``every`` s."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float, int, float]] = []
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else ""), daemon=True)
    reader.start()
    while proc.poll() is None:
        rss, seconds = tree_rss_mb(proc.pid), tree_cpu_seconds(proc.pid)
        samples.append((round(time.perf_counter() - t0, 2), round(rss, 1), _rows(db), round(seconds, 2)))
        time.sleep(every)
    wall = time.perf_counter() - t0
    reader.join()
    samples.append((round(wall, 2), 0.0, _rows(db), samples[-1][3] if samples else 0.0))
    if proc.returncode not in (0, 1):
        raise RuntimeError("".join(err))
    return {"wall_seconds": round(wall, 2), "samples": samples, "summary": "".join(err).strip().splitlines()[-1]}


def _time_at(samples: list[tuple[float, float, int, float]], k: int, column: int = 0) -> float:
    """The wall time (or, with ``column=3``, the CPU time) at which the row count reached ``k`` (linear
    between samples; rows are committed in small batches)."""
    prev_t, prev_k = 0.0, 0
    for sample in samples:
        t, rows = sample[column], sample[2]
        if rows >= k:
            return prev_t + (t - prev_t) * (k - prev_k) / max(1, rows - prev_k)
        if rows >= 0:
            prev_t, prev_k = t, rows
    return samples[-1][column]


def scale(n: int, workdir: Path, workers: int = 2) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("musicgenre")
    lib, db = workdir / "lib", workdir / "library.sqlite"
    t0 = time.perf_counter()
    made = make_library(lib, n)
    made["seconds_to_generate"] = round(time.perf_counter() - t0, 1)
    listed, list_s = list_and_stat(lib)
    cmd = [str(exe), "scan", str(lib), "--db", str(db), "-q", "--workers", str(workers)]
    load_before = os.getloadavg()
    first = run_scan(cmd, db)
    load_after = os.getloadavg()
    rows = _rows(db)
    window = min(1000, max(1, n // 4))
    samples = first["samples"]
    start = window / max(1e-9, _time_at(samples, 16 + window) - _time_at(samples, 16))
    end = window / max(1e-9, _time_at(samples, rows) - _time_at(samples, rows - window))
    # CPU time per file: the scan's own work, whatever else the machine is doing
    cpu_start = (_time_at(samples, 16 + window, 3) - _time_at(samples, 16, 3)) / window
    cpu_end = (_time_at(samples, rows - 16, 3) - _time_at(samples, rows - 16 - window, 3)) / window
    con = sqlite3.connect(db)
    try:
        per_path = con.execute(
            "SELECT count(*), count(DISTINCT CAST(path AS BLOB)), count(error) FROM tracks").fetchone()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    db_bytes = db.stat().st_size
    rescan = run_scan(cmd, db, every=0.2)
    during = [(t, rss, r) for t, rss, r, _ in samples if rss > 0]
    warm = next((i for i, (_, _, r) in enumerate(during) if r >= max(200, n // 10)), len(during))
    # a decoder child (ffmpeg for M4A) lives well under a second: the median of each tenth of the run after
    # warm-up keeps such spikes out of the flatness figure (they stay in the peak)
    rest = [r for _, r, _ in during[warm:]]
    tenth = max(10, len(rest) // 10)  # at least 5 s of samples
    after = [statistics.median(rest[i: i + tenth]) for i in range(0, len(rest) - tenth + 1, tenth)]
    return {
        "library": made,
        "listed": listed,
        "list_and_stat_seconds": round(list_s, 2),
        "list_and_stat_files_per_second": round(listed / list_s),
        "scan": {"wall_seconds": first["wall_seconds"], "summary": first["summary"], "workers": workers,
                 "files_per_second_overall": round(rows / first["wall_seconds"], 2),
                 "window": window,
                 "files_per_second_first_window": round(start, 2),
                 "files_per_second_last_window": round(end, 2),
                 "last_vs_first": round(end / start, 3),
                 "cpu_ms_per_file_first_window": round(1000 * cpu_start, 2),
                 "cpu_ms_per_file_last_window": round(1000 * cpu_end, 2),
                 "load_average_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
                 "peak_rss_mb": round(max(rss for _, rss, _ in during)),
                 "rss_mb_median_per_tenth_after_warmup": after,
                 "rss_mb_at_warmup_end": after[0] if after else None,
                 "rss_mb_max_after_warmup": max(after) if after else None,
                 "rss_growth_after_warmup": round(max(after) / after[0] - 1, 3) if after else None,
                 "samples_seconds_rss_mb_rows_cpu_s": samples},
        "rows": per_path[0], "distinct_paths": per_path[1], "rows_with_error": per_path[2],
        "db_bytes": db_bytes, "db_bytes_per_file": round(db_bytes / max(1, rows)),
        "rescan": {"wall_seconds": rescan["wall_seconds"], "summary": rescan["summary"],
                   "files_per_second": round(rows / rescan["wall_seconds"]),
                   "peak_rss_mb": round(max((s[1] for s in rescan["samples"]), default=0))},
    }


def check_scale(result: dict[str, Any], tolerance: float = 0.10) -> list[str]:
    """What a scale run must show: one row per listed file, and RSS after warm-up within ``tolerance``."""
    problems = []
    if not result["rows"] == result["distinct_paths"] == result["listed"] == result["library"]["files"]:
        problems.append(f"rows {result['rows']}, distinct paths {result['distinct_paths']}, listed "
                        f"{result['listed']}, generated {result['library']['files']}: not one row per file")
    growth = result["scan"]["rss_growth_after_warmup"]
    if growth is None or growth > tolerance:
        problems.append(f"RSS grew {growth} after warm-up (more than {tolerance:.0%})")
    return problems


# ---- features -----------------------------------------------------------------------------------------


def export_with_embedding(folder: Path) -> Path:
    """A copy of the shipped model exported to ONNX (``python -m scripts.export_onnx``: its outputs now include the
    backbone's embedding) with the backbone it was built from recorded in its card, as ``loader.onnx_backbone``
    reads it."""
    from musicgenre.loader import load_module, module_backbone
    from musicgenre.modeldir import OnnxEntry, read, weights_dir

    shutil.copytree(weights_dir() / "musicnn_gtzan", folder)
    subprocess.run([sys.executable, "-m", "scripts.export_onnx", str(folder)], check=True, capture_output=True,
                   cwd=ROOT)
    card = read(folder)
    assert card.onnx is not None
    if "backbone" not in card.onnx.extra:  # the exporter does not record it (yet): the module the loader builds
        backbone = module_backbone(load_module(folder, card), card)
        assert backbone is not None
        extra = {**card.onnx.extra, "backbone": {"name": backbone[0], "version": backbone[1]}}
        card.replace(onnx=OnnxEntry(card.onnx.file, card.onnx.sha256, extra)).save(folder)
    return folder


def bytes_per_file_on_disk(db: Path, out: Path, n: int = 1000) -> float:
    """The database's growth per file for ``n`` copies of ``db``'s classified row with the most stored windows
    (its ``tracks``, ``features`` and ``file_tags`` rows, those it has) under different paths of a usual length:
    B-tree pages, overflow pages and the primary-key indexes included, as a large library stores them."""
    from musicgenre.library.db import connect

    src = sqlite3.connect(db)
    try:
        path = src.execute("SELECT t.path FROM tracks t LEFT JOIN features f ON f.path = t.path WHERE t.error IS NULL "
                           "ORDER BY length(f.embedding) DESC LIMIT 1").fetchone()[0]
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = {t: src.execute(f"SELECT * FROM {t} WHERE path = ?", (path,)).fetchone()
                for t in ("tracks", "features", "file_tags") if t in tables}
    finally:
        src.close()
    con = connect(out)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        empty = out.stat().st_size
        for t, row in rows.items():
            if row is not None:
                con.executemany(f"INSERT INTO {t} VALUES ({', '.join('?' * len(row))})",
                                [(f"/home/user/Music/Artist {i // 10}/Album {i // 10}/{i % 10:02d} A Track Title.flac",
                                  *row[1:]) for i in range(n)])
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return (out.stat().st_size - empty) / n


def _db_bytes(db: Path) -> dict[str, Any]:
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = con.execute("SELECT count(*) FROM tracks").fetchone()[0]
        pages = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        payload = con.execute(
            "SELECT avg(length(idx) + length(embedding) + coalesce(length(tag_logits), 0) + length(mean_embedding) "
            "+ coalesce(length(mean_tag_logits), 0)) FROM features").fetchone()[0]
    finally:
        con.close()
    by_table = {t: sum(v for k, v in pages.items() if k == t or k == f"sqlite_autoindex_{t}_1" or
                       k.startswith(f"{t}_")) for t in ("tracks", "features", "file_tags")}
    return {"rows": rows, "file_bytes": db.stat().st_size, "bytes_per_file": round(db.stat().st_size / rows),
            "pages_bytes_per_file_by_table": {t: round(v / rows) for t, v in by_table.items()},
            "features_payload_bytes_per_file": None if payload is None else round(payload)}


def features_cost(n: int, workdir: Path, model: Path | None, repeats: int) -> dict[str, Any]:
    """Scan time and bytes per file with and without the stored features (see the module docstring)."""
    import dataclasses

    import numpy as np

    from benchmarks._common import timed
    from musicgenre import load
    from musicgenre.library import scan as scan_module
    from musicgenre.library.scan import scan

    model = model or export_with_embedding(workdir / "model")
    lib = workdir / "lib"
    lib.mkdir()
    files = make_mp3_clips(lib, n, 30.0)
    full = load(model, device="cpu")
    assert full.feature_backbone is not None, f"{model}: its runs give no embedding"
    plain = load(model, device="cpu")
    plain.model = dataclasses.replace(plain.model, backbone=None)  # the same graph, features not kept
    real_read = scan_module.read_file_tags
    shipped = load(None, device="cpu")  # today's graph (no embedding output)
    runs = {"today": (shipped, False), "baseline": (plain, False), "tags": (plain, True), "features": (full, True)}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    last: dict[str, Path] = {}

    def no_tags(path: str | Path) -> dict[str, Any]:
        return {}  # row_from_prediction: no file_tags row

    def job(name: str) -> None:
        clf, tags = runs[name]
        db = last[name] = workdir / f"{name}-{len(cpu[name])}.sqlite"
        scan_module.read_file_tags = real_read if tags else no_tags  # today's scan read no tags
        try:
            t0 = time.process_time()
            summary = scan(files, db, clf)
            cpu[name].append(time.process_time() - t0)
        finally:
            scan_module.read_file_tags = real_read
        assert summary.done == n, summary.line()

    walls = timed({k: functools.partial(job, k) for k in runs}, repeats, warmup=0)
    per_file: dict[str, dict[str, Any]] = {
        k: {"wall_s": round(statistics.median(walls[k]) / n, 4), "cpu_s": round(statistics.median(cpu[k]) / n, 4),
            "wall_s_runs": [round(t, 2) for t in walls[k]], "cpu_s_runs": [round(t, 2) for t in cpu[k]]}
        for k in runs}
    pred = full.predict(str(files[0]))
    out = full.model.run(np.zeros((1, 187, 96), np.float32) + 1.0)
    emb, tag = out["embedding"], out["tags"]
    added = added_work(files[0], pred, workdir / "added.sqlite")
    return {
        "clips": f"{n} generated 30-s MP3 clips (examples/ cut and tiled), scanned with --workers 2 in this process",
        "model": str(model), "backbone": list(full.feature_backbone), "repeats": repeats,
        "per_file": per_file,
        "features_vs_baseline": {"wall": round(per_file["features"]["wall_s"] / per_file["baseline"]["wall_s"] - 1, 3),
                                 "cpu": round(per_file["features"]["cpu_s"] / per_file["baseline"]["cpu_s"] - 1, 3)},
        "features_vs_today": {"wall": round(per_file["features"]["wall_s"] / per_file["today"]["wall_s"] - 1, 3),
                              "cpu": round(per_file["features"]["cpu_s"] / per_file["today"]["cpu_s"] - 1, 3)},
        "tags_vs_baseline": {"wall": round(per_file["tags"]["wall_s"] / per_file["baseline"]["wall_s"] - 1, 3),
                             "cpu": round(per_file["tags"]["cpu_s"] / per_file["baseline"]["cpu_s"] - 1, 3)},
        "db": {k: _db_bytes(db) for k, db in last.items()},
        "db_bytes_per_file_at_scale": {k: round(bytes_per_file_on_disk(db, workdir / f"{k}-x1000.sqlite"))
                                       for k, db in last.items()},
        "added_work_ms_per_file": added,
        "stored_windows_of_a_30s_clip": None if pred.features is None else len(pred.features.index),
        "float16_max_relative_error": {
            "embedding": float(np.max(np.abs(emb.astype(np.float16) - emb)) / np.max(np.abs(emb))),
            "tag_logits": float(np.max(np.abs(tag.astype(np.float16) - tag)) / np.max(np.abs(tag)))},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def added_work(clip: Path, pred: Any, db: Path, repeats: int = 200) -> dict[str, float]:
    """What a scan now does per file beyond today's, each piece timed on its own (the fastest of ``repeats``
    calls, so a busy machine shows the work, not the wait): the feature sampler over a 30-s clip's 10 windows,
    reading the file's tags, and writing its three rows instead of one."""
    import dataclasses

    import numpy as np

    from benchmarks._common import best_of
    from musicgenre.library.db import connect, row_from_prediction, upsert
    from musicgenre.library.filetags import read_file_tags
    from musicgenre.pipeline import FeatureSampler

    emb, tags, loud = np.ones((2, 200), np.float32), np.ones((2, 50), np.float32), np.ones(2, bool)

    def sampler() -> None:
        s = FeatureSampler("MSD_musicnn", "0.1.0")
        for i in range(0, 10, 2):  # the windows arrive two at a time (one 6-s block)
            s.add(i, emb, tags, loud)
        s.result()

    st, file_tags = os.stat(clip), read_file_tags(clip)
    con = connect(db)
    count = [0]

    def write(with_features: bool) -> None:
        count[0] += 1
        p = pred if with_features else dataclasses.replace(pred, features=None)
        upsert(con, [row_from_prediction(f"/x/{count[0]}", st, "0" * 32, "m", "v", p, None,
                                         file_tags if with_features else None)])
        con.commit()

    try:
        times = {"sampler": best_of(sampler, repeats), "read_file_tags": best_of(lambda: read_file_tags(clip), repeats),
                 "write_row_today": best_of(lambda: write(False), repeats),
                 "write_rows_with_features_and_tags": best_of(lambda: write(True), repeats)}
    finally:
        con.close()
    return {k: round(1000 * v, 3) for k, v in times.items()}


def window_tradeoff(model: Path | None, per_genre: int = 6, group: int = 6, seed: int = 0) -> dict[str, Any]:
    """Accuracy by stored windows k: 3-minute pseudo-tracks of one genre (``group`` GTZAN clips' windows
    joined), labelled by the shipped model's aggregation over k windows picked as the scan picks them."""
    import numpy as np

    from musicgenre import load
    from musicgenre.pipeline import FeatureSampler
    from musicgenre.scores import clip_scores, loud_windows, softmax

    root = ROOT.parent / "shared" / "data" / "gtzan" / "genres"
    if not root.is_dir():
        return {"skipped": f"{root} not found"}
    clf = load(model, device="cpu")
    rng = np.random.default_rng(seed)
    by_genre: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for genre in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for f in sorted((root / genre).glob("*.wav"))[:per_genre]:
            _, logits, _, peaks = clf.window_outputs(str(f))
            by_genre.setdefault(genre, []).append((logits, peaks))
    ks = (1, 3, 10, 25)
    hits: dict[str, list[bool]] = {**{f"k{k}": [] for k in ks}, "all": []}
    agree: dict[str, list[bool]] = {f"k{k}": [] for k in ks}
    for genre, clips in by_genre.items():
        if genre not in clf.labels or len(clips) < group:
            continue
        for _ in range(len(clips)):  # as many pseudo-tracks as clips, each a random ordering of `group` clips
            pick = rng.choice(len(clips), group, replace=False)
            logits = np.concatenate([clips[i][0] for i in pick])
            loud = loud_windows(np.concatenate([clips[i][1] for i in pick]))
            probs = softmax(logits, clf.model.temperature)
            every = clf.labels[int(np.argmax(clip_scores(probs, loud)))]
            hits["all"].append(every == genre)
            for k in ks:
                sampler = FeatureSampler("", "", k)
                sampler.add(0, logits, None, loud)
                feats = sampler.result()
                assert feats is not None
                sub = np.zeros(len(loud), bool)
                sub[feats.index] = True
                label = clf.labels[int(np.argmax(clip_scores(probs, sub)))]
                hits[f"k{k}"].append(label == genre)
                agree[f"k{k}"].append(label == every)
    return {"pseudo_tracks": len(hits["all"]), "windows_per_track": f"about {10 * group}",
            "clips_per_genre": per_genre, "accuracy": {k: round(float(np.mean(v)), 3) for k, v in hits.items()},
            "same_label_as_all_windows": {k: round(float(np.mean(v)), 3) for k, v in agree.items()},
            "note": "the shipped head (pool + embedding + tags) as the proxy of a head on stored features; "
                    "pseudo-tracks reuse clips, so they are not independent"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="engines: number of 30-s MP3 clips (default 1000)")
    p.add_argument("--files", type=int, default=None, help="scale: library size (runs the scale benchmark)")
    p.add_argument("--workers", type=int, default=2, help="scale: decoding workers of the scan (default 2)")
    p.add_argument("--workdir", type=Path, default=None, help="scale: where to build the library (default a temp dir)")
    p.add_argument("--features", type=int, default=None, metavar="N",
                   help="features: scan N 30-s clips with and without stored features (time, bytes per file)")
    p.add_argument("--model", type=Path, default=None, help="features: a model directory whose ONNX export has "
                   "the embedding output (default: export a copy of the shipped model)")
    p.add_argument("--repeats", type=int, default=3, help="features: interleaved rounds (default 3)")
    p.add_argument("--tradeoff", action="store_true", help="features: also accuracy by number of stored windows")
    args = p.parse_args()
    if args.features:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            result = features_cost(args.features, Path(tmp), args.model, args.repeats)
            if args.tradeoff:
                result["windows_tradeoff"] = window_tradeoff(args.model or Path(tmp) / "model")
        sys.stdout.write(write_results(RESULTS / "scan-features.json", result))
        return
    if args.files:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            result = scale(args.files, Path(tmp), args.workers)
        result["problems"] = check_scale(result)
        write_results(RESULTS / f"scan-scale-{args.files}.json", result)
        print(json.dumps({k: v for k, v in result.items() if k != "scan"}, indent=1, ensure_ascii=False))
        print(json.dumps({k: v for k, v in result["scan"].items() if k != "samples_seconds_rss_mb_rows_cpu_s"},
                         indent=1))
        return
    exe = Path(sys.executable).with_name("musicgenre")
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        lib.mkdir()
        make_mp3_clips(lib, args.n, 30.0)
        results = {
            "clips": f"{args.n} generated 30-s MP3 clips",
            "local": measure([str(exe), "scan", str(lib), "--db", f"{tmp}/local.sqlite", "-q"], args.n),
            "ray_local_2cpu": measure([sys.executable, "-c", RAY_CHILD, str(lib), f"{tmp}/ray.sqlite"], args.n),
        }
    sys.stdout.write(write_results(RESULTS / "scan.json", results))


if __name__ == "__main__":
    main()
