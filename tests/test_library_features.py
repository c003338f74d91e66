"""Backbone features and the files' own tags in the library database: what `scan` stores beside each track
(tables ``features`` and ``file_tags``), the schema version and the in-place upgrade of a database written
before them, and rescans that fill in missing features."""

from __future__ import annotations

import shutil
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_scan
from musicgenre.library.db import SCHEMA_VERSION, connect, generation, read_features, read_rows, schema_version
from musicgenre.library.filetags import read_file_tags, resolve_genres
from musicgenre.library.scan import scan

from .conftest import DEFAULT_FEATURES, tone, write_audio

# the schema of every release before features (user_version 0), verbatim
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    path          TEXT PRIMARY KEY,
    size          INTEGER NOT NULL,
    mtime         REAL NOT NULL,
    content_hash  TEXT NOT NULL,
    duration      REAL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    label         TEXT,
    score         REAL,
    scores        TEXT,   -- JSON {genre: probability}, all genres, highest first
    tags          TEXT,   -- JSON {tag: probability}, top 20
    error         TEXT,   -- NULL when classified; the reason when the file could not be
    scanned_at    TEXT NOT NULL,
    tagged        TEXT,   -- the genre our tags in the file hold; NULL when not (yet) tagged
    tag_error     TEXT    -- why the last tag write failed (one line); NULL when none failed
);
CREATE INDEX IF NOT EXISTS tracks_label ON tracks(label);
"""
MAX_BYTES_PER_FILE = 16 * 1024


@pytest.fixture(scope="module")
def torch_classifier():
    """The shipped model on the torch backend: its features must equal the ONNX graph's."""
    pytest.importorskip("torch")
    from musicgenre import load

    return load(backend="torch", device="cpu")


def _tag_id3(tags) -> None:
    from mutagen.id3 import TALB, TCON, TPE1, TPE2, TXXX, UFID

    tags.add(TCON(encoding=3, text=["(17)", "Jazz"]))  # a numeric ID3v1 genre and a name: both kept
    tags.add(TPE1(encoding=3, text=["Some Artist"]))
    tags.add(TPE2(encoding=3, text=["Album Artist"]))
    tags.add(TALB(encoding=3, text=["Some Album"]))
    tags.add(TXXX(encoding=3, desc="MusicBrainz Artist Id", text=["b10bbbfc-cf9e-42e0-be17-e2c3e1d2600d"]))
    tags.add(TXXX(encoding=3, desc="MusicBrainz Album Id", text=["1dc4c347-a1db-32aa-b14f-bc9cc507b843"]))
    tags.add(UFID(owner="http://musicbrainz.org", data=b"a8d8c6c2-3b1c-4ab1-8e5a-0c2f1c1e1b55"))


def make_tagged_library(folder: Path) -> dict[str, Path]:
    """MP3 (ID3, numeric genre, MusicBrainz ids), FLAC (several GENRE fields), WAV (an ID3 chunk), a 40-s FLAC
    (13 windows: 10 kept) and a WAV whose ID3 chunk is garbage (tags unreadable, audio fine)."""
    import mutagen
    from mutagen.id3 import ID3
    from mutagen.wave import WAVE

    folder.mkdir(parents=True, exist_ok=True)
    f = {name: write_audio(folder / name, tone(seconds, 22050, freq), 22050) for name, seconds, freq in
         [("a.mp3", 7.0, 220), ("b.flac", 4.0, 330), ("c.wav", 4.0, 440), ("long.flac", 40.0, 260),
          ("broken_tags.wav", 4.0, 380)]}
    id3 = ID3()
    _tag_id3(id3)
    id3.save(f["a.mp3"])
    flac = mutagen.File(f["b.flac"])
    flac["GENRE"] = ["Electronic", "17", "Ambient", "Electronic"]
    flac["ARTIST"] = ["Flac Artist"]
    flac["MUSICBRAINZ_ALBUMID"] = ["f0000000-0000-0000-0000-000000000001"]
    flac.save()
    wav = WAVE(f["c.wav"])
    wav.add_tags()
    _tag_id3(wav.tags)
    wav.save()
    data = f["broken_tags.wav"].read_bytes()  # an "id3 " chunk whose ID3 header is garbage
    body = data[12:] + b"id3 " + struct.pack("<I", 20) + b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\xff" * 10
    f["broken_tags.wav"].write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return f


