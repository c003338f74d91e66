"""The shared training/evaluation corpus: GTZAN (mini + extra) and Emotify, with their
artist-disjoint partitions.

GTZAN clips take their partition from the fault-filtered split lists shipped in
``musicgenre/data/splits/gtzan`` (train / valid / test; clips the lists leave out get ``None`` and
are never used). Emotify clips take theirs from its ``splits.csv`` (train / valid by artist group).
Labels are mapped to the model's vocabulary by the recipe (``emotify_labels``); an Emotify label
mapped to ``""`` is left out.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ParameterError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One labelled recording of the corpus."""

    path: str
    source: str  # "gtzan" or "emotify"
    label: str  # in the model's vocabulary
    split: str | None  # "train", "valid", "test" or None (not in any partition: unused)
    group: str  # artist group (Emotify) or clip id (GTZAN: artists are kept apart by the split lists)

    @property
    def key(self) -> str:
        """A stable name for caches and reports: ``source/parent/stem``."""
        p = Path(self.path)
        return f"{self.source}/{p.parent.name}/{p.stem}"


def gtzan_partitions() -> dict[str, str]:
    """``genre/genre.000NN`` -> train/valid/test from the shipped fault-filtered lists."""
    lists = resources.files("musicgenre.data") / "splits" / "gtzan"
    out = {}
    for split in ("train", "valid", "test"):
        for line in (lists / f"{split}_filtered.txt").read_text().split():
            out[line.rsplit(".", 1)[0]] = split
    return out


def read_gtzan_clips(folders: list[Path]) -> list[Clip]:
    """Every ``genres/<genre>/<genre>.000NN.*`` clip in the folders, with its fault-filtered partition."""
    parts = gtzan_partitions()
    clips = []
    for folder in folders:
        genres = folder / "genres" if (folder / "genres").is_dir() else folder
        if not genres.is_dir():
            raise ParameterError(f"{folder}: no GTZAN genres folder")
        for f in sorted(genres.glob("*/*.*")):
            if f.suffix.lower() not in (".wav", ".flac", ".au"):
                continue
            key = f"{f.parent.name}/{f.stem}"
            clips.append(Clip(str(f), "gtzan", f.parent.name, parts.get(key), key))
    return clips


def read_emotify_clips(root: Path, labels: dict[str, str]) -> list[Clip]:
    """Emotify's ``splits.csv`` rows, labels mapped through ``labels`` (``""`` leaves a class out)."""
    path = root / "splits.csv"
    if not path.is_file():
        raise ParameterError(f"{root}: no splits.csv (is this the Emotify folder?)")
    clips = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            label = labels.get(row["label"], row["label"])
            if not label:
                continue
            clips.append(Clip(str(root / row["path"]), "emotify", label, row["split"], row["artist_group"]))
    return clips
