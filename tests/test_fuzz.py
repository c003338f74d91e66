"""Property-based fuzzing of the decode path: whatever the bytes, array or sample rate, decoding
either gives finite float32 mono audio or raises AudioDecodeError with one of the fixed reasons,
within a per-case deadline. Nothing else escapes (no UnicodeError, ValueError, RuntimeError ...)."""

from __future__ import annotations

import io
import os
import shutil
from datetime import timedelta
from functools import cache

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicgenre._names import printable_name
from musicgenre.audio import load_audio
from musicgenre.errors import AudioDecodeError, Reason

from .conftest import tone

# MUSICGENRE_FUZZ_EXAMPLES=500 for a longer run; the default keeps the test suite quick
FUZZ = settings(max_examples=int(os.environ.get("MUSICGENRE_FUZZ_EXAMPLES", "25")), deadline=timedelta(seconds=10),
                derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@cache
def _seed_file(fmt: str) -> bytes:
    buf = io.BytesIO()
    kw = {"OGG": {"subtype": "VORBIS"}, "MP3": {"subtype": "MPEG_LAYER_III"}}.get(fmt, {})
    sf.write(buf, tone(1.2, sr=22050, channels=2), 22050, format=fmt, **kw)
    return buf.getvalue()


def _decodes_or_fails_cleanly(src: object) -> None:
    try:
        y = load_audio(src, sr=16000)  # type: ignore[arg-type]
    except AudioDecodeError as e:
        assert isinstance(e.reason, Reason) and str(e).count("\n") == 0
    else:
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()


@pytest.fixture(scope="module", autouse=True)
def _ffmpeg_present():
    assert shutil.which("ffmpeg"), "ffmpeg must be installed by the test set-up (see README)"


@FUZZ
@given(st.binary(min_size=1, max_size=4096))
def test_random_bytes(data):
    _decodes_or_fails_cleanly(data)


@FUZZ
@given(fmt=st.sampled_from(["WAV", "FLAC", "OGG", "MP3", "AIFF"]), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=30))
def test_mutated_audio_files(fmt, cut, flips):
    data = bytearray(_seed_file(fmt))
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    blob = bytes(data[: max(1, int(cut * len(data)))])
    _decodes_or_fails_cleanly(blob)


@FUZZ
@given(header=st.binary(min_size=44, max_size=44), body=st.binary(max_size=2048))
def test_random_wav_headers(header, body):
    _decodes_or_fails_cleanly(b"RIFF" + header[4:8] + b"WAVEfmt " + header[16:] + body)


numbers = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.text(max_size=5))


@FUZZ
@given(rate=numbers, shape=st.sampled_from([(0,), (5,), (3000,), (3000, 2), (2, 3000), (10, 10, 10), (3000, 0)]),
       dtype=st.sampled_from(["float32", "float64", "int16", "int32", "uint8", "bool", "complex64", "object"]))
def test_array_inputs(rate, shape, dtype):
    x = np.ones(shape, dtype=dtype) if dtype != "object" else np.full(shape, "a", dtype=object)
    _decodes_or_fails_cleanly((x, rate))


@FUZZ
@given(st.text(max_size=40) | st.binary(max_size=40))
def test_any_name_is_printable_and_encodable(name):
    shown = printable_name(name)
    shown.encode("utf-8")
    assert "\n" not in shown and "\r" not in shown
