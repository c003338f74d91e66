"""``musicgenre similar`` at library scale: one query against 100,000 files (synthetic stored features).

    python -m benchmarks.bench_similar                 # 100,000 files: benchmarks/results/similar.json
    python -m benchmarks.bench_similar --files 2000    # a quick run (results to -o, not the committed file)

A synthetic library database (``musicgenre.testing.synthetic_similarity_library``, also what
tests/test_similar.py measures precision on) is written with the package's own row writer (``library.db.upsert``):
N files of G genres (20), 10 files per
artist, each stored as ``scan`` stores it (10 windows of a 200-d embedding and 50 tag logits, float16, their
means, the MSD_musicnn backbone's identity) with its own tags (genre in a few spellings, artist, album); the
embeddings are Gaussian clusters (genre centre + artist offset + file noise, window noise on top), 5% of the
files untagged; one real 30-s clip (examples/) is scanned into it by ``musicgenre scan``'s own code with the
shipped model. Timed:

- ``read_features_s``: the whole library read back the way ``learn`` reads it (``library.db.read_features``),
  which is why queries do not read the database each time; ``read_means_s``: the same without the window
  arrays (``windows=False``), the way the index is built;
- ``cold``: the first query after the library changed (``library.similar.similar`` for the real library file, in
  this process, after a one-row write that bumps the database's generation): the index read from the database
  (every current mean embedding, the files' genre and artist tags), normalised and kept in memory, the search;
- ``warm``: the same query again in the same process: the generation read, the kept index used, the file hashed
  (its stored embedding is current, so no model is loaded), the k nearest found;
- ``outside_file``: a 30-s clip outside the library: the model loaded, one pass over the clip, the search;
- ``command``: ``musicgenre similar FILE --db LIB.db`` as a new process (start-up and imports included, and the
  index built: a new process keeps nothing; ``_common.run_measured``: wall and CPU seconds);
- ``precision_at_10``: genre precision at 10 with other artists only (``precision_at_k``) for a sample of
  2,000 queries against the whole library, and what random picks of other artists' files would reach.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks._common import RESULTS, ROOT, run_measured, timed, write_results
from musicgenre.testing import synthetic_similarity_library as synthetic_library  # shared with the tests


def _stats(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(seconds), 4), "min_s": round(min(seconds), 4),
            "runs_s": [round(x, 4) for x in seconds]}


def run(n: int, folder: Path, repeats: int, queries: int) -> dict[str, Any]:
    """Build an n-file library plus one real clip scanned into it, then time the queries (module docstring)."""
    import soundfile as sf

    from musicgenre import load
    from musicgenre.library.db import connect, read_features
    from musicgenre.library.scan import scan
    from musicgenre.library.similar import precision_at_k, similar

    db = folder / f"lib-{n}.db"
    t0 = time.perf_counter()
    synthetic_library(db, n)
    build_s = time.perf_counter() - t0
    clips = sorted((ROOT / "examples").glob("*.ogg"))
    inside, outside = folder / "query.flac", folder / "outside.flac"  # 30-s clips: a library file and another
    for src, dst in ((clips[0], inside), (clips[1], outside)):
        y, sr = sf.read(src, dtype="float32")
        sf.write(dst, y[: 30 * sr], sr)
    summary = scan([inside], db, load())
    assert summary.done == 1, summary.failures

    read_s = timed({"read": lambda: sum(1 for _ in read_features(db)),
                    "means": lambda: sum(1 for _ in read_features(db, windows=False))}, 1, warmup=0)

    def cold() -> None:
        con = connect(db)  # a write the index must see: the database's generation moves
        con.execute("UPDATE tracks SET mtime = mtime WHERE rowid = (SELECT min(rowid) FROM tracks)")
        con.commit()
        con.close()
        similar(db, inside)

    cold_s = timed({"cold": cold}, max(1, repeats // 2), warmup=0)["cold"]
    warm_s = timed({"warm": lambda: similar(db, inside)}, repeats)["warm"]
    found = similar(db, outside)
    outside_s = timed({"outside": lambda: similar(db, outside)}, max(1, repeats // 2), warmup=0)["outside"]
    command = [sys.executable, "-m", "musicgenre", "similar", str(inside), "--db", str(db)]
    processes = [run_measured(command) for _ in range(3)]
    t0 = time.perf_counter()
    slim = (SimpleNamespace(path=r.path, tags=r.tags, tagged=r.tagged, mean_embedding=r.mean_embedding)
            for r in read_features(db, windows=False))
    precision = precision_at_k(slim, 10, queries=queries)
    precision_s = time.perf_counter() - t0
    return {
        "files": n + 1, "database_build_s": round(build_s, 1), "database_mb": round(db.stat().st_size / 2**20, 1),
        "read_features_s": round(read_s["read"][0], 2), "read_means_s": round(read_s["means"][0], 2),
        "cold": _stats(cold_s), "warm": _stats(warm_s),
        "outside_file": {**_stats(outside_s), "embedded_by": found.embedded,
                         "what": "a 30-s clip outside the library: the model loaded, one pass, the search"},
        # (not run_measured's peak memory: a child's high-water mark starts from this process's size at the fork)
        "command": {"wall_s": [p["wall_s"] for p in processes], "cpu_s": [p["cpu_s"] for p in processes]},
        "precision_at_10": {**precision.as_dict(), "seconds": round(precision_s, 1)},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=100_000, help="library size (default 100,000)")
    p.add_argument("--repeats", type=int, default=6, help="warm rounds (half as many cold ones; default 6)")
    p.add_argument("--queries", type=int, default=2000, help="precision@10 sample (default 2,000)")
    p.add_argument("--folder", type=Path, default=None, help="where the database goes (default a temp folder)")
    p.add_argument("-o", "--out", type=Path, default=RESULTS / "similar.json")
    args = p.parse_args(argv)
    argv_text = " ".join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {"command": f"python -m benchmarks.bench_similar {argv_text}".strip(),
                               "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()],
                               "target": "a query under 1 s at 100,000 files"}
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        results.update(run(args.files, Path(tmp), args.repeats, args.queries))
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(write_results(args.out, results), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