def features_by_name(db: Path) -> dict:
    return {Path(r.path).name: r for r in read_features(db)}


def test_numeric_id3_genres_are_resolved() -> None:
    assert resolve_genres(["(17)", "17", "(17)Rock", "Rock", " ", "(255)", "255", "(RX)", "Alt (Rock)"]) == [
        "Rock", "Remix", "Alt (Rock)"]
    assert resolve_genres(["(17)(18)", "Jazz"]) == ["Rock", "Techno", "Jazz"]


def test_database_of_the_previous_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(OLD_SCHEMA)
    rows = [(f"/music/{i}.mp3", 1000 + i, 1.5 + i, f"{i:032x}", 30.0, "musicnn-gtzan", "2.2", "rock", 0.9,
             '{"rock": 0.9, "pop": 0.1}', '{"guitar": 0.5}', None, "2024-01-01T00:00:00+00:00", "rock", None)
            for i in range(3)]
    rows.append((b"/music/caf\xe9.mp3", 7, 2.0, "", None, "musicnn-gtzan", "2.2", None, None, None, None,
                 "failed", "2024-01-01T00:00:00+00:00", None, None))
    con.executemany(f"INSERT INTO tracks VALUES ({', '.join('?' * 15)})", rows)
    con.commit()
    con.close()
    before = list(read_rows(db))
    assert list(read_features(db)) == []  # not upgraded yet: no features table, nothing to read

    con = connect(db)
    try:
        assert schema_version(con) == SCHEMA_VERSION == 3
        assert {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
            "tracks", "features", "file_tags", "meta"}
        state = generation(con)
        assert state is not None and state[1] == 0  # upgrading touched no row: the counter starts at 0
    finally:
        con.close()
    after = list(read_rows(db))  # no row lost or changed; the new status column is NULL in the old rows
    assert [{k: v for k, v in r.items() if k != "status"} for r in after] == before and len(before) == 4
    assert all(r["status"] is None for r in after)
    connect(db).close()  # opening it again changes nothing
    assert list(read_rows(db)) == after

    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    from musicgenre.errors import MusicGenreError

    with pytest.raises(MusicGenreError, match="newer musicgenre"):
        connect(db)


def test_scan_stores_features_and_file_tags(torch_classifier, tmp_path: Path) -> None:
    files = make_tagged_library(tmp_path / "lib")
    db = tmp_path / "lib.sqlite"
    s = scan(sorted(files.values()), db, torch_classifier)
    assert (s.done, s.failed) == (5, 0)
    got = features_by_name(db)
    assert set(got) == set(files)  # the file with unreadable tags is classified and has its features

    long = got["long.flac"]
    assert (long.backbone, long.backbone_version) == DEFAULT_FEATURES == torch_classifier.feature_backbone
    # 13 loud windows, 10 kept: those nearest the centres of 10 equal parts
    assert long.windows == 13 and long.index.tolist() == [1, 2, 3, 5, 6, 7, 8, 10, 11, 12]
    assert long.embedding.shape == (10, 200) and long.tag_logits is not None and long.tag_logits.shape == (10, 50)
    assert long.embedding.dtype == np.float16 and long.mean_embedding.shape == (200,)
    assert long.mean_tag_logits is not None and long.mean_tag_logits.shape == (50,)
    short = got["b.flac"]
    assert short.windows == len(short.index) == 1 and short.embedding.shape == (1, 200)
    # the stored arrays are the prediction's own (one pass), and its label is the track's
    pred = torch_classifier.predict(str(files["long.flac"]))
    assert pred.features is not None and np.array_equal(pred.features.embedding, long.embedding)
    assert np.array_equal(pred.features.mean_tag_logits, long.mean_tag_logits) and long.label == pred.label
    assert long.model == "musicnn-gtzan" and long.scores == pred.scores

    mb = {"mb_artist_id": "b10bbbfc-cf9e-42e0-be17-e2c3e1d2600d",
          "mb_album_id": "1dc4c347-a1db-32aa-b14f-bc9cc507b843", "mb_track_id": "a8d8c6c2-3b1c-4ab1-8e5a-0c2f1c1e1b55"}
    id3 = {"genres": ["Rock", "Jazz"], "genre_ours": False, "artist": "Some Artist", "album_artist": "Album Artist",
           "album": "Some Album", **mb, "tags_error": None}
    assert got["a.mp3"].tags == id3 and got["c.wav"].tags == id3  # MP3 and a WAV's ID3 chunk alike
    assert got["b.flac"].tags == {"genres": ["Electronic", "Rock", "Ambient"], "genre_ours": False,
                                  "artist": "Flac Artist", "album_artist": None, "album": None, "mb_artist_id": None,
                                  "mb_album_id": "f0000000-0000-0000-0000-000000000001", "mb_track_id": None,
                                  "tags_error": None}
    broken = got["broken_tags.wav"].tags
    assert broken["genres"] is None and broken["tags_error"].startswith("cannot read the tags")
    assert got["long.flac"].tags["genres"] == []  # read: none there

    # bytes per file: what the features and the file's tags add to its row, and the whole row on disk
    con = sqlite3.connect(db)
    payload = con.execute(
        "SELECT max(length(idx) + length(embedding) + length(tag_logits) + length(mean_embedding) "
        "+ length(mean_tag_logits) + length(path) + length(content_hash) + length(backbone) "
        "+ length(backbone_version) + 8) FROM features").fetchone()[0]
    con.close()
    assert 5000 < payload < 6000  # 10 x (200 + 50) float16 + the means + 10 indices
    on_disk = bench_scan.bytes_per_file_on_disk(db, tmp_path / "many.sqlite", 300)
    assert 6000 < on_disk <= MAX_BYTES_PER_FILE  # pages, overflow pages and indexes of 300 such rows

    again = scan(sorted(files.values()), db, torch_classifier)
    assert (again.done, again.skipped) == (0, 5)  # unchanged and with features: skipped as before


