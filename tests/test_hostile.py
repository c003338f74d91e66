"""Hostile input is normal input: a seeded corpus through the CLI and predict_many, plus the
guarantees behind it (ffmpeg limits, playlists refused, temp files removed, header bombs, one
downmix on every path, the no-music gate, printable names)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

from musicgenre._names import printable_name
from musicgenre.audio import DEFAULT_MAX_MINUTES, _ffmpeg, find_audio_files, load_audio, stream_audio, to_mono
from musicgenre.cli import main
from musicgenre.errors import AudioDecodeError, MusicGenreError, NoMusicError, ParameterError, Reason
from musicgenre.pipeline import predict_many

from .conftest import ROOT, tone
from .hostile_corpus import GENRE, SR, build, music, outcome

PER_CASE_SECONDS = 30.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    assert shutil.which("ffmpeg"), "ffmpeg must be installed by the test set-up (see README)"
    root = tmp_path_factory.mktemp("hostile")
    return build(root, seed=1234)


def _check(case, got: str, warnings: list[str] | None = None) -> None:
    assert got in case.expect, f"{case.label}: expected {sorted(case.expect)}, got {got}"
    if case.warning and got == GENRE:
        assert any(case.warning in w for w in warnings or []), f"{case.label}: no '{case.warning}' in {warnings}"


def test_corpus_through_predict_many(classifier, corpus):
    extra = [None, 42, b"", b"\0" * 100, (np.zeros(SR), True), (np.zeros(SR), float("nan")), {"array": [1, 2]}]
    inputs = [str(c.path) for c in corpus] + extra
    results, gaps = [], []
    t = time.monotonic()
    for r in predict_many(classifier, inputs, workers=2, on_error="return"):
        now = time.monotonic()
        results.append(r)
        gaps.append(now - t)
        t = now
    assert len(results) == len(inputs)  # exactly one result per input, in order
    for case, r in zip(corpus, results):
        _check(case, outcome(r), getattr(r, "warnings", None))
        name = r.source
        assert name == printable_name(case.path) and "\n" not in name
        if isinstance(r, MusicGenreError):
            assert str(r).startswith(f"{name}: {r.reason.value}")
    for r in results[len(corpus):]:
        assert isinstance(r, AudioDecodeError) and isinstance(r.reason, Reason), r
    assert str(results[len(corpus)]).startswith("<None>: invalid input")
    assert max(gaps) < PER_CASE_SECONDS * 2  # two workers: at most two cases share one gap


def test_corpus_through_cli(corpus, capsys):
    rc = main(["predict", *[str(c.path) for c in corpus], "-f", "jsonl", "--workers", "2"])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    sources = {json.loads(line)["source"]: json.loads(line) for line in out.splitlines()}
    errors = {}
    for line in err.splitlines():
        assert line.startswith("musicgenre: error: "), line
        body = line.removeprefix("musicgenre: error: ")
        if " inputs failed" in body:
            continue
        name, _, why = body.rpartition(": ")
        while name and not any(why.startswith(r.value) for r in Reason):  # names may hold ": "
            name, _, rest = name.rpartition(": ")
            why = f"{rest}: {why}"
        errors[name] = next(r.name for r in Reason if why.startswith(r.value))
    for case in corpus:
        name = printable_name(case.path)
        got = GENRE if name in sources else errors.get(name, "MISSING")
        _check(case, got, sources.get(name, {}).get("warnings"))
    assert len(sources) + len(errors) == len(corpus)


def test_odd_names_print_on_an_ascii_terminal(corpus):
    odd = [str(c.path) for c in corpus if "caf" in c.label or "line" in c.label]
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C", "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run([sys.executable, "-m", "musicgenre", "predict", *odd, "-f", "table"], env=env,
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert b"caf\\xe9 latin-1.wav" in p.stdout and b"new\\nline.wav" in p.stdout
    for fmt in ("csv", "json"):
        assert main(["predict", *odd, "-f", fmt, "-o", str(Path(odd[0]).parent / f"_out.{fmt}")]) == 0


def test_nothing_to_classify_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "no audio files found" in err and "nothing to classify" in err


def test_find_audio_files_reports_loops_and_missing(tmp_path):
    (tmp_path / "d").mkdir()
    sf.write(tmp_path / "d" / "a.wav", tone(1.0), SR)
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    errors: list[str] = []
    found = list(find_audio_files([tmp_path / "d", tmp_path / "loop", tmp_path / "nope.wav"], errors=errors))
    assert found == [tmp_path / "d" / "a.wav"]
    assert errors == [f"{tmp_path / 'loop'}: symlink loop", f"{tmp_path / 'nope.wav'}: file not found"]


# --- ffmpeg runs with limits -------------------------------------------------------------------------

def _m4a(tmp_path: Path, seconds: float) -> Path:
    wav = tmp_path / "long.wav"
    sf.write(wav, tone(seconds, sr=SR), SR)
    out = tmp_path / "long.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(out)], check=True)
    return out


def _ffmpeg_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "ffmpeg" in p.name()]


def test_closing_the_stream_kills_ffmpeg_and_removes_temp_files(tmp_path, monkeypatch):
    path = _m4a(tmp_path, 120.0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for src in (path, path.read_bytes()):
        blocks = stream_audio(src, sr=16000, block_seconds=1.0).blocks
        next(blocks)
        assert _ffmpeg_children()
        blocks.close()
        assert not _ffmpeg_children()
        assert not list((tmp_path / "tmp").iterdir())


def test_a_stuck_or_chatty_decoder_is_killed(tmp_path, monkeypatch):
    """A decoder that never writes audio, or only floods stderr, is killed after the wait budget."""
    path = _m4a(tmp_path, 2.0)
    monkeypatch.setattr(_ffmpeg, "WAIT_BASE_S", 1.0)
    # children this process had before (e.g. multiprocessing's resource tracker, left by an earlier test's worker
    # pool) are not the decoder's
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    for script in ("sleep 60", "yes 'error: corrupt AAC frame' >&2"):
        fake = tmp_path / "ffmpeg"
        fake.write_text(f"#!/bin/sh\n{script}\n")
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setattr(_ffmpeg, "ffmpeg_exe", lambda fake=fake: str(fake))
        t = time.monotonic()
        with pytest.raises(AudioDecodeError) as e:
            load_audio(path, sr=16000)
        assert time.monotonic() - t < 10 and e.value.reason is Reason.CORRUPT
        assert not [p for p in psutil.Process().children(recursive=True)
                    if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]


def test_playlists_are_refused_even_by_ffmpeg_itself(tmp_path):
    """The sniffing in audio.py aside, ffmpeg's own demuxer whitelist refuses an HLS playlist."""
    secret = tmp_path / "secret.wav"
    sf.write(secret, tone(3.0), SR)
    playlist = tmp_path / "x.m4a"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3,\n{secret}\n#EXT-X-ENDLIST\n")
    run = _ffmpeg.FFmpegRun()
    with pytest.raises(_ffmpeg.FFmpegFailed) as e:
        list(_ffmpeg.decode(playlist, shown="x.m4a", max_seconds=60, block_frames=1000, run=run))
    assert e.value.kind == "NOT_AUDIO" and "hls playlist" in e.value.detail


