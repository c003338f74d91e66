"""The shipped model's recipe: a genre head on one frozen MusiCNN backbone, trained on cached
window features of GTZAN + Emotify (clean and degraded copies), calibrated on validation clips.

``musicgenre train --recipe recipes/musicnn-genre.toml -o DIR`` runs :func:`build`:

1. **validation run**: train the head on the ``train`` partitions, score the ``valid`` partitions
   exactly as ``predict`` does (softmax per window, mean over non-silent windows), fit the
   temperature on those clips;
2. **final run**: same recipe, trained on ``train`` + ``valid``, saved with that temperature.

The figures in the model's config.json are the validation run's (artist-disjoint); the final
model has seen the validation clips, so they are not re-measured on it.

This module imports no torch: reading a recipe and selecting its corpus (``musicgenre evaluate
--recipe``) work in the light install. Fitting a head is :mod:`musicgenre.train.head`.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import write_json
from ..data.corpus import Clip, read_emotify_clips, read_gtzan_clips
from ..errors import ParameterError
from ..evaluation.calibration import (
    crossfit_temperatures,
    fit_calibration,
    fit_temperature,
    length_report,
    run_probabilities,
)
from ..evaluation.folds import assign_folds
from ..evaluation.metrics import ece, full_report
from ..features import FeatureConfig
from ..prediction import DEFAULT_MIN_CONFIDENCE
from ..scores import clip_scores, loud_windows, recalibrate, softmax, window_count_temperature

if TYPE_CHECKING:
    import torch

    from ..openset import OpenSet
    from .embed import ClipFeatures

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the shipped model (read from a TOML file)."""

    name: str
    labels: tuple[str, ...]
    backbone: str = "MSD_musicnn"
    features: str = "embedding+tags"  # parts of models.genre.FEATURE_PARTS joined with "+"
    level_db: float | None = None  # the mel level before the backbone (FeatureConfig.level_db); None: as decoded
    level_span: str = "window"  # FeatureConfig.level_span: "window" or "track"
    gtzan: tuple[str, ...] = ()
    emotify: str = ""
    emotify_labels: dict[str, str] = field(default_factory=dict)  # Emotify label -> ours ("" leaves it out)
    conditions: tuple[str, ...] = ("clean",)  # training copies from the degradation suite
    crops: tuple[float, ...] = (0.0,)  # training windows cut from these offsets (s); predict's grid is 0
    # conditions the validation run scores the valid clips under (label agreement with the clean copy, top-1)
    robustness: tuple[str, ...] = ()
    # Emotify labels left out of the vocabulary whose clips measure the "unknown" detector (openset.py): never
    # trained on, never fitted on; the figures are those of their valid partition (train partition beside)
    unknown_genres: tuple[str, ...] = ()
    hidden: int = 128
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-3
    balance: str = "class"  # "class": every label weighs the same in the loss; "none"
    mixup: float = 0.0  # Beta(a, a) mixup of window features; 0 = off
    members: int = 1  # heads trained from seeds seed, seed+1, ...; their logits are averaged
    seed: int = 0
    gate: str = ""  # a label decided by a gate head, the others keeping a head of their own (models.genre.GatedHeads)
    # "clip": one temperature fitted on whole clips, used at every length (models up to 2.2); "length": the
    # window temperature fitted on single windows, then one per number of windows (calibrate.fit_calibration)
    calibration: str = "clip"
    # the [backbone] section: empty (the backbone stays frozen) or train = "distill" with its settings
    # (train.distill.DistillConfig): a student backbone is distilled first and the heads read its features
    distill: dict[str, Any] = field(default_factory=dict)
    student: str = ""  # folder of a distilled student (train.distill) whose features the heads read instead
    cache: str = ".cache/features"
    version: str = "2.0"
    description: str = ""

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> Recipe:
        """Read a TOML recipe (sections ``model``, ``data``, ``head`` flattened); paths are relative to the
        file; an unknown key is a ``ParameterError``."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ParameterError(f"{path}: cannot read recipe ({e})") from None
        flat: dict[str, Any] = {}
        for section in ("model", "data", "head"):
            flat.update(raw.pop(section, {}))
        backbone = raw.pop("backbone", None) if isinstance(raw.get("backbone"), dict) else None
        flat.update(raw)
        if backbone is not None:
            how = backbone.get("train", "frozen")
            if how not in ("frozen", "distill"):
                raise ParameterError(f'{path}: [backbone] train = {how!r}: use "distill" or "frozen"')
            if how == "distill":
                flat["distill"] = dict(backbone)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ParameterError(f"{path}: unknown recipe keys {', '.join(unknown)}")
        base = path.parent
        for key in ("gtzan",):
            flat[key] = tuple(str((base / p).resolve()) if not Path(p).is_absolute() else p for p in flat.get(key, ()))
        for key in ("emotify", "cache", "student"):  # relative to the recipe file, like gtzan
            if flat.get(key) and not Path(flat[key]).is_absolute():
                flat[key] = str((base / flat[key]).resolve())
        for key in ("labels", "conditions", "crops", "robustness", "unknown_genres"):
            if key in flat:
                flat[key] = tuple(flat[key])
        flat.update(overrides)
        try:
            return cls(**flat)
        except ParameterError as e:
            raise ParameterError(f"{path}: {e}") from None

    def __post_init__(self) -> None:
        if self.gate and self.gate not in self.labels:
            raise ParameterError(f"gate {self.gate!r} is not one of the labels")

    @property
    def feature_config(self) -> FeatureConfig:
        """The windows the head's backbone sees: the genre architecture's, at the recipe's ``level_db``."""
        from ..models import get_architecture

        try:
            return dataclasses.replace(get_architecture("musicnn_genre").features, level_db=self.level_db,
                                       level_span=self.level_span)  # type: ignore[arg-type]  # checked there
        except ValueError as e:
            raise ParameterError(str(e)) from None

    @property
    def feature_backbone(self) -> str:
        """The name the window features are cached under: the backbone's, or its distilled student's."""
        if not self.student:
            return self.backbone
        import json

        try:
            return f"{self.backbone}~student-{json.loads((Path(self.student) / 'student.json').read_text())['id']}"
        except (OSError, ValueError, KeyError) as e:
            raise ParameterError(f"{self.student}: not a distilled student ({e})") from None

    def clips(self) -> list[Clip]:
        """The corpus with labels in our vocabulary; clips outside the vocabulary are left out."""
        clips = read_gtzan_clips([Path(p) for p in self.gtzan]) if self.gtzan else []
        if self.emotify:
            clips += read_emotify_clips(Path(self.emotify), self.emotify_labels)
        return [c for c in clips if c.label in self.labels]


