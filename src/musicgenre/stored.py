"""What a library stores of its files for learning, as plain values: the library (``library.learning``) reads
them, ``learn`` learns from them, neither imports the other.

``StoredLibrary``: every file with usable features, its own tags (``genres.tracks.TrackTags``) and its stored
windows as the head reads them (``embedding_and_tags``: each window's backbone embedding followed by its tag
logits, the order ``models.genre.MusicnnGenre`` concatenates them in).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .genres.tracks import TrackTags

__all__ = ["StoredLibrary", "embedding_and_tags"]


def embedding_and_tags(embedding: np.ndarray, tag_logits: np.ndarray) -> np.ndarray:
    """A file's stored windows as the head reads them: (k, 200) embedding ++ (k, 50) tag logits, float32."""
    return np.concatenate([np.asarray(embedding, np.float32), np.asarray(tag_logits, np.float32)], axis=1)


@dataclass
class StoredLibrary:
    """Every file with usable features (``tracks``, in path order; ``features[path]``: its stored windows,
    ``embedding_and_tags``, float32), the ``backbone`` (name, version) that computed them and the files left out
    (``skipped``: reason -> count)."""

    tracks: list[TrackTags]
    features: dict[str, np.ndarray]
    backbone: tuple[str, str]
    skipped: dict[str, int] = field(default_factory=dict)
