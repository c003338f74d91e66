"""The Classifier end to end: shipped model, real examples, synthetic edge cases."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from musicgenre import AudioDecodeError, Classifier, ParameterError, Prediction, WeightsError
from musicgenre.pipeline import predict_many

from .conftest import DEFAULT_FEATURES, EXAMPLES, tone, write_audio


def test_examples_are_classified_sensibly(classifier):
    for name in ("classical_hungarian_dance_5.ogg", "classical_sugar_plum_fairy.ogg"):
        p = classifier.predict(EXAMPLES / name)
        assert p.label == "classical", name
    # confident at the default threshold (0.8: confident calls right >= 90% at every length, docs/models.md)
    assert classifier.predict(EXAMPLES / "classical_sugar_plum_fairy.ogg").status == "confident"
    country = classifier.predict(EXAMPLES / "country_lets_go_fishin.ogg")
    assert "country" in [g for g, _ in country.top(2)] and country.status == "uncertain"
    # a known miss of the shipped model (docs/models.md): it must at least not be a confident call
    jazz = classifier.predict(EXAMPLES / "jazz_vibe_ace.ogg")
    assert jazz.label != "jazz" and jazz.status == "uncertain" and jazz.agreement < 1


def test_prediction_shape(classifier):
    p = classifier.predict(EXAMPLES / "jazz_vibe_ace.ogg")
    assert isinstance(p, Prediction)
    assert list(p.scores) == sorted(p.scores, key=p.scores.__getitem__, reverse=True)
    assert set(p.scores) == set(classifier.labels) and len(p.scores) == 10
    assert abs(sum(p.scores.values()) - 1) < 1e-4
    assert p.label == p.top(1)[0][0] and len(p.top(3)) == 3
    assert {"jazz", "electronic", "chillout", "80s", "instrumental"} <= set(p.tags)  # the MSD tagger's vocabulary
    assert all(0 <= v <= 1 for v in p.tags.values())
    assert abs(p.duration - 15.0) < 0.05
    assert len(p.segments) == 5 and p.segments[0].start == 0 and p.segments[-1].end <= p.duration
    out = p.as_pipeline_output(top_k=2)
    assert out == [{"label": k, "score": v} for k, v in p.top(2)]
    d = json.loads(json.dumps(p.to_dict()))
    assert d["label"] == p.label and len(d["segments"]) == 5 and d["model"] == "musicnn-gtzan"
    assert classifier(EXAMPLES / "jazz_vibe_ace.ogg", top_k=3) == p.as_pipeline_output(3)


def test_bytes_array_and_path_agree(classifier):
    path = EXAMPLES / "country_lets_go_fishin.ogg"
    a = classifier.predict(path)
    b = classifier.predict(path.read_bytes())
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    c = classifier.predict((y, sr))
    assert a.label == b.label == c.label
    np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-5)


def test_whole_track_is_analysed_in_windows(classifier, tmp_path):
    # 40 s: 10 s of 220 Hz, then 30 s alternating 330 and 440 Hz; every 3-s window is a segment
    sr = 22050
    y = np.concatenate([tone(10, sr, 220)] + [tone(2.5, sr, f) for f in (330, 440) * 6])
    p = classifier.predict(write_audio(tmp_path / "long.flac", y, sr))
    assert len(p.segments) == 13  # floor(40 / 2.992)
    assert p.segments[-1].end > 38
    # the track's scores: the one aggregation of its 13 windows, recalibrated for 13 windows; each segment's
    # scores: that window alone, calibrated as a one-window input
    from musicgenre.scores import calibrated_clip_scores, softmax

    _, logits, _, _ = classifier.window_outputs(str(tmp_path / "long.flac"))
    temperature, by_windows = classifier.model.temperature, classifier.model.temperatures
    want = calibrated_clip_scores(logits, np.ones(13, bool), temperature, by_windows)
    np.testing.assert_allclose([p.scores[g] for g in classifier.labels], want, atol=1e-5)
    windows = np.array([[s.scores[g] for g in classifier.labels] for s in p.segments])
    one = [calibrated_clip_scores(z[None], np.ones(1, bool), temperature, by_windows) for z in logits]
    np.testing.assert_allclose(windows, one, atol=1e-5)
    assert not np.allclose(softmax(logits, temperature).mean(0), want, atol=1e-3)  # the length temperature acts


def test_streaming_equals_whole_file(classifier, tmp_path, monkeypatch):
    """Block boundaries must not change the result: decode in 1-s blocks vs 30-s blocks."""
    path = write_audio(tmp_path / "x.wav", tone(8, 44100, 330), 44100)
    whole = classifier.predict(path)
    monkeypatch.setattr("musicgenre.audio.BLOCK_SECONDS", 0.37)
    import musicgenre.audio as audio

    orig = audio.stream_audio
    monkeypatch.setattr("musicgenre.windows.stream_audio", lambda s, sr, **kw: orig(s, sr=sr, block_seconds=0.37, **kw))
    blocky = classifier.predict(path)
    np.testing.assert_allclose(list(whole.scores.values()), list(blocky.scores.values()), atol=1e-4)


def test_silence_and_too_short(classifier):
    with pytest.raises(AudioDecodeError, match="silent"):
        classifier.predict((np.zeros(16000 * 5, np.float32), 16000))
    with pytest.raises(AudioDecodeError, match="too short"):
        classifier.predict((tone(0.5, 16000), 16000))
    short = classifier.predict((tone(2.0, 16000), 16000))  # repeat-padded to one window
    assert len(short.segments) == 1 and abs(short.duration - 2.0) < 1e-6


def test_partly_silent_track_skips_silent_windows(classifier):
    y = np.concatenate([np.zeros(16000 * 6, np.float32), tone(6, 16000)])
    p = classifier.predict((y, 16000))
    assert len(p.segments) == 2 and p.segments[0].start > 5


def test_predict_many_keeps_order_and_goes_past_errors(classifier, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not an mp3 at all" * 10)
    srcs = [EXAMPLES / "jazz_vibe_ace.ogg", bad, EXAMPLES / "classical_hungarian_dance_5.ogg"]
    out = list(predict_many(classifier, srcs, on_error="return"))
    assert isinstance(out[0], Prediction) and isinstance(out[2], Prediction)
    assert isinstance(out[1], AudioDecodeError) and "bad.mp3" in str(out[1])
    assert out[2].source.endswith("classical_hungarian_dance_5.ogg")
    with pytest.raises(AudioDecodeError):
        list(predict_many(classifier, srcs, on_error="raise"))


def test_model_dir_checksum_and_errors(tmp_path):
    from musicgenre.modeldir import weights_dir

    copy = tmp_path / "model"
    shutil.copytree(weights_dir() / "musicnn_gtzan", copy)
    clf = Classifier.from_pretrained(copy, device="cpu")
    assert clf.labels[0] == "blues"
    for weights, backend in (("model.safetensors", "torch"), ("model.onnx", "onnx")):
        data = bytearray((copy / weights).read_bytes())
        data[-1] ^= 0x01
        (copy / weights).write_bytes(bytes(data))
        with pytest.raises(WeightsError, match="checksum mismatch"):
            Classifier.from_pretrained(copy, backend=backend)
    with pytest.raises(ParameterError, match="unknown model"):
        Classifier.from_pretrained("no-such-model")
    with pytest.raises(WeightsError, match="not a model directory"):
        Classifier.from_pretrained(tmp_path)


def test_cuda_request_without_cuda_is_an_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ParameterError, match="CUDA is not available"):
        Classifier.from_pretrained(device="cuda")


@pytest.mark.parametrize("loud_windows", [1, 7, 10, 11, 40, 1200, 20000])
def test_feature_sampler_keeps_bounded_evenly_spread_windows(loud_windows):
    """``FeatureSampler`` sees windows as they stream (two per block, some silent) and keeps at most 4k of them
    whatever the length, then the k nearest the centres of k equal parts of the loud windows; its means cover
    every loud window."""
    from musicgenre.pipeline import FeatureSampler

    k, silent_every = 10, 5  # every 5th window silent: skipped by the sample and the means
    n = loud_windows + (loud_windows - 1) // (silent_every - 1)
    loud = np.arange(n) % silent_every != silent_every - 1
    assert loud.sum() == loud_windows
    emb = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32) / 1000  # row i holds i / 1000
    sampler = FeatureSampler("MSD_musicnn", "0.1.0", k)
    most = 0
    for i in range(0, n, 2):
        sampler.add(i, emb[i : i + 2], -emb[i : i + 2, :2], loud[i : i + 2])
        most = max(most, len(sampler.kept))
    f = sampler.result()
    assert f is not None and most <= 4 * k + 1 and f.windows == loud_windows
    assert len(f.index) == min(k, loud_windows) and loud[f.index].all() and list(f.index) == sorted(set(f.index))
    assert f.embedding.shape == (len(f.index), 3) and f.tag_logits is not None and f.tag_logits.shape[1] == 2
    np.testing.assert_allclose(f.embedding[:, 0], f.index / 1000, rtol=1e-3)  # each row is its window's
    np.testing.assert_allclose(f.mean_embedding, emb[loud].mean(0), rtol=1e-3)
    np.testing.assert_allclose(f.mean_tag_logits, -emb[loud, :2].mean(0), rtol=1e-3)
    if loud_windows > k:  # each pick lies in its own tenth of the loud windows
        rank = np.cumsum(loud) - 1
        assert list(rank[f.index] * k // loud_windows) == list(range(k))


def test_models_without_a_feature_backbone_give_no_features(featureless_classifier, classifier):
    """A model directory exported before features were stored (no backbone identity in its card): predictions
    carry no features and the scan asks for none (``feature_backbone`` None); nothing else changes. The shipped
    ONNX graph has them."""
    assert featureless_classifier.model.backend == "onnx" and featureless_classifier.feature_backbone is None
    plain = featureless_classifier.predict(EXAMPLES / "jazz_vibe_ace.ogg")
    assert plain.features is None
    assert classifier.feature_backbone == DEFAULT_FEATURES
    full = classifier.predict(EXAMPLES / "jazz_vibe_ace.ogg")
    assert full.features is not None and full.scores == plain.scores
