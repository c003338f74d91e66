"""``musicgenre learn``: a genre model from a scanned library's own genre tags (musicgenre.learn.fit, .report,
.writer, .run and the CLI). Synthetic stored features (benchmarks/bench_learn.py's ``synthetic_library``, written
with the library's own row writer) go through the whole command; the model directory it writes loads on both
backends and gives the scores the numpy head gives on the same features."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from musicgenre.cli import main

from .conftest import DEFAULT_FEATURES, load_benchmark, tone, write_audio

pytest.importorskip("sklearn")
pytest.importorskip("onnx")

bench = load_benchmark("bench_learn")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def learn(db: Path, out: Path, *extra: str, report: Path | None = None) -> int:
    args = ["learn", "--db", str(db), "-o", str(out), "-q", *extra]
    return main(args + (["--report", str(report)] if report else []))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """6 genres x 30 files (5 per artist), 10 windows (every 7th file 3), 3% mis-tagged, 5% untagged, a rare
    genre (Polka, 6 files), 4 files whose genre our writer put there."""
    db = tmp_path_factory.mktemp("learn") / "lib.db"
    made = bench.synthetic_library(db, 180, genres=6, files_per_artist=5, ours=4, seed=1)
    return db, made


@pytest.fixture(scope="module")
def learned(library: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    db, _ = library
    folder = tmp_path_factory.mktemp("model")
    out, report = folder / "my-genres", folder / "report.json"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert learn(db, out, report=report) == 0
    return out, json.loads(report.read_text()), err.getvalue()


# ---- the command ---------------------------------------------------------------------------------------------

def test_report_keys_and_vocabulary(learned: tuple[Path, dict, str], library: tuple[Path, dict]) -> None:
    out, rep, _ = learned
    _, made = library
    assert {"genres", "merged", "dropped", "validation", "suspects", "to_tag"} <= set(rep)
    from musicgenre.learn.vocabulary import canonical_key

    assert {canonical_key(g["genre"]) for g in rep["genres"]} == {"rock", "jazz", "hiphop", "electronic",
                                                                   "classical", "metal"}
    assert [(d["genre"], d["reason"]) for d in rep["dropped"]] == [("Polka", "only 6 files (--min-files 20)")]
    merged = {canonical_key(m["into"]): m for m in rep["merged"]}
    assert merged["hiphop"]["how"] == "spelling" and len(merged["hiphop"]["from"]) == 2
    assert rep["library"]["ours"] == 4 and rep["library"]["untagged"] == len(made["untagged"])


def test_a_rare_genre_backs_off_to_a_named_parent(library: tuple[Path, dict], tmp_path: Path) -> None:
    db, _ = library
    out, report = tmp_path / "m", tmp_path / "r.json"
    assert learn(db, out, "--parent", "Polka=Folk Music", "--parent", "Folk Music=Jazz", report=report) == 0
    rep = json.loads(report.read_text())
    assert rep["dropped"] == []  # Polka (6 files) -> Folk Music (no files of its own, too rare) -> Jazz
    assert [(m["into"], m["from"], m["how"]) for m in rep["merged"] if m["how"] == "parent"] == [
        ("Jazz", ["Polka"], "parent")]
    card = json.loads((out / "config.json").read_text())
    assert card["training"]["parents"] == {"Polka": "Folk Music", "Folk Music": "Jazz"}
    assert "--parent 'Polka=Folk Music'" in card["training"]["command"]


def test_validation_is_out_of_fold_by_artist(learned: tuple[Path, dict, str]) -> None:
    _, rep, err = learned
    val = rep["validation"]
    assert val["leaky"] is False and "leaky_reasons" not in val and "LEAKY" not in err
    assert val["folds"] == 5 and val["groups"] == 36  # the rare genre's artists are not among the labelled files
    assert val["top1"] > 0.8
    assert set(val["per_genre"]) == {g["genre"] for g in rep["genres"]}
    assert all(set(m) == {"precision", "recall", "n"} for m in val["per_genre"].values())
    assert sum(m["n"] for m in val["per_genre"].values()) == val["files"] == rep["library"]["labelled"]
    assert np.array(val["confusion"]["matrix"]).sum() == val["files"]
    sure = val["confident"]
    assert sure["min_confidence"] == 0.8 and 0 < sure["share"] <= 1


def test_suspects_are_the_mistags_most_certain_first(learned: tuple[Path, dict, str],
                                                    library: tuple[Path, dict]) -> None:
    _, rep, _ = learned
    _, made = library
    sus = rep["suspects"]
    assert sus and all(set(s) == {"path", "tagged", "predicted", "probability", "tagged_probability"} for s in sus)
    # the model is at least 90% sure the tag is wrong, and names another genre
    assert all(s["tagged"] != s["predicted"] and s["tagged_probability"] <= 0.1 + 1e-9 for s in sus)
    assert all(s["probability"] >= s["tagged_probability"] for s in sus)
    assert [s["tagged_probability"] for s in sus] == sorted(s["tagged_probability"] for s in sus)
    found = {s["path"] for s in sus} & set(made["mistagged"])
    assert len(found) >= len(made["mistagged"]) / 2, (found, made["mistagged"])
    assert len(sus) <= 3 * len(made["mistagged"])


def test_doubtful_tags_are_left_out_of_the_final_fit(learned: tuple[Path, dict, str],
                                                     library: tuple[Path, dict]) -> None:
    out, rep, _ = learned
    _, made = library
    left = rep["left_out"]
    # every suspect is left out, and so is every file the folds are at least 80% sure is mis-tagged
    assert {s["path"] for s in rep["suspects"]} <= {s["path"] for s in left}
    assert all(s["tagged_probability"] <= 0.2 + 1e-9 and s["tagged"] != s["predicted"] for s in left)
    assert len({s["path"] for s in left} & set(made["mistagged"])) >= len(made["mistagged"]) / 2
    assert rep["library"]["trained"] == rep["library"]["labelled"] - len(left)
    assert rep["not_learned"] == []
    card = json.loads((out / "config.json").read_text())
    assert card["training"]["data"]["trained"] == rep["library"]["trained"]


def test_a_tag_is_judged_only_where_the_folds_knew_its_genre() -> None:
    from musicgenre.learn.fit import judged
    from musicgenre.learn.report import contradicted

    # genre 1: 10 files, 8 of them by one artist (fold 0) and 2 elsewhere; genre 0 spread evenly
    y = np.array([0] * 10 + [1] * 10)
    fold = np.array([0, 1, 2, 3, 4] * 2 + [0] * 8 + [1, 2])
    ok = judged(y, fold)
    assert ok[:10].all()  # the other folds hold 8 of genre 0's 10 files
    assert not ok[10:18].any()  # fold 0's model trained on 2 of genre 1's 10 files: it cannot judge them
    assert ok[18:].all()  # the others were judged by models that trained on 9 of 10
    probs = np.tile([[0.95, 0.05]], (20, 1))  # every file called genre 0, sure
    wrong = contradicted(probs, y, ok, 0.1)
    assert wrong.tolist() == [False] * 18 + [True, True]
    assert not contradicted(probs, y, ok, 0.01).any()


def test_a_genre_all_of_whose_tags_are_doubted_is_not_learned(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Five files tagged Zydeco that are each plainly one of the other genres: the folds doubt every Zydeco tag,
    the final head never calls Zydeco, and the command says so."""
    db = tmp_path / "lib.db"
    bench.synthetic_library(db, 120, genres=3, files_per_artist=4, seed=3, separation=1.0, rare=False)
    con = sqlite3.connect(db)
    paths = [r[0] for r in con.execute("SELECT path FROM file_tags ORDER BY path")]
    step = len(paths) // 6
    polka = paths[step::step][:5]
    con.executemany("UPDATE file_tags SET genres = ? WHERE path = ?", [(json.dumps(["Zydeco"]), p) for p in polka])
    con.commit()
    con.close()
    out, report = tmp_path / "m", tmp_path / "r.json"
    assert main(["learn", "--db", str(db), "-o", str(out), "--report", str(report), "--min-files", "1",
                 "--min-artists", "1"]) == 0
    rep = json.loads(report.read_text())
    assert [d["genre"] for d in rep["not_learned"]] == ["Zydeco"]
    assert {s["path"] for s in rep["left_out"]} >= set(polka)
    printed = capsys.readouterr().out
    assert "not learned Zydeco (5 files)" in printed
    card = json.loads((out / "config.json").read_text())
    assert card["training"]["not_learned"][0]["genre"] == "Zydeco"