def missing_data(recipe: Recipe) -> list[str]:
    """The recipe's data folders that do not exist."""
    return [p for p in (*recipe.gtzan, recipe.emotify) if p and not Path(p).is_dir()]


@dataclass(frozen=True)
class WindowSet:
    """Window features of a set of clips, with each window's clip index."""

    x: np.ndarray  # (windows, d)
    y: np.ndarray  # (windows,) label index
    clip: np.ndarray  # (windows,) index into clips
    clips: list[Clip]


def head_input(f: ClipFeatures, features: str) -> np.ndarray:
    """A head's input per window: the cached feature parts named by ``features`` ("embedding+tags"), side by side."""
    from ..models.genre import feature_parts

    try:
        parts = feature_parts(features)
    except ValueError as e:
        raise ParameterError(str(e)) from None
    arrays = {"pool": f.pool, "embedding": f.emb, "tags": f.tags}
    return np.concatenate([arrays[p] for p in parts], axis=1)


def features_of(recipe: Recipe, clips: list[Clip], condition: str, offset: float = 0.0) -> dict[str, ClipFeatures]:
    """``embed.extract`` for the recipe: its backbone's cached features, or its student's (``recipe.student``)."""
    from .embed import extract

    kw: dict[str, Any] = {}
    if recipe.student:
        from .distill import student_source

        kw["model"], kw["windows"] = student_source(recipe)
    return extract(clips, backbone=recipe.feature_backbone, condition=condition, cache=Path(recipe.cache),
                   offset=offset, cfg=recipe.feature_config, **kw)


