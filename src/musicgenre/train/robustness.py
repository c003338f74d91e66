"""Label stability under the degradation suite: does the same recording keep its genre when it is played
quieter, recorded in a room, or squeezed through a codec?

For every validation clip and every condition (``train.degrade``), the head scores the clean and the
degraded copy exactly as ``predict`` does (``scores.calibrated_clip_scores``: the one aggregation and the
recalibration for the number of windows), at two input lengths: one 3-s window (each window of the clip on
its own) and the whole 30-s clip. Reported per condition and length: n, the share whose label equals the
clean call's (``agreement``), the same over the calls that are confident on the clean copy
(``confident_agreement``), and top-1 against the true label, beside the clean top-1 of the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..scores import calibrated_clip_scores, loud_windows, recalibrate, softmax, window_count_temperature

# (windows, features) -> (windows, labels) logits: a trained head
WindowHead = Callable[[np.ndarray], np.ndarray]
# condition -> per clip key: (the head's input per window (n, d), the windows' peaks (n,))
FeaturesOf = Callable[[str], dict[str, tuple[np.ndarray, np.ndarray]]]


def _calls(features: dict[str, tuple[np.ndarray, np.ndarray]], head: WindowHead, temperature: float,
           by_windows: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per clip key: (whole-clip scores (L,), one-window scores (n_windows, L) with NaN rows for silent windows)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, (x, peaks) in features.items():
        loud = loud_windows(peaks)
        if not loud.any():
            continue
        logits = head(x)
        whole = calibrated_clip_scores(logits, loud, temperature, by_windows, source=key)
        single = recalibrate(softmax(logits, temperature), window_count_temperature(by_windows, 1))
        single[~loud] = np.nan
        out[key] = (whole, single)
    return out


def _row(clean: np.ndarray, degraded: np.ndarray, truth: np.ndarray, min_confidence: float) -> dict[str, Any]:
    """One length's figures from (n, L) clean and degraded scores and the true labels."""
    same = clean.argmax(1) == degraded.argmax(1)
    sure = clean.max(1) >= min_confidence
    return {
        "n": int(len(truth)),
        "agreement": round(float(same.mean()), 4),
        "confident_n": int(sure.sum()),
        "confident_agreement": round(float(same[sure].mean()), 4) if sure.any() else None,
        "top1": round(float((degraded.argmax(1) == truth).mean()), 4),
        "clean_top1": round(float((clean.argmax(1) == truth).mean()), 4),
    }


def robustness(features_of: FeaturesOf, head: WindowHead, truth: dict[str, int], conditions: Sequence[str], *,
               temperature: float, by_windows: Sequence[float], min_confidence: float) -> dict[str, Any]:
    """Per condition: ``{"3s": row, "30s": row}`` (see the module docstring) over the clips of ``truth`` (clip key
    -> true label index), which must not have trained ``head``. A window silent in either copy and a clip that
    fails to decode are left out."""
    clean = _calls(features_of("clean"), head, temperature, by_windows)
    report: dict[str, Any] = {}
    for condition in conditions:
        degraded = _calls(features_of(condition), head, temperature, by_windows)
        keys = [k for k in clean if k in degraded]
        singles_clean, singles_deg, single_truth = [], [], []
        for k in keys:
            a, b = clean[k][1], degraded[k][1]
            n = min(len(a), len(b))
            both = ~np.isnan(a[:n, 0]) & ~np.isnan(b[:n, 0])
            singles_clean.append(a[:n][both])
            singles_deg.append(b[:n][both])
            single_truth.append(np.full(int(both.sum()), truth[k]))
        report[condition] = {
            "3s": _row(np.concatenate(singles_clean), np.concatenate(singles_deg), np.concatenate(single_truth),
                       min_confidence),
            "30s": _row(np.stack([clean[k][0] for k in keys]), np.stack([degraded[k][0] for k in keys]),
                        np.array([truth[k] for k in keys]), min_confidence),
        }
    return report