def test_to_tag_lists_files_without_an_owner_genre_least_sure_first(learned: tuple[Path, dict, str],
                                                                    library: tuple[Path, dict]) -> None:
    _, rep, _ = learned
    _, made = library
    todo = rep["to_tag"]
    assert len(todo) == len(made["untagged"]) + 4  # and the 4 files only our writer tagged
    assert set(made["untagged"]) <= {t["path"] for t in todo}
    assert [t["probability"] for t in todo] == sorted(t["probability"] for t in todo)
    labels = {g["genre"] for g in rep["genres"]}
    assert all(t["predicted"] in labels for t in todo)


def test_model_card(learned: tuple[Path, dict, str]) -> None:
    from musicgenre.modeldir import read

    out, rep, _ = learned
    card = read(out)
    assert card.architecture == "musicnn_genre"
    assert dict(card.model_args) == {"n_labels": 6, "backbone": "MSD_musicnn", "hidden": 0,
                                     "features": "embedding+tags"}
    assert list(card.labels) == sorted(card.labels, key=str.casefold)
    assert card.temperature is not None and len(card.temperature_by_windows) == 10
    assert card.onnx is not None and card.onnx.extra["outputs"] == ["logits", "tags", "embedding"]
    assert card.onnx.extra["backbone"] == {"name": "MSD_musicnn", "version": "0.1.0"}
    assert card.sha256 == sha256(out / "model.safetensors") and card.version == card.sha256[:12]
    assert card.onnx.sha256 == sha256(out / "model.onnx")
    assert len(card.tags) == 50
    metrics = card.get("metrics")
    assert metrics["valid"]["per_genre"] == rep["validation"]["per_genre"]
    assert metrics["confusion_matrix"] == "confusion_matrix.png" and (out / "confusion_matrix.png").stat().st_size
    training = card.get("training")
    assert training["data"]["labelled"] == rep["library"]["labelled"]
    assert training["vocabulary"]["dropped"] == rep["dropped"] and training["vocabulary"]["merged"] == rep["merged"]
    assert card.get("date") == rep["date"]
    # the "unknown" detector: fitted on the labelled files' stored tags, in the card and the report alike
    assert card.open_set is not None and card.open_set.to_dict() == rep["open_set"]["method"]
    assert not set(card.open_set.foreign) & {g.lower() for g in card.labels}
    assert rep["open_set"]["library"]["1"]["known"]["n"] >= rep["library"]["labelled"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "confusion_matrix.png", "model.onnx",
                                                     "model.safetensors"]


