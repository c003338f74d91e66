"""The side-by-side speed benchmark's own logic: measuring a process, input making, the README table.

The benchmark itself (TensorFlow venv, 100 clips) is not run here; docs/benchmarks.md says how.
"""

from __future__ import annotations

import json
import shutil
import sys
import wave

import pytest

from benchmarks import bench_vs_musicnn as bench


def fake_results(*, with_musicnn: bool = True) -> dict:
    def timing(median: float, n: int) -> dict:
        return {"n": n, "median_s": median, "x_realtime": round(30 / median, 1)}

    r = {
        "label": "full run", "started_utc": "2026-11-23T12:00:00+00:00",
        "machine": {"cpu": "AMD EPYC", "cpus_usable": 2, "loadavg_start": [0.1, 0.1, 0.1]},
        "versions": {"musicgenre": {"torch": None, "onnxruntime": "1.32.0"}},
        "inputs": {"clips": 100, "clip_seconds": 30.0, "source": "/x/shared/data (gtzan wav + emotify ogg)"},
        "musicgenre": {
            "warm_per_file": timing(0.05, 100),
            "predict_many": {"n": 100, "per_file_s": 0.04, "x_realtime": 750.0},
            "folder_process": {"n": 100, "wall_s": 6.0, "x_realtime": 500.0, "peak_rss_mb": 180.4},
            "cold_process": {**timing(0.7, 3), "peak_rss_mb": 150.2},
            "long_file": {"audio_s": 3600.0, "wall_s": 9.0, "x_realtime": 400.0, "peak_rss_mb": 190.0,
                          "growth_mb": 1.5},
        },
    }
    if with_musicnn:
        r["versions"]["musicnn"] = {"musicnn": "0.1.0", "tensorflow-cpu": "2.18.1"}
        r["musicnn"] = {"warm_per_file": timing(1.1, 100), "cold_process": {**timing(5.4, 3), "peak_rss_mb": 820.0}}
        r["speedup_vs_musicnn"] = bench.speedups(r["musicgenre"], r["musicnn"])
    return r


def test_speedups_are_musicnn_seconds_over_ours():
    sp = fake_results()["speedup_vs_musicnn"]
    assert sp["warm"] == 22.0  # 1.1 s / 0.05 s
    assert sp["warm_predict_many"] == 27.5
    assert sp["cold"] == pytest.approx(7.71, abs=0.01)
    assert sp["cold_peak_rss"] == pytest.approx(5.46, abs=0.01)


def test_markdown_table_carries_every_figure_from_the_json():
    table = bench.render_markdown(fake_results())
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 5  # header, rule, five workloads
    assert all(row.count("|") == 5 for row in rows)
    for figure in ("0.05 s (600x real time)", "1.10 s (27x)", "22x", "0.04 s per clip (750x)", "6.0 s (500x), 180 MB",
                   "0.70 s, 150 MB", "5.40 s, 820 MB", "7.7x", "one 60-minute MP3", "9.0 s (400x), 190 MB",
                   "1.5 MB growth", "full run", "From `benchmarks/results/speed.json`",
                   "onnxruntime 1.32.0", "tensorflow-cpu 2.18.1", "GTZAN and Emotify"):
        assert figure in table, figure


def test_markdown_without_musicnn_says_so():
    table = bench.render_markdown(fake_results(with_musicnn=False))
    assert "n/a (not run)" in table and "tensorflow" not in table


def test_readme_block_is_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Speed\n{bench.README_BEGIN}\nold table\n{bench.README_END}\n\nafter\n")
    bench.write_readme(readme, "| new |\n")
    text = readme.read_text()
    assert "old table" not in text
    assert f"## Speed\n{bench.README_BEGIN}\n| new |\n{bench.README_END}\n\nafter\n" in text
    bench.write_readme(readme, "| newer |\n")  # idempotent: markers survive
    assert readme.read_text().count(bench.README_BEGIN) == 1 and "| newer |" in readme.read_text()


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")
    with pytest.raises(SystemExit, match="no speed-table markers"):
        bench.write_readme(readme, "| t |\n")
    assert readme.read_text() == "# x\n"


def test_markdown_mode_reads_the_results_file(tmp_path, capsys):
    results = tmp_path / "r.json"
    results.write_text(json.dumps(fake_results()))
    assert bench.main(["--markdown", "-o", str(results)]) == 0
    assert capsys.readouterr().out == bench.render_markdown(fake_results(), source=str(results.resolve()))


def test_rss_flatness_flags_growth():
    flat = [(t / 10, 100.0 if t < 10 else 200.0) for t in range(100)]  # load, then steady
    assert bench.rss_flatness(flat, audio_s=3600)["flat"] is True
    leak = [(t / 10, 100.0 + t) for t in range(100)]  # grows 1 MB a sample
    res = bench.rss_flatness(leak, audio_s=3600)
    assert res["flat"] is False and res["growth_mb"] == 50.0
    assert bench.rss_flatness([(0.1, 5.0)], audio_s=3600)["flat"] is None
    assert bench.rss_flatness(leak, audio_s=180)["flat"] is None  # start-up dominates a short run


def test_run_measured_reports_wall_and_peak_rss_of_the_child():
    # the child holds ~200 MB for a moment: the kernel's peak must see it, the samples show it over time
    code = "import time; b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.8)"
    res = bench.run_measured([sys.executable, "-c", code], sample=True)
    assert res["peak_rss_mb"] > 200
    assert 0.8 <= res["wall_s"] < 30
    assert res["rss_samples"] and max(r for _, r in res["rss_samples"]) > 150


def test_run_measured_names_the_failure():
    with pytest.raises(RuntimeError, match="exited 3:\n.*boom"):
        bench.run_measured([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])


def test_source_audio_alternates_genre_folders(tmp_path):
    for folder, names in {"gtzan/genres/blues": ["b1.wav", "b2.wav"], "gtzan/genres/jazz": ["j1.wav"],
                          "emotify/pop": ["p1.ogg", "p2.ogg"]}.items():
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / name).touch()
    (tmp_path / "gtzan/genres/jazz/notes.txt").touch()
    assert [p.name for p in bench.source_audio(tmp_path)] == ["b1.wav", "j1.wav", "p1.ogg", "b2.wav", "p2.ogg"]


def test_synthetic_wav_is_30_s_of_loud_audio(tmp_path):
    path = tmp_path / "s.wav"
    bench.synthetic_wav(path, seed=1)
    with wave.open(str(path)) as w:
        assert w.getnframes() == 30 * 22050 and w.getnchannels() == 1
        frames = w.readframes(w.getnframes())
    peak = max(abs(int.from_bytes(frames[i : i + 2], "little", signed=True)) for i in range(0, 40000, 2))
    assert peak > 3000  # not silence: musicgenre refuses silent input


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install -y ffmpeg)")
def test_synthetic_clips_and_long_file_have_the_asked_lengths(tmp_path):
    sf = pytest.importorskip("soundfile")
    clips, source = bench.make_clips(tmp_path / "clips", n=2, data=tmp_path / "no-shared-data")
    assert "synthetic" in source and [c.name for c in clips] == ["clip0000.mp3", "clip0001.mp3"]
    assert not list((tmp_path / "clips").glob("*.wav"))
    info = sf.info(str(clips[0]))
    assert info.samplerate == 44100 and info.channels == 2 and abs(info.duration - 30) < 0.1
    long_file = bench.make_long_file(tmp_path / "long.mp3", clips, minutes=1.5)
    assert abs(sf.info(str(long_file)).duration - 90) < 0.2