def test_rescan_fills_in_missing_features(torch_classifier, featureless_classifier, tmp_path: Path) -> None:
    classifier = featureless_classifier
    files = make_tagged_library(tmp_path / "lib")
    paths = sorted(files.values())
    db = tmp_path / "lib.sqlite"
    # a model exported before features were stored: rows, file tags, no features, and no rescans for them
    assert classifier.feature_backbone is None
    assert scan(paths, db, classifier).done == 5 and list(read_features(db)) == []
    assert scan(paths, db, classifier).skipped == 5
    # a model that gives features classifies every file again (same model name and version) and fills them in
    s = scan(paths, db, torch_classifier)
    assert s.done == 5 and set(features_by_name(db)) == set(files)
    # one file's features deleted (or another backbone version's): only that file is classified again
    con = sqlite3.connect(db)
    con.execute("DELETE FROM features WHERE path = ?", (str(files["a.mp3"].resolve()),))
    con.execute("UPDATE features SET backbone_version = '0.0.9' WHERE path = ?", (str(files["b.flac"].resolve()),))
    con.commit()
    con.close()
    s = scan(paths, db, torch_classifier)
    assert (s.done, s.skipped) == (2, 3)
    assert {r.backbone_version for r in read_features(db)} == {DEFAULT_FEATURES[1]} and len(features_by_name(db)) == 5
    # the model without features keeps them: nothing to do
    assert scan(paths, db, classifier).skipped == 5 and len(features_by_name(db)) == 5
    # a changed file: its old features are stale the moment its row is rewritten, whoever classifies it
    write_audio(files["a.mp3"], tone(5.0, 22050, 600), 22050)
    assert scan(paths, db, classifier).done == 1
    assert "a.mp3" not in features_by_name(db)
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM features WHERE path = ?", (str(files["a.mp3"].resolve()),)
                       ).fetchone()[0] == 0
    con.close()
    assert scan(paths, db, torch_classifier).done == 1 and "a.mp3" in features_by_name(db)
    # a deleted file takes its features and tags with it
    files["c.wav"].unlink()
    scan(paths, db, torch_classifier)
    con = sqlite3.connect(db)
    assert [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("tracks", "features", "file_tags")] \
        == [4, 4, 4]
    con.close()


