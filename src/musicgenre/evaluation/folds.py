"""Validation folds by artist, the one rule for both trainers: no artist on both sides of a fold.

``StratifiedGroupKFold`` (scikit-learn, imported on use) over the clips or files, grouped by artist (one
group in one fold), genres spread as evenly as the groups allow, seeded. ``folds`` of them, or fewer when
there are fewer groups, or when the largest genre has fewer members than folds (scikit-learn cannot stratify
then): a small library is validated in fewer folds rather than refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

SEED = 0


def fold_count(y: np.ndarray, groups: Sequence[str], folds: int) -> int:
    """How many folds ``assign_folds`` makes: ``folds``, at most the number of groups and the largest genre's
    number of members."""
    largest = int(np.bincount(np.asarray(y)).max()) if len(y) else 0
    return min(folds, len(set(groups)), largest)


def assign_folds(y: np.ndarray, groups: Sequence[str], folds: int, *, seed: int = SEED) -> np.ndarray:
    """Each clip's fold (0 .. k-1), k = ``fold_count``. ValueError when fewer than two folds can be made (one
    artist group, or one member per genre)."""
    from sklearn.model_selection import StratifiedGroupKFold

    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError("validation needs at least two artist groups")
    k = fold_count(y, groups, folds)
    if k < 2:
        raise ValueError("validation needs a genre with at least two files")
    index = {g: i for i, g in enumerate(names)}
    codes = np.array([index[g] for g in groups])
    out = np.full(len(y), -1)
    with warnings.catch_warnings():  # "the least populated class has only N members": expected, handled
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for fold, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y, codes)):
            out[held] = fold
    return out
