"""Score maths, numpy only: window logits -> clip scores.

``clip_scores`` is the one aggregation (mean window probability over the non-silent windows) and
``calibrated_clip_scores`` adds the recalibration for the number of windows. The inference path
(``pipeline.Classifier``), training, calibration and the benchmarks all score through here, without
loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import NoMusicError, Reason

SILENCE_PEAK = 1e-3  # windows whose peak stays below -60 dBFS are not analysed (the one silence rule)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64, returned as float32."""
    z = logits.astype(np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise logistic function (tag probabilities from tag logits)."""
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def loud_windows(peaks: np.ndarray) -> np.ndarray:
    """Which windows are analysed: those whose peak reaches -60 dBFS (the one silence rule)."""
    return np.asarray(peaks) >= SILENCE_PEAK


def clip_scores(probs: np.ndarray, loud: np.ndarray, *, source: str = "") -> np.ndarray:
    """The one clip aggregation: mean window probability over the non-silent (``loud``) windows, (n, L) -> (L,)."""
    if not loud.any():
        raise NoMusicError(source, Reason.NO_MUSIC, "silent: peak below -60 dBFS everywhere")
    return np.asarray(probs)[loud].mean(axis=0)


def window_count_temperature(temperatures: Sequence[float], n_windows: int) -> float:
    """The length temperature of an input of ``n_windows`` analysed windows: ``temperatures[n - 1]``, the last
    entry for every longer input; 1 (no change) for a model without them."""
    if len(temperatures) == 0:
        return 1.0
    return float(temperatures[min(max(n_windows, 1), len(temperatures)) - 1])


def recalibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(probs) / temperature): the aggregated scores' log-probabilities read as logits and
    temperature-scaled (the ranking is kept; 1 leaves ``probs`` as they are)."""
    if temperature == 1.0:
        return np.asarray(probs, dtype=np.float32)
    return softmax(np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-30)), temperature)


def calibrated_clip_scores(logits: np.ndarray, loud: np.ndarray, temperature: float,
                           by_windows: Sequence[float] = (), *, source: str = "") -> np.ndarray:
    """A track's scores from its window logits (n, L): the one aggregation (``clip_scores``: the mean of the
    non-silent windows' softmax(logits / ``temperature``)), recalibrated for its number of non-silent windows
    (``recalibrate`` at ``window_count_temperature(by_windows, n)``). A lone window is over-sure where a mean of
    ten is not: the length temperature makes a score mean the same at any length."""
    mean = clip_scores(softmax(logits, temperature), loud, source=source)
    return recalibrate(mean, window_count_temperature(by_windows, int(np.count_nonzero(loud))))
