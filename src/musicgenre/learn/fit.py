"""The learned head, numpy and scikit-learn only (no torch): a multinomial logistic regression on per-window
features, validated in folds grouped by artist, calibrated out of fold.

- **Features**: each stored window's backbone embedding (200) followed by its tag logits (50), the order
  ``models.genre.MusicnnGenre`` concatenates them in (``features="embedding+tags"``), standardised with the
  training windows' mean and standard deviation (``models.genre.Standardize``). Every window of a file carries
  the file's label.
- **Weights**: class-balanced at the file level: every genre weighs the same in total, every file of a genre
  the same, split evenly over its windows (a file stored with ten windows does not count ten times a file of
  one). Normalised to a mean of one per window, so the regularisation means the same at any library size.
- **Folds**: ``evaluation.folds.assign_folds`` over the files, grouped by artist (``genres.tracks.group_keys``);
  a genre missing from a fold's training files gets a logit far below the others there (that fold cannot name it).
- **Calibration**: ``evaluation.calibration``'s one fit (window temperature and per-length temperatures,
  ``aggregate_at="window"``), on the out-of-fold window logits.
- **Clip scores**: ``scores.calibrated_clip_scores``, the one aggregation ``predict`` uses.

Deterministic: the folds are seeded, lbfgs starts from zero, and the fits run on one BLAS thread
(``threadpoolctl``), so the same features give the same weights, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..evaluation.calibration import MAX_WINDOWS, crossfit_temperatures
from ..scores import calibrated_clip_scores

C = 0.001  # inverse L2 strength (sample weights average 1 per window); chosen on real libraries: docs/learn.md
MAX_ITER = 500
TOL = 1e-4
JUDGED_SHARE = 0.5  # a fold's model judges a tag only where it trained on at least half of that genre's files
ABSENT_LOGIT = -1e4  # the logit of a genre a fold's training files lack: that fold never names it
STD_FLOOR = 1e-6  # a feature constant over the training windows is left unscaled


@dataclass(frozen=True)
class FileWindows:
    """The stored windows of a list of files: ``x`` (windows, features) float32, file i's windows being
    ``x[start[i]:start[i + 1]]``."""

    x: np.ndarray
    start: np.ndarray

    @classmethod
    def from_files(cls, files: Sequence[np.ndarray]) -> FileWindows:
        """Per-file (k_i, d) arrays -> one set (each file needs at least one window)."""
        if any(len(f) == 0 for f in files):
            raise ValueError("every file needs at least one window")
        start = np.zeros(len(files) + 1, dtype=np.int64)
        start[1:] = np.cumsum([len(f) for f in files])
        d = files[0].shape[1] if files else 0
        x = np.concatenate(files).astype(np.float32, copy=False) if files else np.zeros((0, d), np.float32)
        return cls(x, start)

    @property
    def n_files(self) -> int:
        return len(self.start) - 1

    @property
    def counts(self) -> np.ndarray:
        """Windows per file."""
        return np.diff(self.start)

    @property
    def owner(self) -> np.ndarray:
        """The file index of every window."""
        return np.repeat(np.arange(self.n_files), self.counts)

    def take(self, files: np.ndarray) -> FileWindows:
        """The files at these indices, in this order."""
        return FileWindows.from_files([self.x[self.start[i]:self.start[i + 1]] for i in files])

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """A per-window array cut back into per-file arrays."""
        return [values[self.start[i]:self.start[i + 1]] for i in range(self.n_files)]


@dataclass(frozen=True)
class Head:
    """Standardise -> linear, as ``models.genre.make_head(d, n, hidden=0)`` computes it: logits =
    ((x - mean) / std) @ weight.T + bias. float32 arrays: ``mean``, ``std`` (d,), ``weight`` (L, d), ``bias`` (L,)."""

    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(n, d) features -> (n, L) logits, float32 (computed as the ONNX graph and torch do it)."""
        z = (np.asarray(x, np.float32) - self.mean) / self.std
        return (z @ self.weight.T + self.bias).astype(np.float32)


