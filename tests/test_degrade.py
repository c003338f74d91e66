"""The degradation suite (musicgenre.train.degrade): seeds, lengths, exact gains, rooms with a reverberant
tail and early reflections, disjoint train/eval parameter bands, codecs, and the original conditions'
output kept bit for bit (``tests/fixtures/degrade_legacy.npz``). Synthetic signals only; fast."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicgenre.train import degrade as D
from musicgenre.train.degrade import degrade

SR = 16000
FIXTURE = Path(__file__).parent / "fixtures" / "degrade_legacy.npz"
HAS_FFMPEG = shutil.which("ffmpeg") is not None


def legacy_signal() -> np.ndarray:
    """The 0.5-s signal the fixture's outputs were computed from, before the suite was extended."""
    rng = np.random.default_rng(20240601)
    t = np.arange(SR // 2) / SR
    y = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1330 * t) + 0.05 * rng.standard_normal(len(t))
    return (y * np.minimum(1, 8 * t)).astype(np.float32)


def music(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Tones with a beat and a little noise: enough structure for codecs and rooms."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(0.08 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 8)) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    y = y + 0.01 * rng.standard_normal(len(t))
    return np.asarray(y, dtype=np.float32)


def lag(a: np.ndarray, b: np.ndarray) -> int:
    """The shift of ``b`` against ``a`` (samples) at the cross-correlation peak."""
    n = 2 * len(a)
    c = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    k = int(np.argmax(c))
    return k if k < n // 2 else k - n


def t20(h: np.ndarray) -> float:
    """RT60 from the -5 to -25 dB slope of the Schroeder decay curve."""
    e = np.cumsum(h[::-1].astype(np.float64) ** 2)[::-1]
    db = 10 * np.log10(e / e[0] + 1e-30)
    return 3 * (int(np.argmax(db <= -25)) - int(np.argmax(db <= -5))) / SR


def test_original_conditions_are_unchanged():
    # computed with the implementation before the suite was extended (the shipped model's cache uses them);
    # sha256 of the float32 bytes then: mp3_64k 4f9e626d..., phone 3721c793...
    want = np.load(FIXTURE)
    y = legacy_signal()
    for cond in ("mp3_64k", "phone"):
        got = degrade(y, SR, cond, name="fixture")
        assert got.dtype == np.float32 and got.shape == want[cond].shape
        np.testing.assert_allclose(got, want[cond], rtol=0, atol=1e-6, err_msg=cond)
    assert D.CONDITIONS == ("clean", "mp3_64k", "phone")  # the benchmarks' stability set


@pytest.mark.parametrize("cond", [c for c in D.SUITE + D.EVAL_CONDITIONS if HAS_FFMPEG or not c.startswith("aac")])
def test_every_condition_is_seeded_and_keeps_length_and_dtype(cond):
    y = music(1.5)
    a, b = degrade(y, SR, cond, name="clip"), degrade(y, SR, cond, name="clip")
    assert a.shape == y.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    if cond != "clean":
        assert not np.array_equal(a, y)
    if cond in ("room", "room_eval", "reverb", "noise", "speaker_eval", "mic", "phone"):
        assert not np.array_equal(a, degrade(y, SR, cond, name="other clip"))


@pytest.mark.parametrize("db", [6, 15, 25, 3.5])
def test_quiet_is_a_pure_gain(db):
    y = music(0.5)
    out = degrade(y, SR, f"quiet_{db}db")
    assert out.dtype == np.float32
    assert np.array_equal(out, y * 10 ** (-db / 20))


def test_unknown_conditions_name_the_known_ones():
    y = music(0.2)
    for bad in ("vinyl", "room_test", "quiet_db", "mp3_64", "room+vinyl", "opus_300k"):
        with pytest.raises(ValueError, match="unknown degradation") as e:
            degrade(y, SR, bad)
        with pytest.raises(ValueError):
            D.check_condition(bad)
    assert "room_eval" in str(e.value) or "Opus" in str(e.value)
    with pytest.raises(ValueError, match="room_eval.*quiet_<N>db"):
        degrade(y, SR, "vinyl")
    for good in (*D.SUITE, *D.EVAL_CONDITIONS, "room+aac_32k", "quiet_40db", "mp3_96k"):
        D.check_condition(good)


def test_bands_split_every_range_into_disjoint_train_and_eval_parts():
    ranges = [*D.ROOM_RANGES.values(), *D.SPEAKER_RANGES.values(), *D.MIC_RANGES.values(),
              *D.NOISE_RANGES.values(), D.LEVEL_RANGE]
    rng = np.random.default_rng(0)
    for band in ranges:
        train, held_out = band.bands("train"), band.bands("eval")
        assert band.n > 1 and train and held_out
        assert all(b1 <= a2 or b2 <= a1 for a1, b1 in train for a2, b2 in held_out), band
        edges = train + held_out
        assert min(a for a, _ in edges) == band.lo and np.isclose(max(b for _, b in edges), band.hi)
        for split in D.SPLITS:
            assert all(band.split_of(band.sample(rng, split)) == split for _ in range(200)), (band, split)
    assert not set(D.NOISE_KINDS.train) & set(D.NOISE_KINDS.eval)


def test_sampled_chains_stay_in_their_split():
    for split in D.SPLITS:
        for seed in range(30):
            rec = D.RoomRecording.sample(np.random.default_rng(seed), split)
            room, spk, mic = rec.room, rec.speaker, rec.mic
            r = D.ROOM_RANGES
            checks = [(r["length"], room.dims[0]), (r["width"], room.dims[1]), (r["height"], room.dims[2]),
                      (r["rt60"], room.rt60), (D.NOISE_RANGES["snr_db"], rec.noise.snr_db),
                      (D.SPEAKER_RANGES["highpass_hz"], spk.highpass_hz), (D.SPEAKER_RANGES["drive"], spk.drive),
                      (D.SPEAKER_RANGES["resonance_ratio"], spk.resonance_hz / spk.highpass_hz),
                      (D.LEVEL_RANGE, rec.level_db), *((D.MIC_RANGES[k], getattr(mic, k)) for k in D.MIC_RANGES)]
            if room.surface:
                checks.append((r["surface_gap"], room.surface_gap))
            for band, value in checks:
                assert band.split_of(value) == split, (split, seed, band, value)
            assert rec.noise.kind in (D.NOISE_KINDS.train if split == "train" else D.NOISE_KINDS.eval)
            assert 0 < room.absorption <= D.MAX_ABSORPTION
            assert all(0 < s < d and 0 < m < d for s, m, d in zip(room.source, room.mic, room.dims))
            assert np.isclose(np.linalg.norm(np.subtract(room.source, room.mic)), room.distance)
    with pytest.raises(ValueError, match="unknown split"):
        D.Room.sample(np.random.default_rng(0), "test")  # type: ignore[arg-type]


def test_room_responses_have_a_reverberant_tail_at_their_rt60():
    for split in D.SPLITS:
        for seed in range(6):
            rng = np.random.default_rng(seed)
            room = D.Room.sample(rng, split)
            h = D.room_impulse_response(room, SR, rng)
            assert h.dtype == np.float32 and len(h) > room.rt60 * SR
            assert int(np.argmax(np.abs(h[:200]) > 0.5 * np.abs(h).max())) < 80  # direct sound near the start
            assert 0.6 * room.rt60 < t20(h) < 1.3 * room.rt60, (room, t20(h))
    # a click through `reverb`: energy well after the direct sound, decaying
    y = np.zeros(SR, dtype=np.float32)
    y[1600] = 1.0
    out = degrade(y, SR, "reverb", name="click")
    params = D.describe("reverb", "click")[0]
    assert params["split"] == "train" and D.ROOM_RANGES["rt60"].split_of(params["rt60"]) == "train"
    direct = slice(1600, 1600 + 80)
    late = slice(1600 + int(0.03 * SR), 1600 + int(0.5 * params["rt60"] * SR))
    assert np.sum(out[late] ** 2) > 0.02 * np.sum(out[direct] ** 2)
    assert np.sum(out[:1500] ** 2) < 1e-6 * np.sum(out**2)  # causal, aligned: nothing before the click


def test_a_microphone_at_a_wall_gets_a_strong_early_reflection():
    src = (2.2, 1.7, 1.3)

    def early_gain(mic: tuple[float, float, float], surface: str) -> float:
        d = float(np.linalg.norm(np.subtract(src, mic)))
        room = D.Room(dims=(5.1, 3.9, 2.7), rt60=0.4, absorption=0.1, source=src, mic=mic, distance=d,
                      surface=surface, surface_gap=0.02 if surface else 0.0)
        h = D.room_impulse_response(room, SR, np.random.default_rng(0))
        spec = np.abs(np.fft.rfft(h[:80].astype(np.float64), 2048))  # the first 5 ms: direct sound and what
        return float(spec[np.fft.rfftfreq(2048, 1 / SR) < 1000].mean() * d)  # arrives within 2.5 ms of it

    # pyroomacoustics gives the direct sound amplitude 1/d: the bass of the first 5 ms relative to it
    alone, at_wall = early_gain((3.6, 2.4, 1.1), ""), early_gain((5.08, 2.4, 1.1), "wall x=L")
    assert 0.85 < alone < 1.15
    assert at_wall > 1.7  # direct + its mirror image 4 cm (0.12 ms) later, 0.95 as strong: +5.5 dB in the bass


def test_room_chains_differ_from_clean_and_keep_levels():
    y = music(3.0, seed=1)
    for cond in ("room", "room_eval"):
        for name in ("a", "b", "c"):
            out = degrade(y, SR, cond, name=name)
            info = D.describe(cond, name)[0]
            rms = np.sqrt(np.mean(out.astype(np.float64) ** 2)) / np.sqrt(np.mean(y.astype(np.float64) ** 2))
            assert np.isclose(20 * np.log10(rms), info["level_db"], atol=0.01)
            assert abs(np.corrcoef(out, y)[0, 1]) < 0.99


def test_noise_is_added_at_the_described_snr_and_kind():
    y = music(2.0)
    for cond in ("noise", "noise_eval"):
        for name in ("x", "y", "z"):
            out = degrade(y, SR, cond, name=name)
            info = D.describe(cond, name)[0]
            snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((out - y).astype(np.float64) ** 2))
            assert np.isclose(snr, info["snr_db"], atol=0.01)
    for kind in (*D.NOISE_KINDS.train, *D.NOISE_KINDS.eval):
        n = D.noise_signal(kind, SR, SR, np.random.default_rng(0))
        assert n.shape == (SR,) and np.isclose(np.sqrt(np.mean(n.astype(np.float64) ** 2)), 1.0, atol=1e-4)
    spec = np.abs(np.fft.rfft(D.noise_signal("brown", 4 * SR, SR, np.random.default_rng(0)))) ** 2
    f = np.fft.rfftfreq(4 * SR, 1 / SR)
    assert spec[(f > 100) & (f < 200)].mean() > 30 * spec[(f > 1600) & (f < 3200)].mean()  # -6 dB/octave
    with pytest.raises(ValueError, match="noise kind"):
        D.noise_signal("pinkish", 10, SR, np.random.default_rng(0))


