"""The robustness report: label agreement with the clean copy, at one window and whole clips, as predict scores."""

from __future__ import annotations

import numpy as np
import pytest

from musicgenre.scores import calibrated_clip_scores
from musicgenre.train.robustness import robustness


def _features(condition: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two clips of three windows whose 'features' are the logits themselves; 'flip' swaps clip b's windows."""
    a = np.array([[4.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 5.0], [0.0, 4.0], [0.0, 3.0]])
    peaks = np.array([0.5, 0.5, 0.5])
    if condition == "flip":
        b = b[:, ::-1].copy()
    if condition == "silent_window":
        return {"a": (a, np.array([0.5, 1e-5, 0.5])), "b": (b, peaks)}
    return {"a": (a, peaks), "b": (b, peaks)}


def test_agreement_top1_and_confident_calls_per_length() -> None:
    truth = {"a": 0, "b": 1}
    rep = robustness(_features, lambda x: x, truth, ["clean", "flip", "silent_window"], temperature=1.0,
                     by_windows=(), min_confidence=0.8)
    same = rep["clean"]
    assert same["3s"]["agreement"] == 1.0 and same["30s"]["agreement"] == 1.0 and same["30s"]["top1"] == 1.0
    flip = rep["flip"]
    assert flip["30s"] == {"n": 2, "agreement": 0.5, "confident_n": flip["30s"]["confident_n"],
                           "confident_agreement": flip["30s"]["confident_agreement"], "top1": 0.5, "clean_top1": 1.0}
    assert flip["3s"]["n"] == 6 and flip["3s"]["agreement"] == pytest.approx(0.5)
    # clip a's third window calls 1 while a is 0: 5 of 6 windows right when clean
    assert flip["3s"]["clean_top1"] == pytest.approx(5 / 6, abs=1e-4)
    # b's clean windows are all confident (p >= 0.95) and all flip
    assert flip["3s"]["confident_n"] >= 3 and flip["3s"]["confident_agreement"] < 0.5
    # a window silent in the degraded copy is left out at one window, and the clip's mean skips it
    assert rep["silent_window"]["3s"]["n"] == 5


def test_whole_clip_scores_are_predicts() -> None:
    """The 30-s call is calibrated_clip_scores over the loud windows (the one aggregation, length temperature on):
    a clip is a confident call exactly when predict's top score for it reaches the threshold."""
    temps = (1.5, 1.2, 1.1)
    feats = _features("clean")
    tops = {k: float(calibrated_clip_scores(x, p >= 1e-3, 2.0, temps).max()) for k, (x, p) in feats.items()}
    threshold = (tops["a"] + tops["b"]) / 2  # one clip above, one below
    rep = robustness(_features, lambda x: x, {"a": 0, "b": 1}, ["clean"], temperature=2.0, by_windows=temps,
                     min_confidence=threshold)
    assert rep["clean"]["30s"]["confident_n"] == 1
    assert rep["clean"]["30s"]["clean_top1"] == 1.0
