"""``musicgenre learn``: from a scanned library to a model directory and a report.

``learn`` takes its ``LearnOptions`` and a reader of the library (``library.learning.read_stored``, given by the
adapter: learn never imports the library); it checks the options, then the library (clear errors, nothing
written), builds the vocabulary, validates out of fold (fewer folds for a small library), leaves out the files
whose tag the folds doubt, calibrates, fits the final head, and publishes the model
directory atomically: it is built in a hidden folder next to ``out`` and renamed into place only when complete
(the report is written just before).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_json
from ..errors import MusicGenreError, ParameterError
from ..evaluation import openset
from ..evaluation.calibration import fit_calibration, rounded
from ..evaluation.confusion import can_draw
from ..evaluation.folds import assign_folds
from ..genres.tracks import group_keys
from ..modeldir import CONFIG
from ..prediction import DEFAULT_MIN_CONFIDENCE
from ..scores import sigmoid
from ..stored import StoredLibrary
from . import fit
from .options import LearnOptions
from .report import (
    CONFUSION_PNG,
    SUSPECT_AT_MOST,
    LearnReport,
    LibraryCounts,
    contradicted,
    draw_confusion,
    listed,
    to_tag,
    validation,
    vocabulary_summary,
)
from .vocabulary import Vocabulary, build_vocabulary, grouping_leaks


@dataclass
class Learned:
    """What ``learn`` made: the report (also written with ``--report``), the card written and where."""

    report: LearnReport
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
    windows: fit.FileWindows


def labelled(vocab: Vocabulary, lib: StoredLibrary) -> Labelled:
    """The labelled files of ``vocab`` with their features from ``lib``."""
    labels = sorted(vocab.genres, key=lambda g: (g.casefold(), g))
    index = {g: i for i, g in enumerate(labels)}
    paths = sorted(vocab.labels)
    groups_of = group_keys(lib.tracks)
    return Labelled(labels, paths, np.array([index[vocab.labels[p]] for p in paths]), [groups_of[p] for p in paths],
                    fit.FileWindows.from_files([lib.features[p] for p in paths]))


def check_vocabulary(vocab: Vocabulary, lib: StoredLibrary, *, min_files: int, min_artists: int) -> None:
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


def learn(options: LearnOptions, *, read: Callable[[tuple[str, str]], StoredLibrary],
          say: Callable[[str], None] = lambda _: None) -> Learned:
    """The whole run (module docstring). ``read(backbone)``: the files, tags and features to learn from, computed by
    that backbone (``library.learning.read_stored`` of ``options.db``; the beets plugin: beets' genres over
    features stored in its database), called once the options are checked. ``say`` gets progress lines. Errors
    (``MusicGenreError``, ``ParameterError``) come before anything is written."""
    from .writer import backbone_identity, base_model, write_model_dir

    db, out = options.db, options.out
    target = prepare_output(out)
    if options.report is not None and not Path(options.report).resolve().parent.is_dir():
        raise ParameterError(f"{Path(options.report).parent}: no such folder for --report")
    base = base_model()  # the shipped graph the model reuses: checked before the work, read once
    backbone = backbone_identity()
    lib = read(backbone)
    if lib.backbone != backbone:
        raise MusicGenreError(f"features from {' '.join(lib.backbone)}; this musicgenre learns on {' '.join(backbone)}")
    say(f"{db}: {len(lib.tracks)} files with stored features")
    try:
        vocab = build_vocabulary(lib.tracks, aliases=options.aliases, min_files=options.min_files,
                                 min_artists=options.min_artists, parents=options.parents)
    except ValueError as e:
        raise ParameterError(str(e)) from None
    check_vocabulary(vocab, lib, min_files=options.min_files, min_artists=options.min_artists)
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
    fold = folds_or_error(y, groups, labels, options.folds)
    k = int(fold.max()) + 1
    if k < options.folds:
        largest = int(np.bincount(y).max())
        warnings.append(f"validated in {k} folds, not {options.folds}: the library has {len(set(groups))} artist "
                        f"groups and its largest genre {largest} files; its figures are less sure")
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
    t0, temps = fit_calibration([clip_logits[i] for i in kept], y[kept], aggregate_at="window",
                                max_windows=fit.MAX_WINDOWS)
    head = fit.fit_head(windows.take(kept), y[kept], len(labels))
    temperature, by_windows = float(f"{t0:.4g}"), rounded(temps)
    unlabelled = sorted(set(vocab.untagged) | set(vocab.ours))
    if unlabelled:
        pending = fit.FileWindows.from_files([lib.features[p] for p in unlabelled])
        pending_probs = fit.calibrated_file_scores(pending.split(head.logits(pending.x)), temperature, by_windows)
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
    counts = LibraryCounts(files=len(lib.tracks), labelled=len(paths), windows=int(len(windows.x)),
                           trained=len(kept), artists=len(set(groups)), ambiguous=len(vocab.ambiguous),
                           untagged=len(vocab.untagged), ours=len(vocab.ours), skipped=dict(lib.skipped))
    rep = LearnReport(
        model=str(out), date=date, database=str(db), library=counts, **vocabulary_summary(vocab),
        validation=val, open_set=open_set,
        suspects=listed(paths, probs, y, labels, contradicted(probs, y, judged, SUSPECT_AT_MOST)),
        left_out=listed(paths, probs, y, labels, ~keep), not_learned=not_learned,
        to_tag=to_tag(unlabelled, pending_probs, labels))
    picture = can_draw()
    if not picture:
        warnings.append("no confusion-matrix picture: matplotlib is not installed (pip install 'musicgenre[plots]')")
    extra = card_extra(rep, options, date=date, picture=picture)
    if detector is not None:
        extra = {"open_set": detector.to_dict(), **extra}

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        card = write_model_dir(tmp, head, labels, temperature=temperature, temperature_by_windows=by_windows,
                               name=target.name, extra=extra, checked_base=base)
        if picture:
            draw_confusion(val, tmp / CONFUSION_PNG)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: a model folder is as readable as any other
        if options.report is not None:
            write_json(options.report, rep.as_dict())
        publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"wrote {target}")
    return Learned(rep, target, card, warnings)


def folds_or_error(y: np.ndarray, groups: list[str], labels: list[str], folds: int) -> np.ndarray:
    """Each labelled file's fold (``evaluation.folds.assign_folds``: fewer folds for a small library), or a
    ``MusicGenreError`` naming the genres when no two folds can be made (every genre has one file)."""
    try:
        return assign_folds(y, groups, folds)
    except ValueError:
        single = ", ".join(labels[i] for i in np.flatnonzero(np.bincount(y, minlength=len(labels)) == 1)[:8])
        raise MusicGenreError(f"too few files to validate: every genre has one labelled file ({single}); tag more "
                              "files, or merge genres with --alias or --parent") from None


def card_extra(rep: LearnReport, options: LearnOptions, *, date: str, picture: bool) -> dict[str, Any]:
    """The card's own keys beside the typed ones: description, date, licence, training (data size, vocabulary:
    what was merged and dropped), metrics (per-genre validation precision, recall, n; the genres learned from
    few files with their recall interval; confusion matrix)."""
    from sklearn import __version__ as sklearn_version

    val = rep.validation
    lib = rep.library.as_dict()
    leaky = " LEAKY (folds could not keep artists apart: see metrics)" if val["leaky"] else ""
    return {
        "description": (f"Learned from the genre tags of a user's own library ({lib['labelled']} files, "
                        f"{len(rep.genres)} genres) by `musicgenre learn`: the shipped MSD MusiCNN backbone "
                        "(frozen, one pass per 3-s window), a logistic-regression head on its embedding and tag "
                        f"logits; out-of-fold top-1 {val['top1']:.3f} over {val['folds']} artist folds{leaky}"),
        "date": date,
        "licence": "head: learned from the owner's own files and tags; backbone: ISC (see "
                   "backbones/LICENSE-musicnn.txt)",
        "training": {
            "command": options.command or options.command_line(),
            "data": {k: lib[k] for k in ("files", "labelled", "trained", "windows", "artists", "ambiguous", "untagged",
                                         "ours")},
            "head": (f"multinomial logistic regression (scikit-learn {sklearn_version}, lbfgs, C={fit.C}, "
                     "class-balanced by file) on each stored window's embedding ++ tag logits, standardised; "
                     "every window carries its file's label; files whose tag the out-of-fold model doubted "
                     f"(>= {DEFAULT_MIN_CONFIDENCE} sure it is wrong) left out"),
            "calibration": ("window temperature and per-length temperatures (evaluation.calibration's fit, "
                            "aggregate_at=window) fitted on the out-of-fold window logits of the files trained on"),
            "min_files": options.min_files, "min_artists": options.min_artists, "aliases": dict(options.aliases),
            "parents": dict(options.parents),
            "vocabulary": {"genres": rep.genres, "merged": rep.merged, "dropped": rep.dropped},
            "not_learned": rep.not_learned,
        },
        "metrics": {
            "protocol": val["protocol"],
            "valid": {key: val[key] for key in ("leaky", "leaky_reasons", "folds", "groups", "files", "windows",
                                                "top1", "window_top1", "macro_f1", "ece", "confident", "per_genre",
                                                "few_files")
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