def assemble(recipe: Recipe, clips: list[Clip], conditions: tuple[str, ...],
             crops: tuple[float, ...] = (0.0,)) -> WindowSet:
    """Stack the cached non-silent window features of ``clips`` under each condition and crop offset
    (computing what is missing); with the default crop, the windows ``predict`` averages over."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    cs: list[np.ndarray] = []
    kept: list[Clip] = []
    keys = [(c, o) for c in conditions for o in crops]  # a condition listed twice weighs twice
    feats = {(c, o): features_of(recipe, clips, c, o) for c, o in dict.fromkeys(keys)}
    for clip in clips:
        for key in keys:
            f = feats[key].get(clip.key)
            if f is None:
                continue
            keep = loud_windows(f.peaks)
            if not keep.any():
                continue
            if not kept or kept[-1] is not clip:
                kept.append(clip)
            xs.append(head_input(f, recipe.features)[keep])
            ys.append(np.full(int(keep.sum()), recipe.labels.index(clip.label)))
            cs.append(np.full(int(keep.sum()), len(kept) - 1))
    if not xs:
        raise ParameterError("no clip features: is the data where the recipe says?")
    return WindowSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(cs), kept)


def condition_features(recipe: Recipe, clips: list[Clip], condition: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every window of ``clips`` under ``condition``, silent ones included: clip key -> (head input, peaks)."""
    feats = features_of(recipe, clips, condition)
    return {key: (head_input(f, recipe.features), f.peaks) for key, f in feats.items()}


def training_set(recipe: Recipe, clips: list[Clip]) -> WindowSet:
    """The windows a head trains on: every condition and crop of the recipe."""
    return assemble(recipe, clips, recipe.conditions, recipe.crops)


def clip_probabilities(logits: np.ndarray, data: WindowSet, temperature: float = 1.0) -> np.ndarray:
    """``predict``'s own softmax and aggregation (``pipeline.clip_scores``) for every clip of ``data``, whose
    windows are all non-silent (``assemble`` keeps only those): (windows, L) logits -> (clips, L)."""
    probs = softmax(logits, temperature)
    return np.stack([clip_scores(probs[data.clip == i], np.ones(int((data.clip == i).sum()), bool))
                     for i in range(len(data.clips))])


# A trained head as the benchmarks see it: clips' window features -> (temperature -> (clips, L) probabilities,
# aggregated as ``predict`` does). The features are run through the head once per call, not once per temperature.
Scorer = Callable[[WindowSet], Callable[[float], np.ndarray]]


def head_scorer(head: torch.nn.Module) -> Scorer:
    """A trained head as a :data:`Scorer`."""
    from .head import window_logits

    def score(data: WindowSet) -> Callable[[float], np.ndarray]:
        logits = window_logits(head, data)
        return lambda t: clip_probabilities(logits, data, t)

    return score


def evaluate_clips(recipe: Recipe, probs: np.ndarray, data: WindowSet) -> dict[str, Any]:
    """Clip-level report (with n, intervals by artist group, ECE) of the clips' probabilities ``probs``."""
    y = np.array([recipe.labels.index(c.label) for c in data.clips])
    groups = np.array([c.group for c in data.clips])
    rep = full_report(y, probs, list(recipe.labels), groups=groups)
    rep["sources"] = sorted({c.source for c in data.clips})
    return rep


