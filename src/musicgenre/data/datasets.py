"""Dataset readers. Each returns a ``Dataset``: examples (source, label, split, group) and labels.

Splits are "train", "valid", "test". Readers never fail on a single bad entry: missing audio and
unlabelled tracks are counted in ``Dataset.skipped`` and logged, and the rest goes on.
"""

from __future__ import annotations

import csv
import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..audio import AUDIO_EXTENSIONS
from ..errors import ParameterError

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Example:
    source: Any  # a path (str), or raw bytes for Hugging Face datasets
    label: str
    split: str | None = None
    group: str | None = None  # e.g. artist: never in two splits
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", str(self.source) if isinstance(self.source, str) else "<bytes>")


@dataclass
class Dataset:
    name: str
    examples: list[Example]
    labels: list[str]
    skipped: Counter = field(default_factory=Counter)

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]

    def summary(self) -> str:
        counts = Counter(e.split for e in self.examples)
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items())
        return (f"{self.name}: {len(self.examples)} clips, {len(self.labels)} labels, "
                + ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS) + (f"; skipped {skipped}" if skipped else ""))


def stratified_split(examples: list[Example], seed: int, fractions: tuple[float, float] = (0.8, 0.1)) -> list[Example]:
    """Seeded per-label 80/10/10 split (or by group when examples have groups)."""
    if any(e.group for e in examples):
        return group_split(examples, seed, fractions)
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        by_label[e.label].append(e)
    out = []
    for label in sorted(by_label):
        items = sorted(by_label[label], key=lambda e: e.name)
        rng.shuffle(items)
        n = len(items)
        n_train = round(n * fractions[0])
        n_valid = round(n * fractions[1]) if n >= 3 else 0
        for i, e in enumerate(items):
            split = "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
            out.append(Example(e.source, e.label, split, e.group, e.name))
    return out