def test_a_file_named_like_a_protocol_is_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(_m4a(tmp_path, 2.0), "pipe:0.m4a")
    y = load_audio("pipe:0.m4a", sr=16000)
    assert abs(len(y) / 16000 - 2.0) < 0.1


def test_bytes_errors_show_no_temp_paths(tmp_path):
    data = _m4a(tmp_path, 2.0).read_bytes()
    broken = data[:64] + bytes(len(data) - 64)
    with pytest.raises(AudioDecodeError) as e:
        load_audio(broken, sr=16000)
    assert str(e.value).startswith(f"<{len(broken)} bytes>: ") and "tmp" not in str(e.value)


# --- header bombs and the length limit -----------------------------------------------------------------

def test_header_bomb_fails_fast_in_flat_memory(corpus):
    bomb = next(c.path for c in corpus if c.path.name == "bomb_1hz.wav")
    rss = psutil.Process().memory_info().rss
    t = time.monotonic()
    with pytest.raises(AudioDecodeError) as e:
        load_audio(bomb, sr=16000)
    assert time.monotonic() - t < 1.0 and psutil.Process().memory_info().rss - rss < 50e6
    assert e.value.reason is Reason.CORRUPT and "sample rate 1 Hz" in str(e.value)


def test_long_input_is_truncated_and_says_so(classifier, tmp_path, capsys):
    assert DEFAULT_MAX_MINUTES == 60.0
    path = tmp_path / "long.wav"
    sf.write(path, music(20.0), SR)
    pred = classifier.predict(path, max_seconds=6)
    assert pred.duration == pytest.approx(6.0, abs=0.1)
    assert pred.warnings == ["too long: analysed the first 0.1 of 0.3 min"]
    assert main(["predict", str(path), "--max-minutes", "0.1"]) == 0
    assert "warning: too long: analysed the first 0.1 of 0.3 min" in capsys.readouterr().out
    d = stream_audio(_m4a(tmp_path, 20.0), sr=16000, max_seconds=5)
    assert abs(sum(len(b) for b in d.blocks) / 16000 - 5.0) < 0.01 and d.info.truncated


