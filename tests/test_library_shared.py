"""The Library view's review flow end to end on the shared data (LIBRARY-WEB, item 4): the library of
experiments/learn_shared.py (GTZAN and Emotify train clips with the owner's mixed spellings, 5% of the genre tags
flipped, seed 0) is written, scanned with the shipped model and learned as that experiment does; the Library view's
API, started with that model and ``--allow-writes``, lists the likely mis-tags; a flipped file among them is
corrected through ``POST /api/library/tag`` (its genre in the file and the database), and ``POST /api/library/undo``
restores both. A flipped file of a format our tag writer does not write (GTZAN's WAV) is refused with one line and
left as it was. Slow: the scan and learn take about a minute and a half on two shared cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import learn_shared as exp

from .conftest import db_genres
from .test_learn_shared import DATA


@pytest.mark.slow
def test_review_flow_on_the_shared_library(tmp_path: Path) -> None:
    if not (DATA / "gtzan").is_dir() or not (DATA / "emotify").is_dir():
        pytest.skip(f"{DATA} is absent: the shared GTZAN and Emotify audio are needed (never part of the repo)")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from musicgenre.library.db import file_hash
    from musicgenre.library.tags import read_genres
    from musicgenre.web.library_view import LibraryConfig, build_router

    folder, db, model = tmp_path / "library", tmp_path / "library.db", tmp_path / "learned"
    entries = exp.library_entries(DATA, seed=exp.SEED)
    files = exp.build_library(DATA, folder, entries)
    exp.scan_files(files, db)
    exp.run_learn(db, model)
    by_path = {str(f.resolve()): e for f, e in zip(files, entries)}

    app = FastAPI()
    app.include_router(build_router(LibraryConfig(db, model, allow_writes=True)))
    api = TestClient(app)
    suspects = api.get("/api/library/suspects").json()["suspects"]
    flipped = [s for s in suspects if by_path[s["path"]].flipped]
    assert flipped, f"none of the {sum(e.flipped for e in entries)} flipped files in {len(suspects)} suspects"

    # a flipped WAV (no tag writer for it) is refused in one line, the file and the database untouched
    for s in (s for s in flipped if s["path"].endswith(".wav")):
        before, state = Path(s["path"]).read_bytes(), db_genres(db, s["path"])
        r = api.post("/api/library/tag", json={"path": s["path"], "genre": by_path[s["path"]].spelled})
        assert r.status_code == 409 and "\n" not in r.json()["detail"], r.text
        assert Path(s["path"]).read_bytes() == before and db_genres(db, s["path"]) == state
        break

    # the owner corrects a flipped file they can write: the model's call when it is right, else their own spelling
    writable = [s for s in flipped if not s["path"].endswith(".wav")]
    assert writable, f"the flipped suspects are all WAV files: {[s['path'] for s in flipped]}"
    s = next((s for s in writable if exp.keys(s["predicted"]) == {by_path[s["path"]].truth}), writable[0])
    path, entry = s["path"], by_path[s["path"]]
    right = s["predicted"] if exp.keys(s["predicted"]) == {entry.truth} else entry.spelled
    old_file, (old_db, _) = read_genres(Path(path)), db_genres(db, path)
    assert exp.keys("; ".join(old_file[0])) == exp.keys(entry.written) != {entry.truth}

    r = api.post("/api/library/tag", json={"path": path, "genre": right})
    assert r.status_code == 200, r.text
    edit = r.json()["written"]
    assert read_genres(Path(path)) == ([right], None)  # the owner's genre, not marked as our prediction
    genres, digest = db_genres(db, path)
    assert genres == [right] and digest == file_hash(Path(path))  # file and database agree
    assert exp.keys(right) == {entry.truth}
    assert path not in [x["path"] for x in api.get("/api/library/suspects").json()["suspects"]]

    r = api.post("/api/library/undo", json={"id": edit["id"]})
    assert r.status_code == 200, r.text
    assert read_genres(Path(path)) == old_file
    genres, digest = db_genres(db, path)
    assert genres == old_db and digest == file_hash(Path(path))
    assert path in [x["path"] for x in api.get("/api/library/suspects").json()["suspects"]]
