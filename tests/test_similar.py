"""``musicgenre similar``: the library files nearest a track in embedding space (musicgenre.library.similar and the
CLI). A small library is made by a real ``scan`` of synthetic tagged files (no ../shared); genre precision at k
with other artists only is checked on hand-placed embeddings and on benchmarks/bench_similar.py's synthetic
clusters."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from musicgenre.cli import main
from musicgenre.library import similar as sim
from musicgenre.library.db import connect, read_features
from musicgenre.library.scan import scan
from musicgenre.testing import synthetic_similarity_library

from .conftest import tone, write_audio

SR = 22050


def _tag(path: Path, **tags: list[str]) -> Path:
    import mutagen

    f = mutagen.File(path)
    for key, values in tags.items():
        f[key.upper()] = values
    f.save()
    return path


def _chord(seconds: float, freqs: tuple[float, ...]) -> np.ndarray:
    return (np.sum([tone(seconds, SR, f, amp=0.3) for f in freqs], axis=0) / len(freqs)).astype(np.float32)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, classifier) -> dict[str, Path]:
    """Five scanned files: a.flac and its copy with other tags (same audio: same embedding), three others
    (one untagged WAV); and two files outside the library."""
    root = tmp_path_factory.mktemp("similar")
    lib, out = root / "lib", root / "outside"
    lib.mkdir()
    out.mkdir()
    f = {
        "a": _tag(write_audio(lib / "a.flac", tone(4.0, SR, 220), SR), genre=["Jazz"], artist=["Ann"]),
        "b": _tag(write_audio(lib / "b.flac", _chord(4.0, (330, 415, 495)), SR), genre=["Rock"], artist=["Bob"]),
        "c": _tag(write_audio(lib / "c.flac", _chord(4.0, (90, 180, 1200)), SR), genre=["hip hop"], artist=["Cy"]),
        "d": write_audio(lib / "d.wav", tone(4.0, SR, 600), SR),
    }
    f["a_copy"] = _tag(write_audio(lib / "a copy.flac", tone(4.0, SR, 220), SR), genre=["Jazz; Blues"],
                       artist=["Another Artist"])
    db = root / "lib.db"
    summary = scan(sorted(lib.iterdir()), db, classifier)
    assert summary.done == 5, summary.failures
    f["outside"] = write_audio(out / "e.flac", tone(4.0, SR, 225), SR)
    f["db"] = db
    return f


def _cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["similar", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ---- the query ------------------------------------------------------------------------------------------------

def test_library_file_excludes_itself_and_ranks_its_copy_first(library: dict[str, Path]) -> None:
    found = sim.similar(library["db"], library["a"], k=10)
    paths = [Path(n.path) for n in found.neighbours]
    assert library["a"].resolve() not in paths and len(paths) == 4  # every other file, itself never
    first = found.neighbours[0]
    assert Path(first.path) == library["a_copy"].resolve() and first.similarity >= 0.999
    assert first.genres == ["Jazz; Blues"] and first.artist == "Another Artist" and first.rank == 1
    sims = [n.similarity for n in found.neighbours]
    assert sims == sorted(sims, reverse=True)
    assert found.embedded is None  # a scanned, unchanged file: its stored embedding, no model loaded
    assert found.excluded == [str(library["a"].resolve())]
    untagged = next(n for n in found.neighbours if Path(n.path).name == "d.wav")
    assert untagged.genres == [] and untagged.artist is None


def test_byte_identical_copy_outside_the_library_is_the_file_itself(library: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    dup = shutil.copy(library["a"], tmp_path / "a.flac")
    found = sim.similar(library["db"], dup, k=2)
    assert found.excluded == [str(library["a"].resolve())] and found.embedded is None
    assert [Path(n.path).name for n in found.neighbours][0] == "a copy.flac"


def test_file_outside_the_library_is_embedded(library: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, library["outside"], "--db", library["db"], "-k", "3", "--format", "jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3
    assert all(set(d) == {"rank", "path", "similarity", "genres", "artist"} for d in lines)
    assert [d["rank"] for d in lines] == [1, 2, 3]
    assert [d["similarity"] for d in lines] == sorted((d["similarity"] for d in lines), reverse=True)
    assert all(isinstance(d["genres"], list) and -1 <= d["similarity"] <= 1 for d in lines)
    # a 225-Hz tone sits next to the two 220-Hz files
    assert {Path(d["path"]).name for d in lines[:2]} == {"a.flac", "a copy.flac"}
    assert lines[0]["similarity"] > 0.9


def test_table_output(library: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, library["b"], "--db", library["db"], "-k", "2")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["rank", "similarity", "path", "genres"]
    assert len(rows) == 2 and rows[0].split()[0] == "1" and float(rows[0].split()[1]) <= 1.0
    assert "b.flac" not in out


def test_index_is_kept_until_the_library_changes(library: dict[str, Path], tmp_path: Path, classifier,
                                                 monkeypatch) -> None:
    db = tmp_path / "lib.db"
    with sqlite3.connect(library["db"]) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    first = sim.library_index(db)
    assert len(first) == 5 and not list(tmp_path.glob("*.npz"))  # kept in memory, no file beside the database

    import musicgenre.library.db as dbmod

    def no_reading(*a, **k):
        raise AssertionError("the kept index should have been used")

    monkeypatch.setattr(dbmod, "read_features", no_reading)
    monkeypatch.setattr(sim, "read_features", no_reading)
    assert sim.library_index(db) is first
    monkeypatch.undo()
    assert sim.library_index(db, cache=False) is not first  # cache=False: always read

    new = write_audio(tmp_path / "new.flac", tone(4.0, SR, 880), SR)
    scan([new], db, classifier)
    grown = sim.library_index(db)
    assert len(grown) == 6 and grown.find(new.resolve()) is not None

    # any write, by any tool, moves the generation: the owner's own genre edited straight in SQLite
    with sqlite3.connect(db) as con:
        con.execute("UPDATE file_tags SET genres = '[\"Polka\"]' WHERE path = ?", (str(new.resolve()),))
    edited = sim.library_index(db)
    assert edited is not grown and edited.genres(edited.find(new.resolve())) == ["Polka"]


# ---- errors: one line each -------------------------------------------------------------------------------------

def _copy(db: Path, to: Path) -> Path:
    with sqlite3.connect(db) as src, sqlite3.connect(to) as dst:
        src.backup(dst)
    return to


def test_errors_are_one_line(library: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def error(*args: object) -> str:
        code, out, err = _cli(capsys, *args)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, (code, out, err)
        return err

    a = library["a"]
    assert "database not found" in error(a, "--db", tmp_path / "none.db")
    connect(tmp_path / "empty.db").close()
    assert "no classified files; scan the library first" in error(a, "--db", tmp_path / "empty.db")
    (tmp_path / "text.db").write_text("hello")
    assert "not a musicgenre library database" in error(a, "--db", tmp_path / "text.db")

    old = tmp_path / "old.db"  # a database from before features: the tracks table alone
    with sqlite3.connect(old) as con:
        con.execute("CREATE TABLE tracks (path TEXT PRIMARY KEY, content_hash TEXT, error TEXT)")
        con.execute("INSERT INTO tracks VALUES ('/m/a.mp3', 'abc', NULL)")
    assert "no stored embeddings (scanned before musicgenre stored them); rescan" in error(a, "--db", old)

    bare = _copy(library["db"], tmp_path / "bare.db")
    with sqlite3.connect(bare) as con:
        con.execute("DELETE FROM features")
    assert "no stored embeddings" in error(a, "--db", bare) and "rescan" in error(a, "--db", bare)

    err = error(tmp_path / "missing.flac", "--db", library["db"])
    assert "missing.flac: No such file or directory" in err
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio" * 100)
    assert "junk.mp3" in error(junk, "--db", library["db"])
    assert "a folder" in error(tmp_path, "--db", library["db"])

    other = _copy(library["db"], tmp_path / "other.db")
    with sqlite3.connect(other) as con:
        con.execute("UPDATE features SET backbone_version = '0.0.1'")
    err = error(library["outside"], "--db", other)
    assert "MSD_musicnn 0.0.1" in err and "rescan" in err
    assert _cli(capsys, a, "--db", other, "-k", "1")[0] == 0  # a library file needs no model: still answers

    code, _, err = _cli(capsys, a, "--db", library["db"], "-k", "0")
    assert code == 2 and "-k" in err


# ---- quality ----------------------------------------------------------------------------------------------------

def _row(path: str, vec: list[float], genres: list[str] | None, artist: str | None, **extra: object) -> SimpleNamespace:
    tags = {"genres": genres, "artist": artist, "genre_ours": extra.pop("genre_ours", False)}
    return SimpleNamespace(path=path, mean_embedding=np.array(vec, dtype=np.float16), tags=tags,
                           tagged=extra.pop("tagged", None))


def test_precision_skips_the_same_artist() -> None:
    rows = [_row("/m/x1.mp3", [1, 0.01], ["Rock"], "X"), _row("/m/x2.mp3", [1, 0.02], ["rock"], "X"),
            _row("/m/x3.mp3", [1, 0.03], ["Rock"], "X"), _row("/m/y.mp3", [1, 0.2], ["Jazz"], "Y"),
            _row("/m/z.mp3", [1, 0.6], ["ROCK"], "Z"),
            # never a query nor a neighbour: no genre, "Unknown", our own writer's genre
            _row("/m/u.mp3", [1, 0.015], None, "U"), _row("/m/v.mp3", [1, 0.015], ["Unknown"], "V"),
            _row("/m/w.mp3", [1, 0.015], ["Rock"], "W", genre_ours=True)]
    one = sim.precision_at_k(rows, 1)
    assert one.precision == 0.0 and one.queries == one.files == 5  # X's own files would have made it 0.6
    two = sim.precision_at_k(rows, 2)
    assert two.precision == pytest.approx((0.5 * 3 + 0 + 0.5) / 5)
    assert two.chance == pytest.approx((0.5 * 3 + 0 + 0.75) / 5)
    assert sim.precision_at_k(rows[:3], 1).queries == 0  # one artist: nobody else to compare with


def test_precision_on_synthetic_clusters(tmp_path: Path) -> None:
    db = tmp_path / "synthetic.db"
    synthetic_similarity_library(db, 400, genres=5, files_per_artist=5, seed=3)
    rows = list(read_features(db))
    p = sim.precision_at_k(rows, 10)
    assert p.files == p.queries and 350 < p.files < 400  # 5% untagged
    assert p.precision > 0.8 > 0.3 > p.chance
    sample = sim.precision_at_k(rows, 10, queries=50)
    assert sample.queries == 50 and abs(sample.precision - p.precision) < 0.15
    perm = np.random.default_rng(0).permutation(len(rows))  # embeddings dealt at random: about chance
    shuffled = [SimpleNamespace(path=r.path, tags=r.tags, tagged=r.tagged, mean_embedding=rows[j].mean_embedding)
                for r, j in zip(rows, perm)]
    assert sim.precision_at_k(shuffled, 10).precision < p.chance + 0.1
