"""Length-aware calibration: one temperature per number of analysed windows, fitted on sub-clips of
validation clips, applied by the pipeline's one aggregation path."""

from __future__ import annotations

import dataclasses

import numpy as np

from musicgenre.evaluation.calibration import (
    crossfit_temperatures,
    fit_calibration,
    fit_window_temperatures,
    length_report,
    run_probabilities,
    runs,
)
from musicgenre.evaluation.folds import assign_folds
from musicgenre.scores import calibrated_clip_scores, clip_scores, recalibrate, softmax, window_count_temperature

from .conftest import tone, write_audio

SR = 16000


def synthetic_clips(n_clips: int = 300, windows: int = 10, k: int = 4, seed: int = 0
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """Clips whose windows are noisy, over-sharp views of the clip's genre: each window alone is over-confident
    (logits 4x too large for its accuracy), and the mean of ten windows is right far more often than one."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n_clips)
    logits = []
    for label in y:
        z = rng.normal(0, 1.0, (windows, k))
        z[:, label] += 0.8
        logits.append((4.0 * z).astype(np.float32))
    return logits, y


def test_window_count_temperature_indexes_by_length():
    assert window_count_temperature((2.0, 1.0, 0.5), 1) == 2.0
    assert window_count_temperature((2.0, 1.0, 0.5), 3) == 0.5
    assert window_count_temperature((2.0, 1.0, 0.5), 40) == 0.5  # longer inputs: the last entry
    assert window_count_temperature((), 5) == 1.0  # a model without them (2.2): no change
    assert window_count_temperature((2.0, 1.0), 0) == 2.0


def test_calibrated_clip_scores_is_the_aggregation_then_the_length_temperature():
    z = np.random.default_rng(0).normal(0, 3, (6, 4)).astype(np.float32)
    loud = np.array([1, 1, 0, 1, 1, 1], bool)  # 5 analysed windows
    temps = (3.0, 2.0, 1.5, 1.2, 0.9, 0.8)
    mean = clip_scores(softmax(z, 0.5), loud)
    got = calibrated_clip_scores(z, loud, 0.5, temps)
    np.testing.assert_allclose(got, softmax(np.log(mean), 0.9), rtol=1e-5)
    assert got.argmax() == mean.argmax() and abs(got.sum() - 1) < 1e-5
    np.testing.assert_allclose(calibrated_clip_scores(z, loud, 0.5), mean)  # no length temperatures: as before
    one = calibrated_clip_scores(z[:1], np.ones(1, bool), 0.5, temps)  # one window: softmax at 0.5 * 3
    np.testing.assert_allclose(one, softmax(z[:1], 1.5)[0], rtol=1e-5)
    np.testing.assert_allclose(recalibrate(mean, 1.0), mean)


def test_runs_and_run_probabilities():
    assert runs(10, 3) == [slice(i, i + 3) for i in range(8)]
    assert runs(10, 3, step=3) == [slice(0, 3), slice(3, 6), slice(6, 9)]
    assert runs(2, 3) == []
    z = [np.zeros((10, 3), np.float32), np.ones((4, 3), np.float32)]
    probs, owner = run_probabilities(z, 3, 1.0)
    assert probs.shape == (4, 3) and owner.tolist() == [0, 0, 0, 1]
    probs, owner = run_probabilities(z, None, 1.0)
    assert owner.tolist() == [0, 1]
    np.testing.assert_allclose(probs, 1 / 3, rtol=1e-6)


def test_temperatures_follow_the_length_and_calibrate_every_length():
    """Over-sharp windows need a high temperature alone and a lower one once ten are averaged; with the fitted
    temperatures the confidence matches the accuracy at 1, 3 and 10 windows (one temperature does not)."""
    train, y_train = synthetic_clips(seed=0)
    t0, temps = fit_calibration(train, y_train, max_windows=10)
    assert 3.0 < t0 < 6.0  # the windows' logits are 4x too large
    assert len(temps) == 10 and 0.7 < temps[0] < 1.5 and temps[0] > temps[2] > temps[9]
    test, y_test = synthetic_clips(seed=1)
    rep = length_report(test, y_test, t0, np.array(temps), min_confidence=0.6)
    assert rep["1"]["accuracy"] < rep["3"]["accuracy"] < rep["10"]["accuracy"]
    for key in ("1", "3", "10", "whole"):
        r = rep[key]
        assert abs(r["mean_confidence"] - r["accuracy"]) < 0.05, (key, r)
        assert r["ece"] < max(0.05, 2 * r["ece_if_calibrated"][1]), (key, r)
    # 2.2's calibration, one temperature fitted on whole clips: lone windows are over-sure
    clip_t, _ = fit_calibration(train, y_train, aggregate_at="clip")
    one = length_report(test, y_test, clip_t, np.array([1.0]), min_confidence=0.6)
    assert one["1"]["mean_confidence"] - one["1"]["accuracy"] > 0.15, one["1"]


def test_crossfit_gives_each_fold_the_others_fit():
    z, y = synthetic_clips(n_clips=60, seed=2)
    groups = np.array([f"a{i // 3}" for i in range(60)])
    fold = assign_folds(y, groups.tolist(), 3)
    t0, t = crossfit_temperatures(z, y, fold, max_windows=10)
    assert len({*t0.tolist()}) <= 3
    assert t0.shape == (60,) and t.shape == (60, 10)
    for g in set(groups.tolist()):  # every clip of an artist gets the same out-of-fold temperatures
        assert len({tuple(row) for row in t[groups == g]}) == 1
    fold0 = fold == 0
    rest = [c for c, f in zip(z, fold0) if not f]
    np.testing.assert_allclose(t[fold0][0], fit_window_temperatures(rest, y[~fold0], t0[fold0][0], max_windows=10))


def test_predict_uses_the_temperature_of_its_length(classifier, tmp_path):
    """A model with length temperatures: a 3-s input is recalibrated at the one-window temperature, a 9-s input
    at the three-window one; each window's own scores (segments) as a one-window input."""
    from musicgenre import Classifier

    temps = (4.0, 3.0, 0.25)
    clf = Classifier(dataclasses.replace(classifier.model, temperatures=temps))
    t0 = clf.model.temperature
    short = write_audio(tmp_path / "s.wav", tone(3.2, SR), SR)
    long = write_audio(tmp_path / "l.wav", tone(9.5, SR, freq=330.0), SR)
    for path, n in ((short, 1), (long, 3)):
        _, logits, _, _ = clf.window_outputs(str(path))
        assert len(logits) == n
        p = clf.predict(str(path))
        want = recalibrate(clip_scores(softmax(logits, t0), np.ones(n, bool)), temps[n - 1])
        np.testing.assert_allclose([p.scores[lab] for lab in clf.labels], want, atol=2e-6)
        seg = softmax(logits, t0 * temps[0])
        np.testing.assert_allclose([p.segments[0].scores[lab] for lab in clf.labels], seg[0], atol=2e-6)
    plain = Classifier(dataclasses.replace(classifier.model, temperatures=())).predict(str(long))
    _, logits, _, _ = clf.window_outputs(str(long))
    np.testing.assert_allclose([plain.scores[lab] for lab in clf.labels],
                               clip_scores(softmax(logits, t0), np.ones(3, bool)), atol=2e-6)


def test_evaluate_reports_every_length(tmp_path):
    """``evaluate`` cuts every clip into 1-, 3- and 10-window pieces and classifies each through ``predict``;
    pieces longer than a clip are none."""
    from musicgenre.data import Example
    from musicgenre.prediction import DEFAULT_MIN_CONFIDENCE
    from musicgenre.train.evaluate import evaluate

    examples = []
    for i, (label, freq) in enumerate((("blues", 110.0), ("classical", 880.0))):
        path = write_audio(tmp_path / f"{i}.wav", tone(9.5, SR, freq=freq), SR)  # 3 windows
        examples.append(Example(str(path), label, "test", f"g{i}"))
    rep = evaluate("musicnn-gtzan", examples, None, None, device="cpu", workers=1)
    lengths = rep["lengths"]
    assert (lengths["1"]["n"], lengths["1"]["clips"], lengths["3"]["n"], lengths["10"]["n"]) == (6, 2, 2, 0)
    assert lengths["whole"]["n"] == 2 and lengths["whole"]["accuracy"] == rep["accuracy"]
    assert lengths["3"]["accuracy"] == rep["accuracy"]  # a 3-window piece of a 3-window clip is the clip
    assert lengths["min_confidence"] == DEFAULT_MIN_CONFIDENCE
    for row in (lengths["1"], lengths["3"], lengths["whole"]):
        assert 0 <= row["confident_share"] <= 1 and len(row["ece_if_calibrated"]) == 2