def test_writing_tags_keeps_the_features(torch_classifier, tmp_path: Path) -> None:
    """Our own tag write changes a file's bytes, not its audio: its features stay current (no reclassification)
    and its stored tags now say the genre is ours."""
    from musicgenre.library.tags import TagWriter

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "classical_hungarian_dance_5.ogg", lib / "c.ogg")
    db = tmp_path / "lib.sqlite"
    s = scan([lib / "c.ogg"], db, torch_classifier, tagger=TagWriter(report=lambda _: None, min_confidence=0.0))
    assert (s.done, s.tagged) == (1, 1)
    (row,) = read_features(db)
    assert row.tags["genres"] == ["Classical"] and row.tags["genre_ours"] is True and row.tagged == "classical"
    (means,) = read_features(db, windows=False)  # what similar's index reads: the means, not the window arrays
    assert means.embedding is None and means.tag_logits is None and row.embedding is not None
    assert np.array_equal(means.mean_embedding, row.mean_embedding) and means.tags == row.tags
    assert read_file_tags(lib / "c.ogg")["genre_ours"] is True
    assert scan([lib / "c.ogg"], db, torch_classifier).skipped == 1


def test_prediction_features_stay_out_of_the_json(torch_classifier, tmp_path: Path) -> None:
    path = write_audio(tmp_path / "t.wav", tone(8.0, 22050, 300), 22050)
    pred = torch_classifier.predict(str(path))
    assert pred.features is not None and pred.features.windows == 2
    assert "features" not in pred.to_dict() and "embedding" not in str(pred.to_dict())


def torch_only_model(folder: Path) -> Path:
    """A copy of the shipped model directory without its ONNX export: it loads on torch, as a trained one does."""
    import json

    from musicgenre.modeldir import weights_dir

    shutil.copytree(weights_dir() / "musicnn_gtzan", folder, ignore=shutil.ignore_patterns("*.onnx"))
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["onnx"]
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.slow
def test_ray_scan_stores_the_same_features(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="distributed extra not installed")
    from musicgenre import load
    from musicgenre.library.ray_engine import scan_ray

    model = torch_only_model(tmp_path / "model")
    files = make_tagged_library(tmp_path / "lib")
    paths = sorted(files.values())
    (tmp_path / "lib" / "silent.wav").write_bytes(b"")  # a failure row (no features) among the rest
    paths.append(tmp_path / "lib" / "silent.wav")
    scan(paths, tmp_path / "local.sqlite", load(model, device="cpu"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        s = scan_ray(paths, tmp_path / "ray.sqlite", str(model), batch_size=2)
        assert (s.done, s.failed) == (5, 1)
        again = scan_ray(paths, tmp_path / "ray.sqlite", str(model))  # features present: nothing to do
        assert (again.done, again.skipped) == (0, 6)
    finally:
        ray.shutdown()
    local, remote = features_by_name(tmp_path / "local.sqlite"), features_by_name(tmp_path / "ray.sqlite")
    assert set(local) == set(remote) == set(files)
    for name, r in local.items():
        assert remote[name].tags == r.tags and remote[name].index.tolist() == r.index.tolist()
        assert np.allclose(remote[name].embedding, r.embedding, atol=1e-2)
        assert (remote[name].backbone, remote[name].backbone_version) == DEFAULT_FEATURES


@pytest.mark.slow
def test_onnx_export_with_the_embedding_output_gives_the_same_features(tmp_path: Path) -> None:
    """The shipped model exported again (scripts/export_onnx.py: the embedding is now an output) with its
    backbone recorded in the card: ONNX Runtime gives the torch backend's features, and the genre outputs are
    unchanged."""
    from musicgenre import load

    model = bench_scan.export_with_embedding(tmp_path / "model")
    onnx, torch_ = load(model, backend="onnx"), load(model, backend="torch")
    assert onnx.model.backbone == torch_.model.backbone == DEFAULT_FEATURES == onnx.feature_backbone
    clip = str(Path(__file__).resolve().parents[1] / "examples" / "jazz_vibe_ace.ogg")
    a, b = onnx.predict(clip), torch_.predict(clip)
    assert a.features is not None and b.features is not None and a.label == b.label
    assert a.features.index.tolist() == b.features.index.tolist()
    assert np.allclose(a.features.embedding, b.features.embedding, atol=2e-3)
    assert np.allclose(a.features.mean_tag_logits, b.features.mean_tag_logits, atol=2e-2)
    assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 1e-4
