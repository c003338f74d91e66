"""``musicgenre learn``: from a scanned library database to a model directory and a report.

``load_library`` reads what ``scan`` stored (``library.db.read_features``: each file's stored windows and its own
tags); ``learn`` checks it (clear errors, nothing written), builds the vocabulary, validates out of fold,
leaves out the files whose tag the folds doubt, calibrates, fits the final head, and publishes the model
directory atomically: it is built in a hidden folder next to ``out`` and renamed into place only when complete
(the report is written just before).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import openset
from .._io import write_json
from ..errors import MusicGenreError, ParameterError
from ..modeldir import CONFIG
from ..prediction import DEFAULT_MIN_CONFIDENCE
from ..scores import sigmoid
from . import fit
from .report import (
    CONFUSION_PNG,
    SUSPECT_AT_MOST,
    can_draw,
    contradicted,
    draw_confusion,
    listed,
    to_tag,
    validation,
    vocabulary_summary,
)
from .vocabulary import TrackTags, Vocabulary, build_vocabulary, group_keys, grouping_leaks


@dataclass
class Library:
    """What a library database holds for learning: every file with usable features (``tracks``, in path order;
    ``features[path]``: its stored windows, embedding ++ tag logits, float32) and the files left out
    (``skipped``: reason -> count)."""

    tracks: list[TrackTags]
    features: dict[str, np.ndarray]
    backbone: tuple[str, str]
    skipped: dict[str, int] = field(default_factory=dict)


def _rescan(db: Path) -> str:
    return f"rescan the library with this version: `musicgenre scan --db {db} DIR`"


def load_library(db: Path, backbone: tuple[str, str]) -> Library:
    """Every file of ``db`` with current features computed by ``backbone`` (name, version) and its own tags.
    MusicGenreError: no database, no classified file, no stored embeddings (rescan), or embeddings of another
    backbone only (rescan)."""
    from ..library.db import read_features, read_rows

    tagged: dict[str, str | None] = {}
    for row in read_rows(db):  # tracks.tagged: the genre our writer put into the file (never a label)
        tagged[row["path"]] = row.get("tagged")
    if not tagged:
        raise MusicGenreError(f"{db}: no classified files; scan the library first: "
                              f"`musicgenre scan --db {db} DIR`")
    tracks, features = [], {}
    others: dict[tuple[str, str], int] = {}
    no_tags = 0
    for r in read_features(db):
        if (r.backbone, r.backbone_version) != backbone:
            others[(r.backbone, r.backbone_version)] = others.get((r.backbone, r.backbone_version), 0) + 1
            continue
        if r.tag_logits is None or r.embedding is None or len(r.embedding) == 0:
            no_tags += 1
            continue
        t = r.tags
        tracks.append(TrackTags(
            path=r.path, genres=list(t.get("genres") or []), artist=t.get("artist"),
            album_artist=t.get("album_artist"), album=t.get("album"), musicbrainz_artist_id=t.get("mb_artist_id"),
            musicbrainz_album_id=t.get("mb_album_id"), genre_ours=bool(t.get("genre_ours")),
            db_tagged=tagged.get(r.path)))
        features[r.path] = fit.window_features(r.embedding, r.tag_logits)
    if not tracks:
        if others:
            found = ", ".join(f"{n} {v} ({c} files)" for (n, v), c in sorted(others.items()))
            raise MusicGenreError(f"{db}: its embeddings come from another backbone version: {found}; this "
                                  f"musicgenre learns on {backbone[0]} {backbone[1]}: {_rescan(db)}")
        raise MusicGenreError(f"{db}: no stored embeddings (scanned before musicgenre stored them, or with a model "
                              f"that gives none): {_rescan(db)}")
    skipped = {f"embeddings from {n} {v} (rescan to include them)": c for (n, v), c in sorted(others.items())}
    if no_tags:
        skipped["no tag logits stored"] = no_tags
    return Library(tracks, features, backbone, skipped)


@dataclass
class Learned:
    """What ``learn`` made: the report (also written with ``--report``), the card written and where."""

    report: dict[str, Any]
    out: Path
    card: Any
    warnings: list[str]


@dataclass
class Labelled:
    """The files a model learns from: its genres (the owner's names, in a fixed order), the labelled paths (sorted),
    their label indices ``y``, artist groups and stored windows."""

    labels: list[str]
    paths: list[str]
    y: np.ndarray
    groups: list[str]
    windows: fit.WindowSet


def labelled(vocab: Vocabulary, lib: Library) -> Labelled:
    """The labelled files of ``vocab`` with their features from ``lib``."""
    labels = sorted(vocab.genres, key=lambda g: (g.casefold(), g))
    index = {g: i for i, g in enumerate(labels)}
    paths = sorted(vocab.labels)
    groups_of = group_keys(lib.tracks)
    return Labelled(labels, paths, np.array([index[vocab.labels[p]] for p in paths]), [groups_of[p] for p in paths],
                    fit.WindowSet.from_files([lib.features[p] for p in paths]))


def check_vocabulary(vocab: Vocabulary, lib: Library, *, min_files: int, min_artists: int) -> None:
    """The clear errors before any work: no genre tags at all, fewer than two genres left."""
    n = len(lib.tracks)
    if len(vocab.untagged) + len(vocab.ours) == n:
        ours = f" ({len(vocab.ours)} carry only genres musicgenre wrote, never used)" if vocab.ours else ""
        raise MusicGenreError(f"no genre tags: none of the {n} files with stored features carries a genre tag of "
                              f"its owner's{ours}; tag some files, rescan, then learn")
    if len(vocab.kept) < 2:
        kept = f"only {vocab.kept[0].name} is" if vocab.kept else "no genre is"
        why = "; ".join(f"{d.genre}: {d.reason}" for d in vocab.dropped[:8])
        more = f"; and {len(vocab.dropped) - 8} more" if len(vocab.dropped) > 8 else ""
        raise MusicGenreError(f"fewer than two genres left: {kept} frequent enough (--min-files {min_files}, "
                              f"--min-artists {min_artists}); dropped: {why}{more}; lower the thresholds or merge "
                              "genres with --alias")


def learn(db: Path, out: Path, *, report_path: Path | None = None, aliases: Mapping[str, str] | None = None,
          min_files: int = 20, min_artists: int = 3, folds: int = 5, command: str = "musicgenre learn",
          say: Callable[[str], None] = lambda _: None, library: Library | None = None,
          parents: Mapping[str, str] | None = None) -> Learned:
    """The whole run (module docstring). ``say`` gets progress lines. Errors (``MusicGenreError``,
    ``ParameterError``) come before anything is written. ``library``: the files, tags and features to learn from
    when they are not ``db``'s own (the beets plugin: beets' genres over features stored in ``db``); they must
    come from the shipped backbone."""
    from .writer import backbone_identity, base_model, write_model_dir

    if folds < 2:
        raise ParameterError("--folds must be at least 2")
    target = prepare_output(out)
    if report_path is not None and not Path(report_path).resolve().parent.is_dir():
        raise ParameterError(f"{Path(report_path).parent}: no such folder for --report")
    base = base_model()  # the shipped graph the model reuses: checked before the work, read once
    backbone = backbone_identity()
    lib = load_library(db, backbone) if library is None else library
    if lib.backbone != backbone:
        raise MusicGenreError(f"features from {' '.join(lib.backbone)}; this musicgenre learns on {' '.join(backbone)}")
    say(f"{db}: {len(lib.tracks)} files with stored features")
    try:
        vocab = build_vocabulary(lib.tracks, aliases=aliases, min_files=min_files, min_artists=min_artists,
                                 parents=parents)
    except ValueError as e:
        raise ParameterError(str(e)) from None
    check_vocabulary(vocab, lib, min_files=min_files, min_artists=min_artists)
    data = labelled(vocab, lib)
    labels, paths, y, groups, windows = data.labels, data.paths, data.y, data.groups, data.windows
    leak = grouping_leaks(lib.tracks, vocab.labels)
    say(f"{len(paths)} labelled files ({len(windows.x)} windows) in {len(labels)} genres, "
        f"{len(set(groups))} artist groups; {len(vocab.dropped)} genres dropped, {len(vocab.ambiguous)} files with "
        "several genres left out")
    warnings = []
    if leak.leaky:
        warnings.append("validation figures are LEAKY (the folds could not keep artists apart: they do not say how "
                        "the model does on artists it has not heard): " + "; ".join(leak.reasons)
                        + "; tag artists (or MusicBrainz ids) so the folds can keep them apart")

    if len(set(groups)) < 2:
        raise MusicGenreError("every labelled file is by one artist (or in one folder): validation needs at least "
                              "two artist groups; tag the artists")
    fold = fit.assign_folds(y, groups, folds)
    k = int(fold.max()) + 1
    oof = fit.out_of_fold_logits(windows, y, fold, len(labels), say=say)
    clip_logits = windows.split(oof)
    _, probs = fit.crossfit_probabilities(clip_logits, y, fold)
    judged = fit.judged(y, fold)
    val = validation(probs, y, oof, np.repeat(y, windows.counts), labels, min_confidence=DEFAULT_MIN_CONFIDENCE,
                     folds=k, groups=len(set(groups)), leak=leak, judged=judged)
    # The final head, its calibration and the "unknown" detector learn from the files whose tag the folds did not
    # doubt (cleaned training, as cleanlab's CleanLearning): a mis-tag in a genre of a few files would redraw it. A
    # genre whose every tag is doubted is not learned (the head never calls it): its tags mostly sit on other music.
    keep = ~contradicted(probs, y, judged, 1.0 - DEFAULT_MIN_CONFIDENCE)
    kept = np.flatnonzero(keep)
    why = "the folds doubt every one of its tags (see left_out): the model never calls it"
    not_learned: list[dict[str, Any]] = [{"genre": g, "files": int((y == i).sum()), "reason": why}
                                         for i, g in enumerate(labels) if not keep[y == i].any()]
    if len(labels) - len(not_learned) < 2:
        raise MusicGenreError("fewer than two genres left to learn: the out-of-fold model doubts every tag of "
                              + ", ".join(d["genre"] for d in not_learned) + "; check those tags, then learn again")
    say(f"calibrating out of fold; final fit on {len(kept)} of {len(paths)} labelled files "
        f"({len(paths) - len(kept)} with a doubtful tag left out)")
    t0, temps = fit.fit_window_calibration([clip_logits[i] for i in kept], y[kept])
    head = fit.fit_head(windows.take(kept), y[kept], len(labels))
    temperature, by_windows = float(f"{t0:.4g}"), fit.rounded(temps)
    unlabelled = sorted(set(vocab.untagged) | set(vocab.ours))
    if unlabelled:
        pending = fit.WindowSet.from_files([lib.features[p] for p in unlabelled])
        pending_probs = fit.clip_probabilities(pending.split(head.logits(pending.x)), temperature, by_windows)
    else:
        pending_probs = np.zeros((0, len(labels)), np.float32)

    # the "unknown" detector (openset.py) from the labelled files' stored tag logits (the last columns of their
    # features); its figures use the out-of-fold scores, its thresholds were fitted on these same files
    tag_names = list(base[1].tags)
    tag_probs = [sigmoid(lib.features[p][:, -len(tag_names):]) for p in paths] if tag_names else []
    detector = openset.fit([tag_probs[i] for i in kept], y[kept].tolist(), tag_names, labels) if tag_names else None
    open_set = {"method": None if detector is None else detector.to_dict(),
                "library": openset.report(detector, list(zip(clip_logits, tag_probs, y.tolist())), tag_names,
                                          temperature=temperature, by_windows=by_windows,
                                          min_confidence=DEFAULT_MIN_CONFIDENCE, lengths=(1, None)),
                "note": "in-vocabulary files only (a library holds no genre it lacks); the thresholds were fitted on "
                        "these files, so the unknown share is about the detector's quantile by construction"}
    date = datetime.now(timezone.utc).date().isoformat()
    rep: dict[str, Any] = {
        "model": str(out), "date": date, "database": str(db),
        "library": {"files": len(lib.tracks), "labelled": len(paths), "windows": int(len(windows.x)),
                    "trained": len(kept), "artists": len(set(groups)), "ambiguous": len(vocab.ambiguous),
                    "untagged": len(vocab.untagged),
                    "ours": len(vocab.ours), **({"skipped": lib.skipped} if lib.skipped else {})},
        **vocabulary_summary(vocab),
        "validation": val,
        "open_set": open_set,
        "suspects": listed(paths, probs, y, labels, contradicted(probs, y, judged, SUSPECT_AT_MOST)),
        "left_out": listed(paths, probs, y, labels, ~keep),
        "not_learned": not_learned,
        "to_tag": to_tag(unlabelled, pending_probs, labels),
    }
    picture = can_draw()
    if not picture:
        warnings.append("no confusion-matrix picture: matplotlib is not installed (pip install 'musicgenre[plots]')")
    extra = card_extra(rep, vocab, date=date, command=command, min_files=min_files, min_artists=min_artists,
                       aliases=aliases, parents=parents, picture=picture)
    if detector is not None:
        extra = {"open_set": detector.to_dict(), **extra}

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        card = write_model_dir(tmp, head, labels, temperature=temperature, temperature_by_windows=by_windows,
                               name=target.name, extra=extra, checked_base=base)
        if picture:
            draw_confusion(val, tmp / CONFUSION_PNG)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: a model folder is as readable as any other
        if report_path is not None:
            write_json(report_path, rep)
        publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"wrote {target}")
    return Learned(rep, target, card, warnings)


def card_extra(rep: dict[str, Any], vocab: Vocabulary, *, date: str, command: str, min_files: int,
               min_artists: int, aliases: Mapping[str, str] | None, parents: Mapping[str, str] | None,
               picture: bool) -> dict[str, Any]:
    """The card's own keys beside the typed ones: description, date, licence, training (data size, vocabulary:
    what was merged and dropped), metrics (per-genre validation precision, recall, n; confusion matrix)."""
    from sklearn import __version__ as sklearn_version

    val = rep["validation"]
    lib = rep["library"]
    leaky = " LEAKY (folds could not keep artists apart: see metrics)" if val["leaky"] else ""
    return {
        "description": (f"Learned from the genre tags of a user's own library ({lib['labelled']} files, "
                        f"{len(rep['genres'])} genres) by `musicgenre learn`: the shipped MSD MusiCNN backbone "
                        "(frozen, one pass per 3-s window), a logistic-regression head on its embedding and tag "
                        f"logits; out-of-fold top-1 {val['top1']:.3f} over {val['folds']} artist folds{leaky}"),
        "date": date,
        "licence": "head: learned from the owner's own files and tags; backbone: ISC (see "
                   "backbones/LICENSE-musicnn.txt)",
        "training": {
            "command": command,
            "data": {k: lib[k] for k in ("files", "labelled", "trained", "windows", "artists", "ambiguous", "untagged",
                                         "ours")},
            "head": (f"multinomial logistic regression (scikit-learn {sklearn_version}, lbfgs, C={fit.C}, "
                     "class-balanced by file) on each stored window's embedding ++ tag logits, standardised; "
                     "every window carries its file's label; files whose tag the out-of-fold model doubted "
                     f"(>= {DEFAULT_MIN_CONFIDENCE} sure it is wrong) left out"),
            "calibration": ("window temperature and per-length temperatures (train.calibrate's fit, "
                            "aggregate_at=window) fitted on the out-of-fold window logits of the files trained on"),
            "min_files": min_files, "min_artists": min_artists, "aliases": dict(aliases or {}),
            "parents": dict(parents or {}),
            "vocabulary": {"genres": rep["genres"], "merged": rep["merged"], "dropped": rep["dropped"]},
            "not_learned": rep["not_learned"],
        },
        "metrics": {
            "protocol": val["protocol"],
            "valid": {key: val[key] for key in ("leaky", "leaky_reasons", "folds", "groups", "files", "windows",
                                                "top1", "window_top1", "macro_f1", "ece", "confident", "per_genre")
                      if key in val},
            "confusion_matrix": CONFUSION_PNG if picture else
            "not drawn: matplotlib is not installed (pip install 'musicgenre[plots]')",
            "confusion": val["confusion"],
        },
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def prepare_output(out: Path) -> Path:
    """The model directory to (re)place: refused when it is a file, or a non-empty folder that is not a model
    directory (never clobber other files). Its parent must exist."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CONFIG).is_file():
        raise ParameterError(f"{out}: a non-empty folder that is not a model directory; choose another -o")
    if not out.resolve().parent.is_dir():
        raise ParameterError(f"{out.parent}: no such folder")
    return out.resolve()


def publish(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` to ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
