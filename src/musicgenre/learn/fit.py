"""The learned head, numpy and scikit-learn only (no torch): a multinomial logistic regression on per-window
features, validated in folds grouped by artist, calibrated out of fold.

- **Features**: each stored window's backbone embedding (200) followed by its tag logits (50), the order
  ``models.genre.MusicnnGenre`` concatenates them in (``features="embedding+tags"``), standardised with the
  training windows' mean and standard deviation (``models.genre.Standardize``). Every window of a file carries
  the file's label.
- **Weights**: class-balanced at the file level: every genre weighs the same in total, every file of a genre
  the same, split evenly over its windows (a file stored with ten windows does not count ten times a file of
  one). Normalised to a mean of one per window, so the regularisation means the same at any library size.
- **Folds**: ``StratifiedGroupKFold`` over the files, grouped by artist (``vocabulary.group_keys``), ``folds``
  of them or fewer when there are fewer groups; a genre missing from a fold's training files gets a logit far
  below the others there (that fold cannot name it).
- **Calibration**: ``train.calibrate``'s window temperature and per-length temperatures
  (``fit_calibration(..., aggregate_at="window")``), fitted on the out-of-fold window logits.
  ``fit_window_calibration`` is the same fit with the run scores computed for all files at once (the same
  runs, the same grids, ``calibrate.fit_temperature``): ``fit_calibration`` loops over every run of every
  clip in Python for each of its 61 trial temperatures, minutes for 10,000 files.
- **Clip scores**: ``scores.calibrated_clip_scores``, the one aggregation ``predict`` uses.

Deterministic: the folds are seeded, lbfgs starts from zero, and the fits run on one BLAS thread
(``threadpoolctl``), so the same features give the same weights, byte for byte.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..scores import calibrated_clip_scores, softmax

SEED = 0
C = 0.001  # inverse L2 strength (sample weights average 1 per window); chosen on real libraries: docs/learn.md
MAX_ITER = 500
TOL = 1e-4
MAX_WINDOWS = 10  # length temperatures fitted: T_1 .. T_10, longer inputs use T_10 (as the shipped model)
JUDGED_SHARE = 0.5  # a fold's model judges a tag only where it trained on at least half of that genre's files
ABSENT_LOGIT = -1e4  # the logit of a genre a fold's training files lack: that fold never names it
STD_FLOOR = 1e-6  # a feature constant over the training windows is left unscaled
WINDOW_GRID = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))  # calibrate.fit_temperature's default grid


@dataclass(frozen=True)
class WindowSet:
    """The stored windows of a list of files: ``x`` (windows, features) float32, file i's windows being
    ``x[start[i]:start[i + 1]]``."""

    x: np.ndarray
    start: np.ndarray

    @classmethod
    def from_files(cls, files: Sequence[np.ndarray]) -> WindowSet:
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

    def take(self, files: np.ndarray) -> WindowSet:
        """The files at these indices, in this order."""
        return WindowSet.from_files([self.x[self.start[i]:self.start[i + 1]] for i in files])

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """A per-window array cut back into per-file arrays."""
        return [values[self.start[i]:self.start[i + 1]] for i in range(self.n_files)]


def window_features(embedding: np.ndarray, tag_logits: np.ndarray) -> np.ndarray:
    """A file's stored windows as the head reads them: (k, 200) embedding ++ (k, 50) tag logits, float32."""
    return np.concatenate([np.asarray(embedding, np.float32), np.asarray(tag_logits, np.float32)], axis=1)


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


