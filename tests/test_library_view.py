"""The Library view (``serve --db``): its JSON API on a small library, the review flow (suspects, a correction in
file and database, undo), the refusals (paths outside the library, ``..``, links out, writes without
``--allow-writes``, a busy database), the map, and the page in headless Chromium.

The library: benchmarks/bench_learn.py's synthetic stored features (4 genres x 30 files, 5 per artist, a few
mis-tagged), each row pointed at a real FLAC file cut from a repo fixture (tests/fixtures/musicnn/vibe_ace_16k_12s.wav)
and tagged as the row says; then ``musicgenre learn`` on it, with its defaults."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import bench_learn as bench
from musicgenre.cli import main
from musicgenre.library.db import file_hash
from musicgenre.library.tags import read_genres

from .conftest import FIXTURES, chromium, db_genres, serve_app

pytest.importorskip("fastapi", reason="web extra not installed")
pytest.importorskip("sklearn")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"


def _tag_file(path: Path, genres: list[str], artist: str | None, album: str | None, ours: bool) -> None:
    import mutagen

    f = mutagen.File(path)
    if genres:
        f["GENRE"] = genres
    if artist:
        f["ARTIST"] = [artist]
    if album:
        f["ALBUM"] = [album]
    if ours:
        f["MUSICGENRE_CONFIDENCE"] = ["0.900"]
    f.save()


def materialise(db: Path, music: Path) -> dict[str, str]:
    """Give every row of a synthetic library a real, tagged FLAC file under ``music``; returns old path -> new."""
    y, sr = sf.read(FIXTURES / "musicnn" / "vibe_ace_16k_12s.wav", dtype="float32")
    con = sqlite3.connect(db)
    moved = {}
    try:
        rows = con.execute("SELECT t.path, ft.genres, ft.artist, ft.album, ft.genre_ours FROM tracks t "
                           "JOIN file_tags ft ON ft.path = t.path").fetchall()
        for i, (old, genres, artist, album, ours) in enumerate(rows):
            new = (music / old.removeprefix("/music/")).with_suffix(".flac")
            new.parent.mkdir(parents=True, exist_ok=True)
            start = (i * 997) % (len(y) - sr)
            sf.write(new, y[start:start + sr], sr)  # 1 s: every file's bytes differ
            _tag_file(new, json.loads(genres) if genres else [], artist, album, bool(ours))
            st, digest = new.stat(), file_hash(new)
            con.execute("UPDATE tracks SET path = ?, content_hash = ?, size = ?, mtime = ? WHERE path = ?",
                        (str(new), digest, st.st_size, st.st_mtime, old))
            for table in ("features", "file_tags"):
                con.execute(f"UPDATE {table} SET path = ?, content_hash = ? WHERE path = ?", (str(new), digest, old))
            moved[old] = str(new)
        con.commit()
    finally:
        con.close()
    return moved


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("libview").resolve()
    db = root / "lib.db"
    made = bench.synthetic_library(db, 120, genres=4, files_per_artist=5, ours=2, seed=3, mistagged=0.06)
    moved = materialise(db, root / "music")
    model = root / "my-genres"
    assert main(["learn", "--db", str(db), "-o", str(model), "-q"]) == 0
    outside = root / "outside"
    outside.mkdir()
    secret = outside / "secret.flac"
    shutil.copy(next(iter(moved.values())), secret)
    return {"db": db, "model": model, "root": root, "secret": secret,
            "mistagged": [moved[p] for p in made["mistagged"]], "paths": sorted(moved.values())}


def _client(lib: dict, *, writes: bool, model: bool = True):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from musicgenre.web.library_view import LibraryConfig, build_router

    app = FastAPI()
    app.include_router(build_router(LibraryConfig(lib["db"], lib["model"] if model else None, writes)))
    return TestClient(app)


@pytest.fixture(scope="module")
def ro(lib: dict):
    return _client(lib, writes=False)


@pytest.fixture(scope="module")
def rw(lib: dict):
    return _client(lib, writes=True)


# ---- reading --------------------------------------------------------------------------------------------------

def test_genres_as_spelled_and_the_models_figures(ro, lib: dict) -> None:
    d = ro.get("/api/library/genres").json()
    con = sqlite3.connect(lib["db"])
    stored = [json.loads(g) for g, o in con.execute("SELECT genres, genre_ours FROM file_tags") if g and not o]
    con.close()
    want: dict[str, int] = {}
    for genres in stored:
        for g in genres:
            want[g] = want.get(g, 0) + 1
    assert {g["genre"]: g["files"] for g in d["genres"]} == want
    assert d["files"] == len(lib["paths"]) and d["writes"] is False
    figures = {g["genre"]: g for g in d["model"]["genres"]}
    assert len(figures) == 4 and all(0 <= g["recall"] <= 1 and g["files"] >= 20 for g in figures.values())
    assert 0 < d["model"]["validation"]["top1"] <= 1


def test_suspects_hold_the_mistagged_files_and_play(ro, lib: dict) -> None:
    d = ro.get("/api/library/suspects").json()
    listed = [s["path"] for s in d["suspects"]]
    assert listed, d
    flipped = set(lib["mistagged"]) & set(listed)
    assert len(flipped) >= max(1, len(set(lib["mistagged"])) // 2), (lib["mistagged"], listed)
    s = d["suspects"][0]
    assert s["predicted"] != s["tagged"] and s["probability"] >= 0.5 and s["tagged_probability"] <= 0.1
    assert s["genre"] == "; ".join(read_genres(Path(s["path"]))[0])
    r = ro.get(s["audio"])
    assert r.status_code == 200 and r.content == Path(s["path"]).read_bytes()
    assert r.headers["content-type"].startswith("audio/")


def test_without_a_learned_model_there_are_no_suspects_but_a_note(lib: dict) -> None:
    d = _client(lib, writes=False, model=False).get("/api/library/suspects").json()
    assert d["suspects"] == [] and "--model" in d["note"]


def test_similar_tracks_are_playable_and_exclude_the_file(ro, lib: dict) -> None:
    path = lib["paths"][0]
    d = ro.get("/api/library/similar", params={"path": path, "k": 5}).json()
    assert len(d["similar"]) == 5 and path not in [n["path"] for n in d["similar"]]
    assert ro.get(d["similar"][0]["audio"]).status_code == 200
    assert ro.get("/api/library/similar", params={"path": str(lib["secret"])}).status_code == 404


def test_map_has_every_file_and_marks_the_suspects(ro) -> None:
    d = ro.get("/api/library/map").json()
    suspects = {s["path"] for s in ro.get("/api/library/suspects").json()["suspects"]}
    points = d["points"]
    assert len(points) == len({p["path"] for p in points}) and {p["path"] for p in points if p["suspect"]} == suspects
    xy = np.array([[p["x"], p["y"]] for p in points])
    assert np.abs(xy).max() <= 1.0 and xy.std(axis=0).min() > 0.05
    assert ro.get("/api/library/map").json() == d  # cached: the same library gives the same map


def test_projection_separates_clusters_and_is_deterministic() -> None:
    from musicgenre.library.map import project

    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.1, (50, 20)) + np.eye(20)[0] * 3
    b = rng.normal(0, 0.1, (50, 20)) + np.eye(20)[1] * 3
    xy, explained = project(np.vstack([a, b]))
    assert np.sign(xy[:50, 0]).tolist().count(np.sign(xy[0, 0])) == 50 and np.sign(xy[50:, 0]).tolist().count(
        -np.sign(xy[0, 0])) == 50
    assert explained[0] > 0.8
    x = np.vstack([a, b]) / np.linalg.norm(np.vstack([a, b]), axis=1, keepdims=True)  # the axes an SVD gives
    x -= x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    ref = x @ vt[:2].T
    np.testing.assert_allclose(np.abs(xy), np.abs(ref / np.abs(ref).max(axis=0)), atol=1e-5)
    assert explained == pytest.approx(tuple(s[:2] ** 2 / (s**2).sum()), abs=1e-4)
    again, _ = project(np.vstack([a, b]))
    assert np.array_equal(xy, again)
    assert project(np.zeros((0, 5)))[0].shape == (0, 2) and np.all(project(np.ones((3, 4)))[0] == 0)


# ---- refusals -------------------------------------------------------------------------------------------------

def test_audio_only_for_files_of_the_library(ro, lib: dict) -> None:
    inside = lib["paths"][0]
    dotdot = str(Path(inside).parent / ".." / Path(inside).parent.name / Path(inside).name)
    link = Path(inside).parent / "link-out.flac"
    link.symlink_to(lib["secret"])
    try:
        for bad in (str(lib["secret"]), dotdot, "/etc/passwd", os.path.relpath(inside), str(link), "", inside + "\0"):
            r = ro.get("/api/library/audio", params={"path": bad})
            assert r.status_code in (404, 422), (bad, r.status_code)
            assert b"fLaC" not in r.content
    finally:
        link.unlink()
    assert ro.get("/api/library/audio", params={"path": inside}).status_code == 200


def test_a_library_file_replaced_by_a_link_out_is_refused(ro, lib: dict) -> None:
    path = Path(lib["paths"][1])
    saved = path.with_name(path.name + ".saved")
    os.replace(path, saved)
    path.symlink_to(lib["secret"])
    try:
        assert ro.get("/api/library/audio", params={"path": str(path)}).status_code == 404
        assert _client(lib, writes=True).post("/api/library/tag", json={"path": str(path), "genre": "X"}
                                              ).status_code == 404
    finally:
        path.unlink()
        os.replace(saved, path)
    assert read_genres(lib["secret"])[0] != ["X"]


def test_writes_are_refused_without_allow_writes(ro, lib: dict) -> None:
    path = Path(lib["paths"][2])
    before = path.read_bytes()
    for url, body in (("/api/library/tag", {"path": str(path), "genre": "Polka"}),
                      ("/api/library/keep", {"path": str(path)}), ("/api/library/undo", {})):
        r = ro.post(url, json=body)
        assert r.status_code == 403 and "--allow-writes" in r.json()["detail"], r.text
    assert path.read_bytes() == before
    assert main(["serve", "--allow-writes", "--port", "1"]) == 2


def test_a_write_while_a_scan_holds_the_database_waits_then_fails_and_changes_nothing(rw, lib: dict, monkeypatch
                                                                                      ) -> None:
    from musicgenre.library import review

    monkeypatch.setattr(review, "BUSY_TIMEOUT_S", 0.3)
    path = lib["paths"][3]
    before, state = Path(path).read_bytes(), db_genres(lib["db"], path)
    scan = sqlite3.connect(lib["db"])
    scan.execute("BEGIN IMMEDIATE")  # what a scan's batch holds while it writes
    try:
        t0 = time.monotonic()
        r = rw.post("/api/library/tag", json={"path": path, "genre": "Polka"})
        assert r.status_code == 503 and "busy" in r.json()["detail"] and r.headers["Retry-After"]
        assert time.monotonic() - t0 >= 0.25  # it waited for the lock first
    finally:
        scan.rollback()
        scan.close()
    assert Path(path).read_bytes() == before and db_genres(lib["db"], path) == state


# ---- the review flow ------------------------------------------------------------------------------------------

def test_review_flow_correct_then_undo(rw, lib: dict) -> None:
    db = lib["db"]
    s = rw.get("/api/library/suspects").json()["suspects"][0]
    path, old, new = s["path"], read_genres(Path(s["path"])), s["predicted"]
    old_state = db_genres(db, path)
    con = sqlite3.connect(db)
    rows_before = con.execute("SELECT count(*) FROM tracks").fetchone()[0]
    con.close()

    r = rw.post("/api/library/tag", json={"path": path, "genre": new})
    assert r.status_code == 200, r.text
    edit = r.json()["written"]
    assert read_genres(Path(path)) == ([new], None)  # the owner's genre: no MUSICGENRE_CONFIDENCE mark
    genres, digest = db_genres(db, path)
    assert genres == [new] and digest == file_hash(Path(path))  # file and database agree
    assert path not in [x["path"] for x in rw.get("/api/library/suspects").json()["suspects"]]
    assert rw.get("/api/library/edits").json()["edits"][0]["id"] == edit["id"]

    r = rw.post("/api/library/undo", json={"id": edit["id"]})
    assert r.status_code == 200 and r.json()["undone"]["undone_at"], r.text
    assert read_genres(Path(path)) == old
    assert db_genres(db, path) == (old_state[0], file_hash(Path(path)))
    assert path in [x["path"] for x in rw.get("/api/library/suspects").json()["suspects"]]
    assert rw.post("/api/library/undo", json={"id": edit["id"]}).status_code == 409  # already undone

    # the command line undoes the same way
    assert rw.post("/api/library/tag", json={"path": path, "genre": new}).status_code == 200
    assert main(["library", "undo", "--db", str(db)]) == 0
    assert read_genres(Path(path)) == old and db_genres(db, path)[0] == old_state[0]
    assert main(["library", "undo", "--db", str(db)]) == 1  # nothing left to undo: one line, no traceback
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM tracks").fetchone()[0] == rows_before
    con.close()


def test_keep_hides_a_suspect_while_its_tag_stays(rw, lib: dict) -> None:
    suspects = rw.get("/api/library/suspects").json()["suspects"]
    s = suspects[-1]
    assert rw.post("/api/library/keep", json={"path": s["path"]}).json()["kept"]["genre"] == s["genre"]
    assert s["path"] not in [x["path"] for x in rw.get("/api/library/suspects").json()["suspects"]]
    con = sqlite3.connect(lib["db"])
    try:
        con.execute("DELETE FROM review_keep")
        con.commit()
    finally:
        con.close()
    assert rw.post("/api/library/keep", json={"path": str(lib["secret"])}).status_code == 404


def test_a_file_changed_since_its_scan_is_not_written(rw, lib: dict) -> None:
    path = Path(lib["paths"][5])
    before = path.read_bytes()
    _tag_file(path, [], None, None, False)  # someone else edited it (say a comment): its stored row is stale
    import mutagen

    f = mutagen.File(path)
    f["COMMENT"] = ["edited elsewhere"]
    f.save()
    changed = path.read_bytes()
    try:
        r = rw.post("/api/library/tag", json={"path": str(path), "genre": "Polka"})
        assert r.status_code == 409 and "rescan" in r.json()["detail"]
        assert path.read_bytes() == changed
    finally:
        path.write_bytes(before)


# ---- the page -------------------------------------------------------------------------------------------------

@contextmanager
def library_server(classifier, config):
    from musicgenre.web.server import build_server

    with serve_app(build_server(classifier, library=config)) as url:
        yield url


def test_browser_library_view_write_and_undo(classifier, lib: dict) -> None:
    """Headless Chromium: the Library view lists genres, suspects (with players) and the map; "Write genre" on the
    first suspect changes the file's tag, "Undo" puts it back."""
    pytest.importorskip("gradio", reason="web extra not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from musicgenre.web.library_view import LibraryConfig

    with library_server(classifier, LibraryConfig(lib["db"], lib["model"], allow_writes=True)) as url:
        driver = chromium()
        try:
            driver.get(url + "/")  # the classify page links the Library view
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "a[href='/library']"))
            driver.get(url + "/library")  # (gradio opens its markdown links in a new tab)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
            assert len(driver.find_elements(By.CSS_SELECTOR, "#genres tbody tr")) >= 4
            rows = driver.find_elements(By.CSS_SELECTOR, "#suspects tbody tr")
            assert rows and rows[0].find_elements(By.TAG_NAME, "audio")
            points = int(driver.find_element(By.ID, "map-note").get_attribute("data-points"))
            assert points == len(lib["paths"])
            # the canvas was drawn: some pixels are not blank
            drawn = driver.execute_script("const c = document.getElementById('map'); const d = c.getContext('2d')"
                                          ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
                                          "for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
            assert drawn > 500
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "web_library.png"))

            path = rows[0].get_attribute("data-path")
            old = read_genres(Path(path))
            box = rows[0].find_element(By.CSS_SELECTOR, "input.genre")
            box.clear()
            box.send_keys("Polka")
            rows[0].find_element(By.CSS_SELECTOR, "button.write").click()
            wait.until(lambda d: "wrote Polka" in d.find_element(By.ID, "message").text)
            assert read_genres(Path(path)) == (["Polka"], None)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#edits button.undo:not([disabled])"))
            driver.find_elements(By.CSS_SELECTOR, "#edits button.undo:not([disabled])")[0].click()
            wait.until(lambda d: "undid write" in d.find_element(By.ID, "message").text)
            assert read_genres(Path(path)) == old
        finally:
            driver.quit()


