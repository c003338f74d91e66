"""``musicgenre learn`` at library scale: the whole run on synthetic stored features.

    python benchmarks/bench_learn.py                   # 1,000 and 10,000 files: benchmarks/results/learn.json
    python benchmarks/bench_learn.py --files 1000      # one size

A synthetic library database (``synthetic_library``, also what tests/test_learn.py trains on) is written with
the package's own row writer (``library.db.upsert``): N files in G genres (12 by default), 8 files per artist,
each file stored as ``scan`` stores it (up to 10 windows of a 200-d embedding and 50 tag logits, float16, the
MSD_musicnn backbone's identity) with its own tags (genre in several spellings, artist, album). The features
are Gaussian clusters (genre centre + artist + file + window noise); in the benchmark they overlap
(``SEPARATION``) so that the out-of-fold top-1 is that of a real library, not 1.0. 3% of the labelled files
carry a wrong genre, 5% none, and one rare genre is dropped.

Timed: the whole command, ``musicgenre learn --db DB -o DIR --report R.json``, in this process
(``whole_run_s``, ``_common.timed``, one round), then once more in a new process (``new_process``: start-up and
imports included, with its CPU seconds and peak memory, ``_common.run_measured``). Both cover reading the
database, the vocabulary, the out-of-fold fits, the calibration (fitted once on all out-of-fold scores and
cross-fitted for the reported figures), suspects, the final fit and writing the model directory (ONNX graph
surgery and its check included). The 1,000-file run is done twice and the weights' sha256 compared
(determinism). Target: under 2 minutes for 10,000 files on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, run_measured, timed, write_results

GENRES = ["Rock", "Jazz", "Hip-Hop", "Electronic", "Classical", "Metal", "Folk", "Reggae", "Blues", "Country",
          "Soul", "Punk", "Ambient", "Funk", "Latin", "Disco"]
SPELLINGS = {"Hip-Hop": ["Hip-Hop", "hip hop", "HipHop"], "Electronic": ["Electronic", "electronic"]}
# what the shipped default model's features are stored under: its backbone behind its levelled front end
# (musicnn-gtzan 3.0; features.feature_identity)
BACKBONE = ("MSD_musicnn", "0.1.0+level-5dB-window")
SEPARATION = 0.2  # genre centres' spread in the benchmark: out-of-fold top-1 0.7-0.9 (docs/learn.md's real ones)


def synthetic_library(db: Path, n_files: int, *, genres: int = 12, files_per_artist: int = 8, seed: int = 0,
                      windows: int = 10, mistagged: float = 0.03, untagged: float = 0.05, rare: bool = True,
                      artists: bool = True, backbone: tuple[str, str] = BACKBONE, separation: float = 0.35,
                      ours: int = 0) -> dict[str, Any]:
    """Write a library database of ``n_files`` files with stored features and tags (module docstring); returns
    {"truth": {path: genre}, "mistagged": [paths], "untagged": [paths], "rare": genre or None}.

    ``artists=False``: no artist tags, files in genre-named folders (Music/<Genre>/<album>/...: the folds fall
    back to folders, which coincide with genres: leaky). ``ours``: that many extra files whose genre our writer
    put there (``genre_ours``). ``windows``: stored windows per file (most files; every 7th has fewer)."""
    import numpy as np

    from musicgenre.library.db import connect, feature_columns, file_tag_columns, upsert
    from musicgenre.prediction import WindowFeatures

    rng = np.random.default_rng(seed)
    names = (GENRES + [f"Genre {i}" for i in range(len(GENRES), genres)])[:genres]
    d_emb, d_tags = 200, 50
    centres = rng.normal(0.0, separation, (genres, d_emb + d_tags))
    mix = (np.eye(d_emb + d_tags) + rng.normal(0.0, 0.3, (d_emb + d_tags,) * 2) / np.sqrt(d_emb + d_tags))
    rare_genre = "Polka" if rare else None
    n_rare = 6 if rare else 0
    truth: dict[str, str] = {}
    wrong: list[str] = []
    none: list[str] = []
    rows = []
    con = connect(db)
    try:
        for i in range(n_files + n_rare + ours):
            artist_no = i // files_per_artist
            if i >= n_files + n_rare:  # tagged by our own writer: never a label
                g, genre_name = int(rng.integers(genres)), None
            elif i >= n_files:
                g, genre_name = int(rng.integers(genres)), rare_genre
                artist_no = 100_000 + (i - n_files) // 2
            else:
                g = artist_no % genres
                genre_name = names[g]
            artist_off = np.random.default_rng([seed, artist_no]).normal(0.0, 0.5, d_emb + d_tags)
            k = windows if i % 7 else max(1, windows // 3)
            base = centres[g] + artist_off + rng.normal(0.0, 0.5, d_emb + d_tags)
            x = (base[None, :] + rng.normal(0.0, 1.0, (k, d_emb + d_tags))) @ mix
            x[:, d_emb:] -= 3.0  # tag logits sit below zero
            folder = (f"/music/{names[g] if genre_name is None else genre_name}/album {artist_no}"
                      if not artists else f"/music/artist {artist_no}/album {artist_no % 3}")
            path = f"{folder}/{i:06d} track.mp3"
            tags: dict[str, Any] = {"genres": None, "genre_ours": False, "artist": None, "album_artist": None,
                                    "album": f"album {artist_no}", "mb_artist_id": None, "mb_album_id": None,
                                    "mb_track_id": None, "tags_error": None}
            if artists:
                tags["artist"] = f"Artist {artist_no}"
            if i >= n_files + n_rare:
                tags["genres"], tags["genre_ours"] = [names[g]], True
            elif genre_name is not None and rng.random() < untagged and i < n_files:
                none.append(path)
            else:
                assert genre_name is not None
                written = genre_name
                if i < n_files and rng.random() < mistagged:
                    written = names[(g + 1 + int(rng.integers(genres - 1))) % genres]
                    wrong.append(path)
                truth[path] = genre_name
                spell = SPELLINGS.get(written, [written])
                tags["genres"] = [spell[i % len(spell)]]
            emb = x[:, :d_emb]
            tl = x[:, d_emb:]
            feats = WindowFeatures(backbone=backbone[0], backbone_version=backbone[1], windows=k * 3,
                                   index=np.arange(k, dtype=np.int32) * 3, embedding=emb.astype(np.float16),
                                   tag_logits=tl.astype(np.float16), mean_embedding=emb.mean(0).astype(np.float16),
                                   mean_tag_logits=tl.mean(0).astype(np.float16))
            digest = hashlib.blake2b(path.encode(), digest_size=16).hexdigest()
            rows.append({"path": path, "size": 1000 + i, "mtime": 1.0e9 + i, "content_hash": digest,
                         "duration": 3.0 * k * 3, "model": "musicnn-gtzan", "model_version": "2.3", "label": "rock",
                         "score": 0.5, "scores": json.dumps({"rock": 0.5, "pop": 0.5}), "tags": "{}", "error": None,
                         "scanned_at": "2025-01-01T00:00:00+00:00", "tagged": None, "tag_error": None,
                         **feature_columns(feats), **file_tag_columns(tags)})
            if len(rows) >= 500:
                upsert(con, rows)
                con.commit()
                rows = []
        upsert(con, rows)
        con.commit()
    finally:
        con.close()
    return {"truth": truth, "mistagged": wrong, "untagged": none, "rare": rare_genre}


def weights_sha256(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def run_size(n: int, folder: Path, *, twice: bool) -> dict[str, Any]:
    """Build an n-file library, time one whole `learn` run (twice when ``twice``: determinism)."""
    from musicgenre.cli import main

    db = folder / f"lib-{n}.db"
    t0 = time.perf_counter()
    made = synthetic_library(db, n, separation=SEPARATION)
    build_s = time.perf_counter() - t0
    outs = [folder / f"model-{n}-a", folder / f"model-{n}-b"]
    report = folder / f"report-{n}.json"
    runs = iter(outs)

    def whole_run() -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # the command's summary table
            code = main(["learn", "--db", str(db), "-o", str(next(runs)), "--report", str(report), "-q"])
        if code != 0:
            raise SystemExit(f"learn failed with exit status {code}")

    seconds = timed({"learn": whole_run}, repeats=2 if twice else 1, warmup=0)["learn"]
    # the same command as a user runs it: a new process (start-up and imports included), its CPU time and peak memory
    process = run_measured([sys.executable, "-m", "musicgenre", "learn", "--db", str(db), "-o",
                            str(folder / f"model-{n}-c"), "-q"])
    rep = json.loads(report.read_text())
    val = rep["validation"]
    shas = [weights_sha256(o) for o in outs[:len(seconds)]]
    flagged = {s["path"] for s in rep["suspects"]}
    return {
        "files": n, "separation": SEPARATION, "labelled": rep["library"]["labelled"],
        "windows": rep["library"]["windows"],
        "genres": len(rep["genres"]), "dropped": [d["genre"] for d in rep["dropped"]],
        "database_build_s": round(build_s, 2), "database_mb": round(db.stat().st_size / 2**20, 1),
        "whole_run_s": [round(s, 2) for s in seconds], "new_process": process,
        "top1_out_of_fold": val["top1"], "confident": val["confident"],
        "suspects": len(rep["suspects"]),
        "mistagged_found": f"{len(flagged & set(made['mistagged']))} of {len(made['mistagged'])}",
        "to_tag": len(rep["to_tag"]),
        "same_weights_twice": (len(set(shas)) == 1) if twice else None,
        "same_weights_new_process": weights_sha256(folder / f"model-{n}-c") == shas[0],
        "weights_sha256": shas[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, nargs="+", default=[1000, 10000], help="library sizes (default 1000 10000)")
    p.add_argument("--out", type=Path, default=RESULTS / "learn.json")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    results: dict[str, Any] = {"command": "python benchmarks/bench_learn.py " + " ".join(map(str, args.files)),
                               "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                               "target": "whole run under 120 s for 10,000 files on 2 cores", "sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.files:
            row = run_size(n, Path(tmp), twice=n <= 1000)
            results["sizes"].append(row)
            print(json.dumps(row))
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    big = [r for r in results["sizes"] if r["files"] >= 10000]
    if big:
        results["target_met"] = all(max(r["whole_run_s"]) < 120 for r in big)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