def class_weights(y: np.ndarray, counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-window sample weights: each class the same total, each file of a class the same share, spread evenly
    over its windows; mean 1 over the windows."""
    per_class = np.bincount(y, minlength=n_classes).astype(np.float64)
    file_w = 1.0 / (per_class[y] * np.count_nonzero(per_class))
    w = np.repeat(file_w / counts, counts)
    return w * (len(w) / w.sum())


def fit_head(windows: WindowSet, y: np.ndarray, n_classes: int, *, c: float = C) -> Head:
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
        model.fit(z, y_win, sample_weight=class_weights(y, windows.counts, n_classes))
    coef = np.asarray(model.coef_, np.float64)
    intercept = np.asarray(model.intercept_, np.float64)
    if len(classes) == 2:  # scikit-learn's binary form: one row for the second class; softmax of (-z/2, z/2)
        coef = np.stack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight[classes] = coef.astype(np.float32)
    bias[classes] = intercept.astype(np.float32)
    return Head(mean32, std32, weight, bias)


def assign_folds(y: np.ndarray, groups: Sequence[str], folds: int, *, seed: int = SEED) -> np.ndarray:
    """Each file's fold (0 .. k-1): ``StratifiedGroupKFold`` (one artist group in one fold, genres spread as
    evenly as the groups allow), k = ``folds`` or the number of groups when fewer."""
    from sklearn.model_selection import StratifiedGroupKFold

    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError("validation needs at least two artist groups")
    k = min(folds, len(names))
    index = {g: i for i, g in enumerate(names)}
    codes = np.array([index[g] for g in groups])
    out = np.full(len(y), -1)
    with warnings.catch_warnings():  # "the least populated class has only N members": expected, handled
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for fold, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y, codes)):
            out[held] = fold
    return out


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


def out_of_fold_logits(windows: WindowSet, y: np.ndarray, fold: np.ndarray, n_classes: int, *, c: float = C,
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


# ---- calibration --------------------------------------------------------------------------------------------

def _by_length(clip_logits: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """File indices by number of windows."""
    lengths = np.array([len(z) for z in clip_logits])
    return {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}


def run_probabilities(clip_logits: Sequence[np.ndarray], n: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """``train.calibrate.run_probabilities(clip_logits, n, temperature, step=1)`` for all files at once: the mean of
    softmax(logits / temperature) over every run of ``n`` consecutive windows (overlapping) of each file at least
    that long. Returns (runs, L) float32 and each run's file index (grouped by file length, not in file order:
    the fits below only need runs and owners to match)."""
    width = clip_logits[0].shape[1]
    probs, owner = [], []
    for k, files in _by_length(clip_logits).items():
        if k < n:
            continue
        p = softmax(np.stack([clip_logits[i] for i in files]).reshape(-1, width), temperature)
        p = p.reshape(len(files), k, width).astype(np.float64)
        c = np.concatenate([np.zeros((len(files), 1, width)), np.cumsum(p, axis=1)], axis=1)
        means = (c[:, n:] - c[:, :-n]) / n  # (files, k - n + 1, L)
        probs.append(means.reshape(-1, width).astype(np.float32))
        owner.append(np.repeat(files, k - n + 1))
    if not probs:
        return np.zeros((0, width), np.float32), np.zeros(0, int)
    return np.concatenate(probs), np.concatenate(owner)


def scaled_nll(logits: np.ndarray, y: np.ndarray) -> Callable[[float], float]:
    """t -> -mean(log(softmax(logits / t)[i, y_i] + 1e-12)): ``calibrate.fit_temperature``'s loss of
    ``softmax(logits, t)`` (and, for ``logits`` = log-probabilities, of ``recalibrate(probs, t)``), with the row
    maxima taken once instead of at every trial temperature (the max of logits / t is max(logits) / t)."""
    z = np.asarray(logits, np.float64)
    d = z - z.max(axis=1, keepdims=True)
    rows = np.arange(len(y))
    picked = d[rows, y]

    def loss(t: float) -> float:
        total = np.exp(d / t).sum(axis=1)
        return float(-np.mean(np.log(np.exp(picked / t) / total + 1e-12)))

    return loss


def grid_temperature(loss: Callable[[float], float], grid: np.ndarray, *, stride: int = 8) -> float:
    """The grid temperature of least ``loss`` (``calibrate.fit_temperature``'s search) in about a quarter of the
    evaluations: every ``stride``-th grid point, then every point within ``stride`` of the best. The same answer:
    the negative log-likelihood of temperature-scaled logits is convex in 1 / temperature, so along the grid it
    falls, then rises, and its minimum lies within ``stride`` points of the coarse one."""
    cache: dict[int, float] = {}

    def at(i: int) -> tuple[float, int]:
        if i not in cache:
            cache[i] = loss(float(grid[i]))
        return cache[i], i

    coarse = list(range(0, len(grid), stride))
    if coarse[-1] != len(grid) - 1:
        coarse.append(len(grid) - 1)
    best = min(coarse, key=at)
    return float(grid[min(range(max(0, best - stride + 1), min(len(grid), best + stride)), key=at)])


def fit_window_calibration(clip_logits: Sequence[np.ndarray], y: np.ndarray, *,
                           max_windows: int = MAX_WINDOWS) -> tuple[float, list[float]]:
    """``train.calibrate.fit_calibration(clip_logits, y, aggregate_at="window")``, vectorised: the window
    temperature (softmax of single windows, on ``fit_temperature``'s default grid), then for n = 1 ..
    ``max_windows`` the length temperature of every run of n consecutive windows (``LENGTH_GRID``), the
    recalibration of ``scores.recalibrate``."""
    from ..train.calibrate import LENGTH_GRID

    y = np.asarray(y)
    flat = np.concatenate(list(clip_logits))
    y_win = np.repeat(y, [len(z) for z in clip_logits])
    t0 = grid_temperature(scaled_nll(flat, y_win), WINDOW_GRID)
    temps: list[float] = []
    for n in range(1, max_windows + 1):
        probs, owner = run_probabilities(clip_logits, n, t0)
        if not len(owner):
            break
        log_probs = np.log(np.maximum(probs.astype(np.float64), 1e-30))  # recalibrate's logits
        temps.append(grid_temperature(scaled_nll(log_probs, y[owner]), LENGTH_GRID))
    return t0, temps


def crossfit_calibration(clip_logits: Sequence[np.ndarray], y: np.ndarray, fold: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Each file's calibration fitted on the other folds' files (``fit_window_calibration``), so the figures
    reported on these files do not grade a calibration on its own fitting data (as
    ``calibrate.crossfit_temperatures``). Returns (files,) window temperatures and (files, MAX_WINDOWS) length
    temperatures."""
    t0 = np.ones(len(clip_logits))
    by_n = np.ones((len(clip_logits), MAX_WINDOWS))
    for f in np.unique(fold):
        rest = np.flatnonzero(fold != f)
        t, temps = fit_window_calibration([clip_logits[int(i)] for i in rest], y[rest])
        held = fold == f
        t0[held] = t
        by_n[held] = temps + [temps[-1]] * (MAX_WINDOWS - len(temps))
    return t0, by_n


def crossfit_probabilities(clip_logits: Sequence[np.ndarray], y: np.ndarray, fold: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Each file's out-of-fold scores as ``predict`` makes them, at the calibration fitted on the other folds
    (``crossfit_calibration``): (window temperature per file, (files, L) scores)."""
    t_file, by_file = crossfit_calibration(clip_logits, y, fold)
    probs = np.stack([clip_probabilities([z], float(t), b)[0] for z, t, b in zip(clip_logits, t_file, by_file)])
    return t_file, probs


def clip_probabilities(clip_logits: Sequence[np.ndarray], temperature: float, by_windows: Sequence[float]
                       ) -> np.ndarray:
    """Each file's scores as ``predict`` makes them from these window logits (every stored window is loud):
    ``scores.calibrated_clip_scores``. (files, L)."""
    return np.stack([calibrated_clip_scores(z, np.ones(len(z), bool), temperature, by_windows)
                     for z in clip_logits])


def rounded(temps: Sequence[float]) -> list[float]:
    """Temperatures as the card records them (4 significant digits)."""
    return [float(f"{t:.4g}") for t in temps]