# ---- learning again (stretch) -----------------------------------------------------------------------------------

def test_learn_again_in_the_background_and_the_page_follows(lib: dict, tmp_path: Path) -> None:
    """POST /api/library/learn relearns from the library as it is now with the card's options, in the background;
    the genres' figures are the new model's once it is done. Read-only servers refuse it."""
    from musicgenre.modeldir import read

    db, model = tmp_path / "lib.db", tmp_path / "my-genres"
    shutil.copy(lib["db"], db)
    shutil.copytree(lib["model"], model)
    con = sqlite3.connect(db)  # the owner's corrections since: 12 files of one genre now tagged as another
    rows = con.execute("SELECT path, genres FROM file_tags WHERE genres IS NOT NULL AND genre_ours = 0 "
                       "ORDER BY path").fetchall()
    first = json.loads(rows[0][1])
    other = next(json.loads(g) for _, g in rows if json.loads(g) != first)
    changed = [p for p, g in rows if json.loads(g) == first][:12]
    con.executemany("UPDATE file_tags SET genres = ? WHERE path = ?", [(json.dumps(other), p) for p in changed])
    con.commit()
    con.close()
    before = (model / "config.json").stat().st_ino, read(model).get("training")["data"]

    ro = _client({**lib, "db": db, "model": model}, writes=False)
    assert ro.post("/api/library/learn").status_code == 403
    rw = _client({**lib, "db": db, "model": model}, writes=True)
    assert rw.get("/api/library/learn").json()["learn"]["state"] == "idle"
    r = rw.post("/api/library/learn")
    assert r.status_code == 202 and r.json()["learn"]["state"] in ("running", "done"), r.text
    deadline = time.monotonic() + 180
    while (state := rw.get("/api/library/learn").json()["learn"])["state"] == "running":
        assert time.monotonic() < deadline, "learning again took over 3 minutes"
        time.sleep(0.5)
    assert state["state"] == "done", state
    card = read(model)
    assert (model / "config.json").stat().st_ino != before[0]  # the directory was replaced whole
    assert card.get("training")["min_files"] == read(lib["model"]).get("training")["min_files"]
    shown = rw.get("/api/library/genres").json()["model"]
    valid = card.get("metrics")["valid"]
    assert shown["validation"]["top1"] == valid["top1"] == state["validation"]["top1"]
    assert [g["genre"] for g in shown["genres"]] == list(card.labels)
    assert {g["genre"]: g["files"] for g in shown["genres"]} == {
        g["genre"]: g["files"] for g in card.get("training")["vocabulary"]["genres"]}
    data = card.get("training")["data"]
    assert (data["files"], data["labelled"]) == (before[1]["files"], before[1]["labelled"])  # same files ...
    counts_before = {g["genre"]: g["files"] for g in read(lib["model"]).get("training")["vocabulary"]["genres"]}
    assert {g["genre"]: g["files"] for g in shown["genres"]} != counts_before  # ... with the owner's new tags