@pytest.mark.slow
@pytest.mark.parametrize("limit", [30, 45])  # the window limit, or the audio limit, stops decoding first
def test_truncation_is_reported_whichever_limit_stops_first(classifier, tmp_path, limit):
    path = tmp_path / "x.wav"
    sf.write(path, music(70.0), SR)
    assert classifier.predict(path, max_seconds=limit).warnings[0].startswith("too long: analysed the first")
    sf.write(path, music(limit), SR)
    assert classifier.predict(path, max_seconds=limit).warnings == []


@pytest.mark.parametrize("bad", [True, float("nan"), -1, 0.5, "44100", 10**9])
def test_bad_sample_rates_are_refused(bad):
    with pytest.raises(AudioDecodeError) as e:
        load_audio((tone(1.0), bad), sr=16000)
    assert e.value.reason is Reason.INVALID_INPUT and "sample rate" in str(e.value)


def test_predict_many_api_contract(classifier, tmp_path):
    with pytest.raises(ParameterError):
        list(predict_many(classifier, str(tmp_path)))
    good = tmp_path / "a.wav"
    sf.write(good, music(3.0), SR)
    out = list(predict_many(classifier, [None, good, object(), good], on_error="return"))
    assert [type(r).__name__ for r in out] == ["AudioDecodeError", "Prediction", "AudioDecodeError", "Prediction"]
    with pytest.raises(AudioDecodeError, match="<None>: invalid input"):
        list(predict_many(classifier, [None], on_error="raise"))


# --- garbage never gets a genre; one downmix ------------------------------------------------------------

def test_antiphase_stereo_keeps_its_music():
    y = tone(1.0, sr=SR)
    np.testing.assert_allclose(to_mono(np.stack([y, -y], axis=1), "x"), y)
    np.testing.assert_allclose(to_mono(np.stack([y, y * 0.5], axis=1), "x"), y * 0.75, atol=1e-6)


def test_no_music_error_is_a_decode_error_with_a_reason(classifier, corpus):
    dc = next(c.path for c in corpus if c.path.name == "dc.wav")
    with pytest.raises(NoMusicError) as e:
        classifier.predict(dc)
    assert e.value.reason is Reason.NO_MUSIC and str(e.value).startswith(f"{dc}: no music detected (")
    clone = pickle.loads(pickle.dumps(e.value))
    assert type(clone) is NoMusicError and clone.reason is Reason.NO_MUSIC and str(clone) == str(e.value)


LOSSLESS = {  # soundfile reads wav/flac/aiff; ffmpeg reads the others
    "flac": ["-c:a", "flac"], "aiff": [], "alac.m4a": ["-c:a", "alac"], "mka": ["-c:a", "pcm_s16le"],
    "wv": ["-c:a", "wavpack"], "caf": ["-c:a", "pcm_s16le"],
}
LOSSY = {
    "ogg": ["-c:a", "libvorbis", "-q:a", "8"], "opus": ["-c:a", "libopus", "-b:a", "256k"],
    "webm": ["-c:a", "libopus", "-b:a", "256k"], "mp3": ["-c:a", "libmp3lame", "-b:a", "320k"],
    "aac.m4a": ["-c:a", "aac", "-b:a", "256k"],
}


def _encode(src: Path, dst: Path, args: list[str]) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


def _max_diff(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) for k in a)


@pytest.mark.slow
def test_same_audio_in_any_container_gets_the_same_scores(classifier, tmp_path, have_ffmpeg):
    """One downmix on every path: the same samples give the same scores whichever decoder reads them.

    Stereo with unequal channels, so a decoder that mixes differently (ffmpeg's ``-ac 1`` was 3 dB
    louder) shows. Lossless containers must match the WAV; a lossy file must match its own samples
    written out as WAV (the codec itself changes the audio, and with it the scores, by up to 0.06).
    """
    wav = tmp_path / "song.wav"
    sf.write(wav, music(8.0, channels=2, seed=7) * np.array([1.0, 0.6], np.float32), 44100)
    ref = classifier.predict(wav).scores
    for ext, args in LOSSLESS.items():
        diff = _max_diff(ref, classifier.predict(_encode(wav, tmp_path / f"song.{ext}", args)).scores)
        assert diff <= 0.01, f"{ext}: scores differ from the WAV's by {diff:.4f}"
    lossy = {}
    for ext, args in LOSSY.items():
        coded = _encode(wav, tmp_path / f"song.{ext}", args)
        lossy[ext] = classifier.predict(coded).scores
        as_wav = _encode(coded, tmp_path / f"{ext}.decoded.wav", ["-c:a", "pcm_f32le"])  # every channel kept
        diff = _max_diff(lossy[ext], classifier.predict(as_wav).scores)
        assert diff <= 0.01, f"{ext}: ffmpeg path and soundfile path differ by {diff:.4f}"
    assert _max_diff(lossy["opus"], lossy["webm"]) <= 0.01