def test_same_data_same_weights(learned: tuple[Path, dict, str], library: tuple[Path, dict], tmp_path: Path) -> None:
    out, _, _ = learned
    db, _ = library
    assert learn(db, tmp_path / "again") == 0
    assert sha256(tmp_path / "again" / "model.safetensors") == sha256(out / "model.safetensors")


def test_relearning_replaces_a_model_dir_and_refuses_other_folders(library: tuple[Path, dict], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = library
    out = tmp_path / "m"
    assert learn(db, out) == 0
    (out / "stale.txt").write_text("from before")
    assert learn(db, out, "--min-files", "21") == 0
    assert not (out / "stale.txt").exists() and (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left behind
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    capsys.readouterr()
    assert learn(db, other) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["a.jpg"]


def test_leaky_grouping_is_labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No artist tags, files in genre-named folders: the folds fall back to folders, which are the genres."""
    db = tmp_path / "lib.db"
    bench.synthetic_library(db, 120, genres=4, files_per_artist=5, artists=False, rare=False)
    report = tmp_path / "r.json"
    assert learn(db, tmp_path / "m", report=report) == 0
    val = json.loads(report.read_text())["validation"]
    assert val["leaky"] is True and val["leaky_reasons"]
    assert "folders named after genres" in val["leaky_reasons"][0]
    err = capsys.readouterr()
    assert "warning: validation figures are LEAKY" in err.err and "LEAKY" in err.out
    from musicgenre.modeldir import read

    assert read(tmp_path / "m").get("metrics")["valid"]["leaky"] is True


# ---- clear errors, nothing written --------------------------------------------------------------------------

def _fails(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str, code: int = 1) -> str:
    capsys.readouterr()
    out, report = tmp_path / "m", tmp_path / "r.json"
    def listing() -> list[str]:  # reading a database may leave SQLite's -wal and -shm files beside it
        return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(db.name))

    before = listing()
    assert learn(db, out, *extra, report=report) == code
    assert listing() == before  # nothing written: no model, report or temporary folder
    err = capsys.readouterr().err
    assert err.startswith("musicgenre: error: ") and err.count("\n") == 1
    return err


def test_no_genre_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lib.db"
    bench.synthetic_library(db, 30, genres=3, untagged=1.0, rare=False, ours=3)
    assert "no genre tags" in _fails(db, tmp_path, capsys)


def test_fewer_than_two_genres_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lib.db"
    bench.synthetic_library(db, 60, genres=3, files_per_artist=5, rare=True)
    err = _fails(db, tmp_path, capsys, "--min-files", "100")
    assert "fewer than two genres left" in err and "Polka: only 6 files" in err


def test_database_without_embeddings_says_rescan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lib.db"
    bench.synthetic_library(db, 30, genres=3, rare=False)
    con = sqlite3.connect(db)
    con.execute("DELETE FROM features")
    con.commit()
    con.close()
    err = _fails(db, tmp_path, capsys)
    assert "no stored embeddings" in err and "rescan" in err


def test_embeddings_of_another_backbone_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lib.db"
    bench.synthetic_library(db, 30, genres=3, rare=False, backbone=("MSD_musicnn", "0.0.9"))
    err = _fails(db, tmp_path, capsys)
    assert "another backbone version: MSD_musicnn 0.0.9 (30 files)" in err and "rescan" in err


def test_missing_database_and_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "database not found" in _fails(tmp_path / "none.db", tmp_path, capsys)
    db = tmp_path / "lib.db"
    bench.synthetic_library(db, 30, genres=3, rare=False)
    assert "--folds must be at least 2" in _fails(db, tmp_path, capsys, "--folds", "1", code=2)
    assert "--alias" in _fails(db, tmp_path, capsys, "--alias", "Rock", code=2)


# ---- the model directory on both backends ------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_audio(tmp_path_factory.mktemp("clip") / "clip.wav", tone(10.0, 16000, 330.0), 16000)


def _head(out: Path):
    from safetensors.numpy import load_file

    from musicgenre.learn.fit import Head
    from musicgenre.learn.writer import HEAD_KEYS

    state = load_file(str(out / "model.safetensors"))
    assert set(state) == set(HEAD_KEYS.values())
    return Head(**{k: state[v] for k, v in HEAD_KEYS.items()})


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_loads_and_scores_as_the_numpy_head(learned: tuple[Path, dict, str], clip: Path, backend: str) -> None:
    """``load(DIR)`` on either backend: one pass gives logits, tags and embedding; the logits are the numpy head's
    on that embedding and those tags, and ``predict`` aggregates them as ``scores.calibrated_clip_scores``."""
    if backend == "torch":
        pytest.importorskip("torch")
    from musicgenre import load
    from musicgenre.scores import calibrated_clip_scores, loud_windows
    from musicgenre.windows import Windows

    out, _, _ = learned
    head = _head(out)
    clf = load(out, backend=backend, device="cpu")
    assert clf.model.backbone == DEFAULT_FEATURES
    windows = np.concatenate([w for w, _ in Windows(str(clip), clf.model.features)])
    run = clf.model.run(windows)
    assert set(run) == {"logits", "tags", "embedding"}
    expected = head.logits(np.concatenate([run["embedding"], run["tags"]], axis=1))
    np.testing.assert_allclose(run["logits"], expected, atol=1e-4)
    pred = clf.predict(str(clip))
    peaks = np.concatenate([p for _, p in Windows(str(clip), clf.model.features)])
    scores = calibrated_clip_scores(expected, loud_windows(peaks), clf.model.temperature, clf.model.temperatures)
    got = np.array([pred.scores[label] for label in clf.labels])
    np.testing.assert_allclose(got, scores, atol=1e-5)
    # what scan stores from this pass (float16) gives the same logits through the head, within float16 rounding
    feats = pred.features
    assert feats is not None and (feats.backbone, feats.backbone_version) == DEFAULT_FEATURES
    stored = head.logits(np.concatenate([feats.embedding, feats.tag_logits], axis=1).astype(np.float32))
    np.testing.assert_allclose(stored, run["logits"][feats.index], atol=0.05)


def test_onnx_and_torch_agree(learned: tuple[Path, dict, str], clip: Path) -> None:
    pytest.importorskip("torch")
    from musicgenre import load
    from musicgenre.windows import Windows

    out, _, _ = learned
    a, b = load(out, backend="onnx"), load(out, backend="torch", device="cpu")
    windows = np.concatenate([w for w, _ in Windows(str(clip), a.model.features)])
    ra, rb = a.model.run(windows), b.model.run(windows)
    for key in ("logits", "tags", "embedding"):
        np.testing.assert_allclose(ra[key], rb[key], atol=1e-4)


def test_one_backbone_pass(learned: tuple[Path, dict, str]) -> None:
    """The learned graph holds the shipped graph's backbone once (as many convolutions) and no other head."""
    import onnx

    from musicgenre.modeldir import resolve

    out, _, _ = learned
    mine = onnx.load(str(out / "model.onnx"))
    base = onnx.load(str(resolve(None) / "model.onnx"))

    def convs(m: onnx.ModelProto) -> int:
        return sum(n.op_type == "Conv" for n in m.graph.node)

    assert convs(mine) == convs(base) > 0
    assert [o.name for o in mine.graph.output] == ["logits", "tags", "embedding"]
    assert not any(i.name.startswith("head.") for i in mine.graph.initializer)  # the shipped heads are gone


def test_predict_and_scan_use_the_directory(learned: tuple[Path, dict, str], clip: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``predict -m DIR`` and ``scan -m DIR`` unchanged; the features scan stores with it can be learnt from."""
    from musicgenre.library.db import read_features, read_rows
    from musicgenre.modeldir import read

    out, rep, _ = learned
    card = read(out)
    capsys.readouterr()
    assert main(["predict", str(clip), "-m", str(out), "-f", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result[0]["label"] in card.labels if isinstance(result, list) else result["label"] in card.labels
    db = tmp_path / "lib.db"
    assert main(["scan", str(clip.parent), "--db", str(db), "-m", str(out), "-q"]) == 0
    rows = list(read_rows(db))
    assert [(r["model"], r["model_version"]) for r in rows] == [(card.name, card.version)]
    (feats,) = read_features(db)
    assert (feats.backbone, feats.backbone_version) == DEFAULT_FEATURES


def test_head_names_match_the_torch_head() -> None:
    """The safetensors keys are those ``models.genre.make_head(250, n, hidden=0)`` loads, with its shapes."""
    pytest.importorskip("torch")
    from musicgenre.learn.writer import HEAD_KEYS
    from musicgenre.models.genre import make_head

    state = {f"head.{k}": tuple(v.shape) for k, v in make_head(250, 4, hidden=0).state_dict().items()}
    assert state == {HEAD_KEYS["mean"]: (250,), HEAD_KEYS["std"]: (250,), HEAD_KEYS["weight"]: (4, 250),
                     HEAD_KEYS["bias"]: (4,)}


def test_learns_without_torch(learned: tuple[Path, dict, str], library: tuple[Path, dict], tmp_path: Path) -> None:
    """The light install learns: the whole command, in a process where torch cannot be imported (a finder that
    refuses it, as an absent package would: scipy looks torch up in ``sys.modules``), gives the same weights."""
    import subprocess
    import sys

    out, _, _ = learned
    db, _ = library
    code = ("import sys, importlib.abc\n"
            "class NoTorch(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from musicgenre.cli import main\n"
            f"rc = main(['learn', '--db', {str(db)!r}, '-o', {str(tmp_path / 'm')!r}, '-q'])\n"
            "assert 'torch' not in sys.modules\n"
            "sys.exit(rc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sha256(tmp_path / "m" / "model.safetensors") == sha256(out / "model.safetensors")


# ---- the pieces ---------------------------------------------------------------------------------------------

def _clip_logits(seed: int, n: int, labels: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, labels, n)
    lengths = rng.choice([1, 2, 3, 5, 10, 10, 13], n)
    return [(rng.normal(0, 2, (k, labels)) + 2.5 * np.eye(labels)[y[i]]).astype(np.float32)
            for i, k in enumerate(lengths)], y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_calibration_equals_fit_calibration(seed: int) -> None:
    from musicgenre.learn.fit import fit_window_calibration
    from musicgenre.train.calibrate import fit_calibration

    clips, y = _clip_logits(seed, 120, 5)
    assert fit_window_calibration(clips, y) == fit_calibration(clips, y, aggregate_at="window")


def test_run_probabilities_equal_calibrate() -> None:
    from musicgenre.learn.fit import run_probabilities
    from musicgenre.train import calibrate

    clips, _ = _clip_logits(3, 40, 4)
    for n in (1, 3, 10):
        mine, owner = run_probabilities(clips, n, 0.7)
        ref, ref_owner = calibrate.run_probabilities(clips, n, 0.7, step=1)
        order = np.argsort(owner, kind="stable")
        np.testing.assert_array_equal(owner[order], ref_owner)
        np.testing.assert_allclose(mine[order], ref, atol=1e-6)


def test_folds_keep_artists_together_and_absent_genres_are_never_named() -> None:
    from musicgenre.learn.fit import ABSENT_LOGIT, WindowSet, assign_folds, fit_head

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    groups = [f"a{i // 4}" for i in range(60)]
    fold = assign_folds(y, groups, 5)
    assert set(fold.tolist()) == set(range(5))
    for g in set(groups):
        assert len({int(fold[i]) for i in range(60) if groups[i] == g}) == 1
    windows = WindowSet.from_files([rng.normal(y[i], 1.0, (3, 8)).astype(np.float32) for i in range(60)])
    head = fit_head(windows.take(np.flatnonzero(y != 2)), y[y != 2], 3)
    assert head.bias[2] == ABSENT_LOGIT and not head.weight[2].any()
    assert (head.logits(windows.x).argmax(1) != 2).all()