def validation_run(recipe: Recipe, *, train_on: tuple[str, ...] = ("train",), valid_on: str = "valid",
                   train_sources: tuple[str, ...] = ("gtzan", "emotify"),
                   valid_sources: tuple[str, ...] = ("gtzan", "emotify"),
                   fit: Callable[[Recipe, WindowSet], Scorer] | None = None) -> dict[str, Any]:
    """Train on ``train_on`` partitions, calibrate and report on ``valid_on`` (per source and pooled).

    ``fit`` trains something other than the recipe's head (the benchmarks' variants); the result's ``score``
    is the trained model as a ``Scorer``, ``temperature`` the one fitted on the valid clips."""
    if recipe.calibration not in CALIBRATIONS:  # before any training
        raise ParameterError(f"unknown calibration {recipe.calibration!r}: use {' or '.join(CALIBRATIONS)}")
    clips = recipe.clips()
    tr = training_set(recipe, [c for c in clips if c.split in train_on and c.source in train_sources])
    va_clips = [c for c in clips if c.split == valid_on and c.source in valid_sources]
    va = assemble(recipe, va_clips, ("clean",))
    out: dict[str, Any] = {"train_clips": len(tr.clips), "train_windows": len(tr.x)}
    if fit is None:
        from .head import train_head

        head, losses = train_head(recipe, tr)
        score = head_scorer(head)
        out["final_train_loss"] = losses[-1]
        out["head"] = head
    else:
        score = fit(recipe, tr)
    y = np.array([recipe.labels.index(c.label) for c in va.clips])
    out["temperature"] = temperature = fit_temperature(score(va), y)
    out["score"] = score
    if fit is None:
        out.update(length_calibration(recipe, head, va))
        temperature = out["temperature"]
    for source in valid_sources:
        part = [c for c in va.clips if c.source == source]
        if part:
            sub = assemble(recipe, part, ("clean",))
            at = score(sub)
            counts = np.bincount(sub.clip, minlength=len(sub.clips))
            out[source] = evaluate_clips(recipe, np.stack([recalibrate(p, window_count_temperature(
                out.get("temperature_by_windows", ()), int(k))) for p, k in zip(at(temperature), counts)]), sub)
            y_sub = np.array([recipe.labels.index(c.label) for c in sub.clips])
            out[source]["uncalibrated_ece"] = ece(at(1.0), y_sub)
            if "window_logits" in out:
                keep = [i for i, c in enumerate(va.clips) if c.source == source]
                out[source]["window_accuracy"] = round(float(np.mean(np.concatenate(
                    [out["window_logits"][i].argmax(1) == y[i] for i in keep]))), 4)
                out[source]["lengths"] = length_report(
                    [out["window_logits"][i] for i in keep], y[keep], out["crossfit"][0][keep],
                    out["crossfit"][1][keep], min_confidence=DEFAULT_MIN_CONFIDENCE)
    if fit is None and recipe.robustness:
        from .head import head_function
        from .robustness import robustness

        out["robustness"] = robustness(lambda c: condition_features(recipe, va_clips, c), head_function(head),
                                       {c.key: recipe.labels.index(c.label) for c in va_clips}, recipe.robustness,
                                       temperature=out["temperature"],
                                       by_windows=out.get("temperature_by_windows", ()),
                                       min_confidence=DEFAULT_MIN_CONFIDENCE)
    if fit is None and "tags" in recipe.features:
        out["open_set"] = open_set_run(recipe, head, out["temperature"], out.get("temperature_by_windows", ()),
                                       [c for c in clips if c.split in train_on and c.source in train_sources],
                                       va_clips)
    if "window_logits" in out:  # (window_logits and crossfit stay for the benchmarks; not saved)
        out["lengths"] = length_report(out["window_logits"], y, *out["crossfit"], min_confidence=DEFAULT_MIN_CONFIDENCE)
        out["valid_labels"] = y
    return out


def tag_names(recipe: Recipe) -> list[str]:
    """The backbone's tag vocabulary (its card's labels)."""
    from ..modeldir import read, weights_dir

    return list(read(weights_dir() / "backbones" / recipe.backbone).labels)


def clean_windows(recipe: Recipe, clips: list[Clip]) -> list[tuple[Clip, ClipFeatures]]:
    """The clean cached features of ``clips`` that have a non-silent window, non-silent windows only."""
    feats = features_of(recipe, clips, "clean")
    out = []
    for c in clips:
        f = feats.get(c.key)
        if f is not None and loud_windows(f.peaks).any():
            keep = loud_windows(f.peaks)
            out.append((c, dataclasses.replace(f, emb=f.emb[keep], tags=f.tags[keep], peaks=f.peaks[keep],
                                               pool=f.pool[keep])))
    return out


def fit_open_set(recipe: Recipe, clips: list[Clip]) -> OpenSet | None:
    """The "unknown" detector fitted on the clean in-vocabulary ``clips`` (openset.fit)."""
    from ..evaluation.openset import fit
    from ..scores import sigmoid

    rows = clean_windows(recipe, clips)
    return fit([sigmoid(f.tags) for _, f in rows], [recipe.labels.index(c.label) for c, _ in rows],
               tag_names(recipe), recipe.labels)


