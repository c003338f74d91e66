"""How long the Library view's map takes on a 10,000-file library, cold: a new process that has built nothing yet.

    python -m benchmarks.bench_library_map [--files 10000] [--repeat 3] [--model-files 1000]

A synthetic library database of the schema ``scan`` writes (``musicgenre.testing.synthetic_learning_library``:
10 stored windows of a 200-d embedding and 50 tag logits per file, float16, tags in several spellings)
and a model learned by
``musicgenre learn`` on a smaller library drawn from the same genre clusters (``--model-files``; 0: no model).

Timed, each round in a new Python process (nothing cached: no map, no scored suspects, no imported module):
- ``build``: ``library.map.MapCache.get`` (the content key and ``build_map``'s one query and PCA), imports excluded;
- ``page``: the page's request as the server answers it, ``GET /api/library/map`` through the Library view's router
  (FastAPI's TestClient), with the learned model: the map, the suspects it marks (every file's stored windows
  scored by the head) and the JSON; router set-up (the model loaded) and imports excluded, and timed apart;
- ``process``: the whole new process, interpreter start-up and imports included, to the map's JSON in hand.
Then ``cached``: the same request again in that process (the library unchanged: the content key only).
The database is written once and read from the operating system's file cache, as a server's library would be.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from musicgenre.testing import synthetic_learning_library as synthetic_library

ROUND = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
db, model = Path(sys.argv[1]), (Path(sys.argv[2]) if sys.argv[2] else None)
if sys.argv[3] == "build":
    from musicgenre.library.map import MapCache
    t1 = time.perf_counter()
    m = MapCache().get(db)
    t2 = time.perf_counter()
    print(json.dumps({"imports_s": t1 - t0, "seconds": t2 - t1, "points": len(m.paths)}))
else:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from musicgenre.web.library_view import LibraryConfig, build_router
    t1 = time.perf_counter()
    app = FastAPI()
    app.include_router(build_router(LibraryConfig(db, model)))
    client = TestClient(app)
    t2 = time.perf_counter()
    r = client.get("/api/library/map")
    t3 = time.perf_counter()
    assert r.status_code == 200, r.text
    points = r.json()["points"]
    t4 = time.perf_counter()
    again = client.get("/api/library/map")
    t5 = time.perf_counter()
    assert again.json()["points"] == points
    print(json.dumps({"imports_s": t1 - t0, "setup_s": t2 - t1, "seconds": t3 - t2, "to_json_s": t4 - t0,
                      "cached_s": t5 - t4, "points": len(points),
                      "suspects": sum(p["suspect"] for p in points)}))
"""


def one_round(db: Path, model: Path | None, what: str) -> dict[str, float]:
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", ROUND, str(db), str(model or ""), what], capture_output=True,
                         text=True, check=False)
    wall = time.perf_counter() - t0
    if run.returncode:
        raise SystemExit(f"{what} round failed:\n{run.stderr[-2000:]}")
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "process_s": wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--model-files", type=int, default=1_000, help="files of the library the model learns from")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "lib.db"
        synthetic_library(db, args.files, genres=12, seed=0)
        model = None
        if args.model_files:
            from musicgenre.cli import main as cli

            small, model = Path(tmp) / "small.db", Path(tmp) / "model"
            synthetic_library(small, args.model_files, genres=12, seed=0)  # seed 0: the same genre clusters
            with contextlib.redirect_stdout(io.StringIO()):  # learn's summary: not this benchmark's output
                failed = cli(["learn", "--db", str(small), "-o", str(model), "-q"])
            if failed:
                raise SystemExit("learn failed")
        builds = [one_round(db, None, "build") for _ in range(args.repeat)]
        pages = [one_round(db, model, "page") for _ in range(args.repeat)]

    def spread(rows: list[dict[str, float]], key: str) -> str:
        return f"{min(r[key] for r in rows):.2f} s best, {max(r[key] for r in rows):.2f} s worst"

    print(f"map of {builds[0]['points']} files, {args.repeat} new processes each:")
    print(f"  build (content key + one query + PCA): {spread(builds, 'seconds')}")
    print(f"  GET /api/library/map, {'a model learned on ' + str(args.model_files) + ' files' if model else 'no model'}"
          f" ({pages[0]['suspects']} suspects marked): {spread(pages, 'seconds')}; router set-up "
          f"{spread(pages, 'setup_s')}")
    print(f"  whole new process (start-up, imports, router, the request, a cached one): {spread(pages, 'process_s')}")
    print(f"  cached request (library unchanged): {max(r['cached_s'] for r in pages):.3f} s worst")
    return 0


if __name__ == "__main__":
    sys.exit(main())
