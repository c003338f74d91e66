"""How long the Library view's map takes on a 10,000-file library: ``library.map.build_map`` (read every file's
stored mean embedding, PCA to two dimensions) on a synthetic library database of the same schema
(``bench_learn.synthetic_library``: stored features of 200-d embeddings and 50 tag logits).

    python benchmarks/bench_library_map.py [--files 10000] [--repeat 3]

Prints the seconds of the first build (cold: the database read) and of the cached call (content key only)."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench_learn import synthetic_library


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    from musicgenre.library.map import MapCache, build_map

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "lib.db"
        synthetic_library(db, args.files, genres=12, seed=0)
        builds = []
        for _ in range(args.repeat):
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            t0 = time.perf_counter()
            m = build_map(con)
            builds.append(time.perf_counter() - t0)
            con.close()
        cache = MapCache()
        cache.get(db)
        t0 = time.perf_counter()
        cache.get(db)
        cached = time.perf_counter() - t0
    print(f"map of {len(m.paths)} files: build {min(builds):.2f} s (best of {args.repeat}; all "
          f"{', '.join(f'{b:.2f}' for b in builds)}), cached call {cached:.3f} s; explained {m.explained}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