def balanced_window_weights(y: np.ndarray, counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-window sample weights: each class the same total, each file of a class the same share, spread evenly
    over its windows; mean 1 over the windows."""
    per_class = np.bincount(y, minlength=n_classes).astype(np.float64)
    file_w = 1.0 / (per_class[y] * np.count_nonzero(per_class))
    w = np.repeat(file_w / counts, counts)
    return w * (len(w) / w.sum())


def fit_head(windows: FileWindows, y: np.ndarray, n_classes: int, *, c: float = C) -> Head:
    """The head trained on these files' windows (``y``: one label per file). Classes absent from ``y`` get a
    zero weight row and ``ABSENT_LOGIT`` as bias."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x = windows.x
    y_win = np.repeat(y, windows.counts)
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    std = np.where(std < STD_FLOOR, 1.0, std)
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    z = (x - mean32) / std32
    weight = np.zeros((n_classes, x.shape[1]), np.float32)
    bias = np.full(n_classes, ABSENT_LOGIT, np.float32)
    classes = np.unique(y)
    if len(classes) == 1:  # one genre in this fold's training files: it is always the answer
        bias[classes[0]] = 0.0
        return Head(mean32, std32, weight, bias)
    model = LogisticRegression(C=c, max_iter=MAX_ITER, tol=TOL, solver="lbfgs")
    with threadpool_limits(limits=1):  # one BLAS thread: the same weights on every run
        model.fit(z, y_win, sample_weight=balanced_window_weights(y, windows.counts, n_classes))
    coef = np.asarray(model.coef_, np.float64)
    intercept = np.asarray(model.intercept_, np.float64)
    if len(classes) == 2:  # scikit-learn's binary form: one row for the second class; softmax of (-z/2, z/2)
        coef = np.stack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight[classes] = coef.astype(np.float32)
    bias[classes] = intercept.astype(np.float32)
    return Head(mean32, std32, weight, bias)


def judged(y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Whether the out-of-fold model can judge each file's tag: the other folds hold at least ``JUDGED_SHARE`` of
    its genre's files. Where most of a genre is one artist (so one fold), the model that scores that artist
    learned the genre from a handful of other files, or only from other files' mis-tags, and contradicts the
    whole artist: that is not evidence against the tags."""
    total = np.bincount(y)
    out = np.zeros(len(y), bool)
    for f in np.unique(fold):
        held = fold == f
        others = np.bincount(y[~held], minlength=len(total))
        out[held] = others[y[held]] >= JUDGED_SHARE * total[y[held]]
    return out


def out_of_fold_logits(windows: FileWindows, y: np.ndarray, fold: np.ndarray, n_classes: int, *, c: float = C,
                       say: Callable[[str], None] = lambda _: None) -> np.ndarray:
    """Every window's logits from the head trained (at inverse strength ``c``) on the other folds' files:
    (windows, L)."""
    out = np.zeros((len(windows.x), n_classes), np.float32)
    owner = windows.owner
    k = int(fold.max()) + 1
    for f in range(k):
        held = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        say(f"fold {f + 1}/{k}: training on {len(train)} files, scoring {len(held)}")
        head = fit_head(windows.take(train), y[train], n_classes, c=c)
        rows = np.isin(owner, held)
        out[rows] = head.logits(windows.x[rows])
    return out


# ---- scores as predict makes them ----------------------------------------------------------------------------

def crossfit_probabilities(clip_logits: Sequence[np.ndarray], y: np.ndarray, fold: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Each file's out-of-fold scores as ``predict`` makes them, at the calibration fitted on the other folds
    (``evaluation.calibration.crossfit_temperatures``): (window temperature per file, (files, L) scores)."""
    t_file, by_file = crossfit_temperatures(clip_logits, y, fold, max_windows=MAX_WINDOWS, aggregate_at="window")
    probs = np.stack([calibrated_file_scores([z], float(t), b)[0] for z, t, b in zip(clip_logits, t_file, by_file)])
    return t_file, probs


def calibrated_file_scores(clip_logits: Sequence[np.ndarray], temperature: float, by_windows: Sequence[float]
                           ) -> np.ndarray:
    """Each file's scores as ``predict`` makes them from these window logits (every stored window is loud):
    ``scores.calibrated_clip_scores``. (files, L)."""
    return np.stack([calibrated_clip_scores(z, np.ones(len(z), bool), temperature, by_windows)
                     for z in clip_logits])
