"""How strongly ``musicgenre learn`` regularises its head, chosen on real tagged libraries.

    python -m experiments.learn_regularisation      # writes experiments/results/learn-regularisation.json

Three small real libraries from ../shared/data, each scanned by ``musicgenre scan`` with the shipped model (so the
features are exactly what a user's scan stores) after the files' own tags were written with mutagen:

- ``emotify-magnatune``: Emotify's 335 clips (copies) tagged with Magnatune's own genre tag (the ``id3_genre``
  column of its manifest: "Alternative Rock", "Classical", "Electronic", "Electro Rock", "Alt. Rock", "World",
  ...) and artist: a real owner's tags, spellings and rare genres included; ``--min-files 10``.
- ``emotify-labels``: the same files and features, the genre being Emotify's own label (classical, electronic,
  pop, rock; written into the database's ``file_tags`` rather than rescanning), artist groups as Emotify's.
- ``gtzan-partitions``: the 158 GTZAN clips in ../shared, genre tag = GTZAN genre, "artist" = the fault-filtered
  partition (train / valid / test / unlisted: artist-disjoint by construction; the only artist information
  there is), ``--min-files 5``.

For each inverse regularisation strength C of the logistic regression, ``learn``'s own protocol
(``learn.fit``: the same vocabulary, folds grouped by artist, out-of-fold logits, cross-fitted calibration, the
one aggregation): file top-1, macro-F1, negative log-likelihood of the calibrated file scores, window top-1, the
confident share and its accuracy at ``prediction.DEFAULT_MIN_CONFIDENCE``, and the window temperature fitted.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from experiments._common import RESULTS, ROOT, write_results

GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.1, 1.0)


def tag(path: Path, genre: str, artist: str) -> None:
    """Write GENRE and ARTIST into a copy, as a tagger would (Vorbis comments, or an ID3 chunk for WAV/FLAC)."""
    import mutagen

    f = mutagen.File(path)
    if path.suffix == ".wav":
        from mutagen.id3 import TCON, TPE1

        f.add_tags()
        f.tags.add(TCON(encoding=3, text=[genre]))
        f.tags.add(TPE1(encoding=3, text=[artist]))
    else:
        f["genre"] = [genre]
        f["artist"] = [artist]
    f.save()


def build(data: Path, folder: Path) -> dict[str, tuple[Path, int]]:
    """The three libraries: name -> (database, --min-files)."""
    from musicgenre import load
    from musicgenre.library.scan import scan

    emotify = folder / "emotify"
    rows = list(csv.DictReader(open(data / "emotify" / "manifest.csv")))
    for r in rows:
        dst = emotify / r["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / "emotify" / r["path"], dst)
        tag(dst, r["id3_genre"] or r["label"], r["artist"])
    partition = {}
    for split in ("train", "valid", "test"):
        for line in (ROOT / "src/musicgenre/data/splits/gtzan" / f"{split}_filtered.txt").read_text().split():
            partition[Path(line).stem] = split
    gtzan = folder / "gtzan"
    for src in sorted((data / "gtzan" / "genres").rglob("*.wav")) + sorted((data / "gtzan-extra").rglob("*.flac")):
        dst = gtzan / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        tag(dst, src.parent.name, f"partition {partition.get(src.stem, 'unlisted')}")
    clf = load()
    dbs = {}
    for name, root in (("emotify-magnatune", emotify), ("gtzan-partitions", gtzan)):
        db = folder / f"{name}.db"
        summary = scan(sorted(p for p in root.rglob("*") if p.is_file()), db, clf, workers=1)
        print(f"{name}: {summary.line()}")
        dbs[name] = db
    labels = folder / "emotify-labels.db"
    shutil.copy(dbs["emotify-magnatune"], labels)
    con = sqlite3.connect(labels)
    for r in rows:
        path = str((emotify / r["path"]).resolve())
        con.execute("UPDATE file_tags SET genres = ?, artist = ? WHERE path = ?",
                    (json.dumps([r["label"]]), r["artist_group"], path))
    con.commit()
    con.close()
    return {"emotify-magnatune": (dbs["emotify-magnatune"], 10), "emotify-labels": (labels, 20),
            "gtzan-partitions": (dbs["gtzan-partitions"], 5)}


def evaluate(db: Path, min_files: int) -> dict[str, Any]:
    from musicgenre.evaluation.folds import assign_folds
    from musicgenre.evaluation.metrics import classification_report
    from musicgenre.learn import fit
    from musicgenre.learn.report import SUSPECT_AT_MOST, contradicted, listed
    from musicgenre.learn.run import labelled
    from musicgenre.learn.vocabulary import build_vocabulary
    from musicgenre.learn.writer import backbone_identity
    from musicgenre.library.learning import read_stored as load_library
    from musicgenre.prediction import DEFAULT_MIN_CONFIDENCE

    lib = load_library(db, backbone_identity())
    vocab = build_vocabulary(lib.tracks, min_files=min_files, min_artists=3)  # the thresholds of the runs reported
    d = labelled(vocab, lib)
    labels, paths, y, windows = d.labels, d.paths, d.y, d.windows
    fold = assign_folds(y, d.groups, 5)
    out: dict[str, Any] = {"genres": {g.name: g.files for g in vocab.kept}, "files": len(paths),
                           "artists": len(set(d.groups)), "folds": int(fold.max()) + 1, "by_c": {}}
    for c in GRID:
        oof = fit.out_of_fold_logits(windows, y, fold, len(labels), c=c)
        t_file, probs = fit.crossfit_probabilities(windows.split(oof), y, fold)
        rep = classification_report(y, probs.argmax(1), labels)
        sure = probs.max(1) >= DEFAULT_MIN_CONFIDENCE
        right = probs.argmax(1) == y
        out["by_c"][str(c)] = {
            "top1": round(rep["accuracy"], 4), "macro_f1": round(rep["macro_f1"], 4),
            "nll": round(float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12))), 4),
            "window_top1": round(float((oof.argmax(1) == np.repeat(y, windows.counts)).mean()), 4),
            "confident_share": round(float(sure.mean()), 4),
            "confident_accuracy": round(float(right[sure].mean()), 4) if sure.any() else None,
            "window_temperature_median": round(float(np.median(t_file)), 3),
        }
        print(f"  C={c:g}: {out['by_c'][str(c)]}")
        if c == fit.C:  # what `learn` lists for its owner at the shipped C (docs/learn.md)
            judged = fit.judged(y, fold)
            wrong = contradicted(probs, y, judged, SUSPECT_AT_MOST)
            sus = listed([Path(p).name for p in paths], probs, y, labels, wrong)
            out["at_learn_c"] = {
                "c": c, "judged": int(judged.sum()), "suspects": sus,
                "left_out": int(contradicted(probs, y, judged, 1.0 - DEFAULT_MIN_CONFIDENCE).sum())}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="../shared/data")
    p.add_argument("-o", "--out", type=Path, default=RESULTS / "learn-regularisation.json")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"command": "python -m experiments.learn_regularisation", "grid": list(GRID)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (db, min_files) in build(args.data, Path(tmp)).items():
            print(name)
            results[name] = {"min_files": min_files, **evaluate(db, min_files)}
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