def group_split(examples: list[Example], seed: int, fractions: tuple[float, float] = (0.8, 0.1)) -> list[Example]:
    """Whole groups (artists) go to one split: groups shuffled (seeded), filled to the fractions."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        groups[e.group or e.name].append(e)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    total, seen, out = len(examples), 0, []
    for k in keys:
        frac = seen / total
        split = "train" if frac < fractions[0] else "valid" if frac < fractions[0] + fractions[1] else "test"
        out += [Example(e.source, e.label, split, e.group, e.name) for e in groups[k]]
        seen += len(groups[k])
    return out


def _audio_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS | {".au"})


def read_gtzan(root: Path, split: str = "random", seed: int = 0) -> Dataset:
    """GTZAN layout ``genres/<genre>/<genre>.000NN.wav|.au``; ``split`` is "random" (seeded stratified
    80/10/10) or "fault-filtered" (Kereliuk et al. 2015 artist-filtered lists, shipped)."""
    genres_dir = root / "genres" if (root / "genres").is_dir() else root
    labels = sorted(d.name for d in genres_dir.iterdir() if d.is_dir())
    examples = [Example(str(f), g) for g in labels for f in _audio_files(genres_dir / g)]
    ds = Dataset("gtzan", examples, labels)
    if split == "random":
        ds.examples = stratified_split(examples, seed)
    elif split == "fault-filtered":
        lists = resources.files("musicgenre.data") / "splits" / "gtzan"
        by_key = {f"{Path(e.source).parent.name}/{Path(e.source).stem}": e for e in examples}
        ds.examples = []
        for name, fname in (("train", "train_filtered.txt"), ("valid", "valid_filtered.txt"),
                            ("test", "test_filtered.txt")):
            for line in (lists / fname).read_text().split():
                key = line.rsplit(".", 1)[0]
                e = by_key.get(key)
                if e is None:
                    ds.skipped["missing on disk"] += 1
                    continue
                ds.examples.append(Example(e.source, e.label, name, None, e.name))
        if ds.skipped:
            log.warning("gtzan fault-filtered: %d listed clips are missing on disk", ds.skipped["missing on disk"])
    else:
        raise ParameterError(f"unknown GTZAN split {split!r}: use random or fault-filtered")
    return ds


def read_fma(root: Path, size: str | None = None) -> Dataset:
    """FMA: ``fma_metadata/tracks.csv`` (multi-row header) + ``fma_<size>/<tid[:3]>/<tid>.mp3``.
    Uses the official split (set.split) restricted to the subset (set.subset) of ``size``."""
    meta = root / "fma_metadata" / "tracks.csv"
    if size is None:
        found = [d.name[4:] for d in root.glob("fma_*") if d.is_dir() and d.name != "fma_metadata"]
        if not found:
            raise ParameterError(f"{root}: no fma_<size> audio folder found")
        size = sorted(found, key=["small", "medium", "large", "full"].index)[0]
    subsets = {"small": {"small"}, "medium": {"small", "medium"},
               "large": {"small", "medium", "large"}, "full": {"small", "medium", "large"}}[size]
    audio = root / f"fma_{size}"
    ds = Dataset(f"fma_{size}", [], [])
    with open(meta, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        top, sub = next(reader), next(reader)
        cols = {f"{a}.{b}": i for i, (a, b) in enumerate(zip(top, sub))}
        i_genre, i_subset, i_split = cols["track.genre_top"], cols["set.subset"], cols["set.split"]
        for row in reader:
            if not row or not row[0].isdigit():
                continue  # the "track_id" header line
            if row[i_subset] not in subsets:
                continue
            tid = f"{int(row[0]):06d}"
            if not row[i_genre]:
                ds.skipped["without a top genre"] += 1
                continue
            path = audio / tid[:3] / f"{tid}.mp3"
            if not path.is_file():
                ds.skipped["without audio"] += 1
                continue
            split = {"training": "train", "validation": "valid", "test": "test"}.get(row[i_split], "train")
            ds.examples.append(Example(str(path), row[i_genre], split))
    ds.labels = sorted({e.label for e in ds.examples})
    if ds.skipped:
        log.warning("%s", ds.summary())
    return ds


def read_folder(root: Path, seed: int = 0) -> Dataset:
    """A folder per label: ``root/<label>/*.audio``; seeded stratified 80/10/10 split."""
    labels = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    examples = [Example(str(f), lab) for lab in labels for f in _audio_files(root / lab)]
    return Dataset(root.name, stratified_split(examples, seed), labels)


def read_manifest(csv_path: Path, seed: int = 0) -> Dataset:
    """CSV ``path,label[,split][,group]`` (header row); relative paths are relative to the CSV.
    Without a split column the split is seeded and group-aware (one group never in two splits)."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ParameterError(f"{csv_path}: a manifest needs a header with at least path,label")
    ds = Dataset(csv_path.stem, [], [])
    for r in rows:
        p = Path(r["path"])
        p = p if p.is_absolute() else csv_path.parent / p
        if not p.is_file():
            ds.skipped["missing on disk"] += 1
            continue
        split = (r.get("split") or "").strip().lower() or None
        split = {"training": "train", "validation": "valid", "val": "valid"}.get(split or "", split)
        if split is not None and split not in SPLITS:
            raise ParameterError(f"{csv_path}: unknown split {split!r} for {p}")
        ds.examples.append(Example(str(p), r["label"], split, (r.get("group") or "").strip() or None))
    if ds.examples and all(e.split is None for e in ds.examples):
        ds.examples = stratified_split(ds.examples, seed)
    ds.labels = sorted({e.label for e in ds.examples})
    return ds


def read_hf(root: Path, audio_column: str | None = None, label_column: str | None = None, seed: int = 0) -> Dataset:
    """A Hugging Face ``datasets`` dataset saved with ``save_to_disk`` (Dataset or DatasetDict).
    Audio is taken undecoded (bytes or path) and decoded by our own loader."""
    try:
        import datasets
    except ImportError:
        raise ParameterError("reading a Hugging Face dataset needs `pip install datasets`") from None
    loaded = datasets.load_from_disk(str(root))
    parts = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    ds = Dataset(root.name, [], [])
    for split_name, part in parts:
        feats = part.features
        a_col = audio_column or next(k for k, v in feats.items() if isinstance(v, datasets.Audio))
        l_col = label_column or next((k for k, v in feats.items() if isinstance(v, datasets.ClassLabel)), "label")
        part = part.cast_column(a_col, datasets.Audio(decode=False))
        names = feats[l_col].names if isinstance(feats[l_col], datasets.ClassLabel) else None
        split = {"training": "train", "validation": "valid", "val": "valid"}.get(split_name or "", split_name)
        for i, row in enumerate(part):
            audio = row[a_col]
            source = audio.get("bytes") or audio.get("path")
            label = names[row[l_col]] if names else str(row[l_col])
            ds.examples.append(Example(source, label, split, None, f"{root.name}[{split_name or ''}][{i}]"))
    if all(e.split is None for e in ds.examples) or any(e.split not in SPLITS for e in ds.examples):
        ds.examples = stratified_split([Example(e.source, e.label, None, None, e.name) for e in ds.examples], seed)
    ds.labels = sorted({e.label for e in ds.examples})
    return ds


def load_dataset(spec: str | Path, *, kind: str = "auto", split: str = "random", seed: int = 0) -> Dataset:
    """Open a dataset; ``kind`` auto-detects gtzan / fma / manifest / hf / folder."""
    root = Path(spec)
    if not root.exists():
        raise ParameterError(f"{root}: dataset not found")
    if kind == "auto":
        if root.is_file() and root.suffix == ".csv":
            kind = "manifest"
        elif (root / "fma_metadata").is_dir():
            kind = "fma"
        elif (root / "state.json").is_file() or (root / "dataset_dict.json").is_file():
            kind = "hf"
        elif (root / "genres").is_dir() or any(re.fullmatch(r"\w+\.\d{5}\.(wav|au)", f.name)
                                               for f in root.glob("*/*.*")):
            kind = "gtzan"
        else:
            kind = "folder"
    readers = {"gtzan": lambda: read_gtzan(root, split, seed), "fma": lambda: read_fma(root),
               "folder": lambda: read_folder(root, seed), "manifest": lambda: read_manifest(root, seed),
               "hf": lambda: read_hf(root, seed=seed)}
    if kind not in readers:
        raise ParameterError(f"unknown dataset kind {kind!r}: use {', '.join(readers)}")
    ds = readers[kind]()
    if not ds.examples:
        raise ParameterError(f"{root}: no labelled audio found (read as {kind})")
    return ds