def test_small_speaker_cuts_the_bass_and_full_range_does_not():
    y = np.random.default_rng(2).standard_normal(2 * SR).astype(np.float32) * 0.1
    spk = D.Speaker(small=True, highpass_hz=300.0, resonance_hz=450.0, resonance_db=6.0, resonance_q=1.0,
                    lowpass_hz=6000.0, drive=0.5)
    out = spk.apply(y, SR)
    spec_in, spec_out = np.abs(np.fft.rfft(y)) ** 2, np.abs(np.fft.rfft(out)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    low, mid = (f > 40) & (f < 100), (f > 1000) & (f < 2000)
    assert spec_out[low].sum() / spec_in[low].sum() < 1e-3 * spec_out[mid].sum() / spec_in[mid].sum()
    assert np.array_equal(dataclasses.replace(spk, small=False).apply(y, SR), y)


def test_codecs_keep_length_rate_and_alignment():
    y = music(2.0, seed=3)
    conds = ["mp3_32k", "mp3_64k", "opus_16k", "opus_24k"] + (["aac_32k", "aac_48k"] if HAS_FFMPEG else [])
    for cond in conds:
        out = degrade(y, SR, cond)
        assert out.shape == y.shape and out.dtype == np.float32, cond
        assert lag(y, out) == 0, cond
        assert np.corrcoef(out, y)[0, 1] > 0.9, cond
    odd = music(1.0)[:12345]  # not a whole number of codec frames
    for cond in ("mp3_32k", "opus_24k") + (("aac_48k",) if HAS_FFMPEG else ()):
        assert degrade(odd, SR, cond).shape == odd.shape
    with pytest.raises(ValueError, match="16-160"):
        D.mp3_aligned(y, SR, kbps=8)


@pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg not installed")
def test_chains_apply_each_step_with_its_own_seed():
    y = music(1.0)
    room = degrade(y, SR, "room", name="k")
    assert np.array_equal(degrade(y, SR, "room+aac_32k", name="k"), D.aac_roundtrip(room, SR, kbps=32))
    assert [s["step"] for s in D.describe("room+aac_32k", "k")] == ["room", "aac_32k"]


def test_aac_without_ffmpeg_says_so(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no ffmpeg on PATH
    with pytest.raises(D.CodecUnavailable, match="ffmpeg"):
        degrade(music(0.2), SR, "aac_48k")
