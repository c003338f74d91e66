"""Audio decoding: formats, shapes, rates, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from musicgenre import AudioDecodeError, load_audio
from musicgenre.audio import stream_audio
from musicgenre.errors import Reason

from .conftest import tone, write_audio


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a"])
def test_formats_decode_to_mono_float32_at_target_rate(tmp_path, suffix, have_ffmpeg):
    sr = 48000 if suffix == ".opus" else 44100
    path = write_audio(tmp_path / f"a{suffix}", tone(2.0, sr=sr, channels=2), sr)
    y = load_audio(path, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / 16000 - 2.0) < 0.1  # codecs add a little priming/padding
    assert 0.3 < np.abs(y).max() < 0.7


@pytest.mark.parametrize("shape", ["(n,)", "(n,1)", "(n,2)", "(2,n)"])
def test_array_shapes(shape):
    y = tone(1.0, sr=16000)
    x = {"(n,)": y, "(n,1)": y[:, None], "(n,2)": np.stack([y, y], 1), "(2,n)": np.stack([y, y])}[shape]
    out = load_audio((x, 16000), sr=16000)
    np.testing.assert_allclose(out, y, atol=1e-6)


def test_int16_and_dict_input_and_resampling():
    y = (tone(1.0, sr=8000) * 32767).astype(np.int16)
    out = load_audio({"array": y, "sampling_rate": 8000}, sr=16000)
    assert len(out) == 16000 and abs(np.abs(out).max() - np.abs(y).max() / 32767) < 0.02


def test_stream_is_blockwise_and_equals_whole(tmp_path):
    path = write_audio(tmp_path / "long.flac", tone(7.0, sr=44100), 44100)
    blocks = list(stream_audio(path, sr=16000, block_seconds=1.0).blocks)
    assert len(blocks) >= 7 and max(len(b) for b in blocks) <= 16000 + 1000
    whole = np.concatenate(blocks)
    np.testing.assert_allclose(whole, load_audio(path, sr=16000), atol=1e-6)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p / "missing.wav", Reason.FILE_NOT_FOUND),
        (lambda p: p, Reason.NOT_A_REGULAR_FILE),
        (lambda p: [(p / "empty.mp3").write_bytes(b""), p / "empty.mp3"][1], Reason.EMPTY_FILE),
        (lambda p: [(p / "notes.txt").write_text("hello, not audio\n" * 50), p / "notes.txt"][1], Reason.NOT_AUDIO),
    ],
)
def test_bad_files_name_the_file_and_reason(tmp_path, make, reason, have_ffmpeg):
    path = make(tmp_path)
    with pytest.raises(AudioDecodeError) as e:
        load_audio(path, sr=16000)
    assert str(e.value).startswith(f"{path}: {reason.value}") and e.value.reason is reason


def test_nan_array_rejected():
    y = tone(1.0, sr=16000)
    y[100] = np.nan
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio((y, 16000), sr=16000)


def test_bad_array_inputs():
    with pytest.raises(AudioDecodeError, match="sample rate"):
        load_audio((tone(1.0), -5), sr=16000)
    with pytest.raises(AudioDecodeError, match="needs its sample rate"):
        load_audio(tone(1.0), sr=16000)  # type: ignore[arg-type]
    with pytest.raises(AudioDecodeError, match="unsupported input type"):
        load_audio(12345, sr=16000)  # type: ignore[arg-type]


def test_missing_ffmpeg_is_named(tmp_path, monkeypatch, have_ffmpeg):
    path = write_audio(tmp_path / "a.m4a", tone(1.0), 22050)
    monkeypatch.setattr("musicgenre.audio._ffmpeg.ffmpeg_exe", lambda: None)
    with pytest.raises(AudioDecodeError, match="ffmpeg, which is not installed"):
        load_audio(path, sr=16000)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg"])
def test_fuzz_truncated_and_random_bytes(tmp_path, suffix, have_ffmpeg):
    """Any prefix or random garbage either decodes or raises AudioDecodeError, nothing else."""
    data = write_audio(tmp_path / f"a{suffix}", tone(1.5), 22050).read_bytes()
    rng = np.random.default_rng(len(data))
    cuts = sorted(set(rng.integers(0, len(data), 12).tolist()) | {0, 1, 4, 44, len(data) // 2})
    samples = [data[:c] for c in cuts]
    samples += [rng.bytes(int(n)) for n in (1, 10, 100, 5000)]
    flipped = bytearray(data)
    for i in rng.integers(0, len(data), 40):
        flipped[i] ^= 0xFF
    samples.append(bytes(flipped))
    for blob in samples:
        try:
            y = load_audio(blob, sr=16000)
        except AudioDecodeError as e:
            assert str(e)
        else:
            assert y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_no_music_gate_quantile_is_numpys(n):
    from musicgenre.audio.signal import _quantile

    x = np.random.default_rng(n).random(n).astype(np.float32)
    assert _quantile(x, 0.1) == pytest.approx(float(np.quantile(x, 0.1)), abs=1e-6)