@pytest.mark.slow
def test_real_music_is_never_refused():
    """Every clip in ../shared/data and examples/ passes the no-music gate (decode only; the model
    cannot refuse a clip that passes, except a clip silent below -60 dBFS, which the gate also catches)."""
    from musicgenre.audio import AUDIO_EXTENSIONS

    shared = ROOT.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("../shared/data is not present (the shared clips are not part of the repository)")
    clips = sorted(p for base in (shared, ROOT / "examples") for p in base.rglob("*")
                   if p.suffix.lower() in AUDIO_EXTENSIONS)
    refused = []
    for clip in clips:
        d = stream_audio(clip, sr=16000)
        for _ in d.blocks:
            pass
        assert d.info.evidence is not None
        why = d.info.evidence.verdict()
        if why:
            refused.append(f"{clip}: {why}")
    print(f"{len(clips) - len(refused)} of {len(clips)} clips pass the no-music gate")
    assert not refused


def test_decoder_words_only_in_the_log(corpus, capsys, caplog):
    rot = next(str(c.path) for c in corpus if c.path.name == "bitrot.mp3")
    assert main(["predict", rot, "-f", "json"]) == 0
    out, err = capsys.readouterr()
    assert "@ 0x" not in out + err and "Header missing" not in out + err  # no raw decoder text
    assert json.loads(out)[0]["warnings"][0].startswith("corrupt or truncated: ")
    caplog.set_level(logging.INFO, logger="musicgenre")
    load_audio(rot, sr=16000)
    assert any("ffmpeg said" in r.getMessage() for r in caplog.records)


def test_chained_streams_decode_in_full_and_damage_is_reported(corpus):
    by_name = {c.path.name: c.path for c in corpus}
    for name in ("chained.ogg", "concat.mp3"):  # 1.5 s at 44.1 kHz, then 3 s at 22.05 kHz
        d = stream_audio(by_name[name], sr=16000)
        assert abs(sum(len(b) for b in d.blocks) / 16000 - 4.5) < 0.2, name
    d = stream_audio(by_name["half.flac"], sr=16000)
    seconds = sum(len(b) for b in d.blocks) / 16000
    assert 1.0 < seconds < 3.0 and d.info.declared_seconds == pytest.approx(4.0, abs=0.01)
    assert d.info.warnings == [f"corrupt or truncated: decoded {seconds:.1f} of 4.0 s"]


def test_symlinked_folders_are_walked_once_even_when_they_loop(tmp_path):
    (tmp_path / "lib" / "a").mkdir(parents=True)
    sf.write(tmp_path / "lib" / "a" / "x.wav", tone(1.0), SR)
    os.symlink(tmp_path / "lib", tmp_path / "lib" / "a" / "back")  # a loop
    (tmp_path / "elsewhere").mkdir()
    sf.write(tmp_path / "elsewhere" / "y.flac", tone(1.0), SR)
    os.symlink(tmp_path / "elsewhere", tmp_path / "lib" / "linked")
    errors: list[str] = []
    found = list(find_audio_files([tmp_path / "lib"], errors=errors))
    assert found == [tmp_path / "lib" / "a" / "x.wav", tmp_path / "lib" / "linked" / "y.flac"] and not errors


def test_mpg123_noise_stays_off_the_terminal_without_ffmpeg(corpus, monkeypatch, capfd):
    monkeypatch.setattr("musicgenre.audio._ffmpeg.ffmpeg_exe", lambda: None)
    for c in corpus:
        if c.path.suffix == ".mp3" and c.path.exists():
            try:
                load_audio(c.path, sr=16000)
            except AudioDecodeError:
                pass
    os.write(2, b"kept\n")
    err = capfd.readouterr().err
    assert "Warning:" not in err and "libmpg123" not in err and "kept" in err