def unknown_clips(recipe: Recipe) -> list[Clip]:
    """Emotify clips of the recipe's ``unknown_genres`` (label "", split kept)."""
    if not recipe.emotify or not recipe.unknown_genres:
        return []
    wanted = set(recipe.unknown_genres)
    return [dataclasses.replace(c, label="") for c in read_emotify_clips(Path(recipe.emotify), {})
            if c.label in wanted]


def open_set_run(recipe: Recipe, head: torch.nn.Module, temperature: float, by_windows: list[float] | tuple[float, ...],
                 train_clips: list[Clip], valid_clips: list[Clip]) -> dict[str, Any]:
    """The detector fitted on the training clips, reported on the valid clips and the ``unknown_genres``
    (their valid partition; their train partition beside it, as a second look)."""
    from ..evaluation.openset import report
    from ..scores import sigmoid
    from .head import head_function

    detector = fit_open_set(recipe, train_clips)
    run = head_function(head)
    names = tag_names(recipe)

    def rows(clips: list[Clip]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        return [(run(head_input(f, recipe.features)), sigmoid(f.tags),
                 recipe.labels.index(c.label) if c.label else -1) for c, f in clean_windows(recipe, clips)]

    unknown = unknown_clips(recipe)
    args: dict[str, Any] = {"temperature": temperature, "by_windows": by_windows,
                            "min_confidence": DEFAULT_MIN_CONFIDENCE}
    out: dict[str, Any] = {"method": None if detector is None else detector.to_dict(),
                           "valid": report(detector, rows(valid_clips + [c for c in unknown if c.split == "valid"]),
                                           names, **args)}
    if any(c.split == "train" for c in unknown):
        out["unknown_genres_train_partition"] = report(
            detector, rows([c for c in unknown if c.split == "train"]), names, **args)
    out["unknown_genres"] = list(recipe.unknown_genres)
    return out


CALIBRATIONS = ("clip", "length")  # the recipe's ``calibration`` values (see Recipe)

# validation_run's outputs for the benchmarks only (a function, arrays), not written to validation.json
UNSAVED = ("score", "head", "window_logits", "crossfit", "valid_labels")


CALIBRATION_FOLDS = 5  # out-of-fold calibration for the per-length report, by artist (evaluation.folds)


def length_calibration(recipe: Recipe, head: torch.nn.Module, va: WindowSet) -> dict[str, Any]:
    """The recipe's calibration from the valid clips' window logits: the window temperature and, for
    ``calibration = "length"``, the temperature per number of windows; plus out-of-fold temperatures (folds by
    artist) for the per-length report, so that report does not grade the calibration on its own fitting clips."""
    from .head import window_logits

    logits = window_logits(head, va)
    clip_logits = [logits[va.clip == i] for i in range(len(va.clips))]
    y = np.array([recipe.labels.index(c.label) for c in va.clips])
    fold = assign_folds(y, [f"{c.source}/{c.group}" for c in va.clips], CALIBRATION_FOLDS)
    if recipe.calibration == "clip":
        t0 = fit_temperature(lambda t: run_probabilities(clip_logits, None, t)[0], y)
        temps: list[float] = []
        folds = crossfit_temperatures(clip_logits, y, fold, aggregate_at="clip")
        folds = (folds[0], np.ones_like(folds[1]))  # one temperature at every length
    else:
        t0, temps = fit_calibration(clip_logits, y, aggregate_at="window")
        folds = crossfit_temperatures(clip_logits, y, fold, aggregate_at="window")
    return {"temperature": t0, "temperature_by_windows": [round(t, 4) for t in temps],
            "window_logits": clip_logits, "crossfit": folds}


def build(recipe: Recipe, out: Path, *, recipe_file: str = "RECIPE") -> dict[str, Any]:
    """Validation run (figures, temperature), then the final model on train + valid, saved to ``out``."""
    from ..modeldir import from_dict
    from ..models.genre import MusicnnGenre
    from .head import train_head

    missing = missing_data(recipe)
    if missing:
        raise ParameterError(f"recipe data not found: {', '.join(missing)}")
    if recipe.distill and not recipe.student:  # [backbone] train = "distill": the student first (resumable)
        from .distill import train_student

        recipe = dataclasses.replace(recipe, student=str(train_student(recipe)))
    val = validation_run(recipe)
    if recipe.student:
        return _student_report(recipe, val, out)
    clips = [c for c in recipe.clips() if c.split in ("train", "valid")]
    final = training_set(recipe, clips)
    head, _ = train_head(recipe, final)
    model_args: dict[str, Any] = {
        "n_labels": len(recipe.labels), "backbone": recipe.backbone, "hidden": recipe.hidden,
        "dropout": recipe.dropout, "features": recipe.features,
        **({"members": recipe.members} if recipe.members > 1 else {}),  # one head keeps 2.0's weight names
        **({"gate_index": recipe.labels.index(recipe.gate)} if recipe.gate else {}),
    }
    model = MusicnnGenre(**model_args)  # only its head's weights are saved: the backbone stays unfilled
    model.head.load_state_dict(head.state_dict())
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(model.external_prefixes)}
    brief: dict[str, Any] = {s: {k: val[s][k] for k in ("n", "accuracy", "window_accuracy", "top3_accuracy",
                                                         "macro_f1", "ece", "ci95", "lengths") if k in val[s]}
                             for s in ("gtzan", "emotify") if s in val}
    if "lengths" in val:
        brief["all"] = {"lengths": val["lengths"]}
    if "robustness" in val:
        brief["all"] = {**brief.get("all", {}), "robustness": val["robustness"]}
    if "open_set" in val:
        brief["all"] = {**brief.get("all", {}), "open_set": val["open_set"]}
    detector = fit_open_set(recipe, clips) if "tags" in recipe.features else None
    counts: dict[str, int] = {}
    for c in final.clips:
        counts[f"{c.source}/{c.label}"] = counts.get(f"{c.source}/{c.label}", 0) + 1
    config = {
        "name": recipe.name,
        "version": recipe.version,
        "architecture": "musicnn_genre",
        "model_args": model_args,
        "labels": list(recipe.labels),
        "features": recipe.feature_config.to_dict(),
        "temperature": round(val["temperature"], 4),
        **({"temperature_by_windows": val["temperature_by_windows"]} if val.get("temperature_by_windows") else {}),
        **({"open_set": detector.to_dict()} if detector is not None else {}),
        "description": recipe.description,
        "licence": "head: same as musicgenre; backbone: ISC (see backbones/LICENSE-musicnn.txt)",
        "training": {"command": f"musicgenre train --recipe {recipe_file} -o DIR",
                     "recipe": {k: v for k, v in recipe.__dict__.items() if k not in ("gtzan", "emotify", "cache")},
                     "clips": len(final.clips), "windows": len(final.x), "clips_by_source_label": counts},
        "metrics": {"protocol": "validation run: head trained on the train partitions, scored on the "
                                "artist-disjoint valid partitions (clip level, temperature applied); the "
                                "shipped head is then retrained on train + valid", "valid": brief},
    }
    card = from_dict(config, where=f"recipe {recipe.name}").save(out, state)
    write_json(out / "validation.json", {k: v for k, v in val.items() if k not in UNSAVED})
    return card.to_dict()


def _student_report(recipe: Recipe, val: dict[str, Any], out: Path) -> dict[str, Any]:
    """A recipe whose heads read a distilled student: its validation run and the student, written to ``out``.
    No model directory yet: ``predict`` loads shipped backbones only, so a head on a student's features would
    run on the wrong features until the student ships as a backbone of its own (issue 38, item 4)."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    for name in ("student.json", "student.safetensors"):
        shutil.copy2(Path(recipe.student) / name, out / name)
    write_json(out / "validation.json", {k: v for k, v in val.items() if k not in UNSAVED})
    log.warning("%s: the student and its validation run are written; no model directory (a head on a student's "
                "features needs the student shipped as a backbone first)", out)
    brief = {s: {k: val[s][k] for k in ("n", "accuracy", "window_accuracy", "macro_f1") if k in val[s]}
             for s in ("gtzan", "emotify") if s in val}
    return {"temperature": round(val["temperature"], 4), "student": recipe.student,
            "metrics": {"valid": {**brief, **({"robustness": val["robustness"]} if "robustness" in val else {})}}}
