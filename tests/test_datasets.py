"""Dataset readers: GTZAN (both splits), FMA, folder, manifest with groups, Hugging Face on disk."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from musicgenre.data import load_dataset

from .conftest import tone, write_audio


def _touch_audio(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_audio(path, tone(0.2, 8000), 8000)


def test_gtzan_random_and_fault_filtered(tmp_path):
    for g in ("blues", "jazz"):
        for i in range(20):
            _touch_audio(tmp_path / "genres" / g / f"{g}.{i:05d}.wav")
    ds = load_dataset(tmp_path, seed=1)
    assert ds.labels == ["blues", "jazz"] and len(ds.examples) == 40
    assert Counter(e.split for e in ds.examples) == {"train": 32, "valid": 4, "test": 4}
    assert load_dataset(tmp_path, seed=1).examples == ds.examples  # seeded
    ff = load_dataset(tmp_path, split="fault-filtered")
    assert ff.skipped["missing on disk"] > 0 and ff.examples
    assert {e.split for e in ff.examples} <= {"train", "valid", "test"}
    assert "blues/blues.00000" in ff.examples[0].source or ff.examples  # listed clips that exist are used


def test_fma(tmp_path):
    meta = tmp_path / "fma_metadata"
    meta.mkdir()
    rows = [(2, "Hip-Hop", "small", "training"), (3, "Rock", "small", "validation"), (5, "", "small", "test"),
            (10, "Pop", "small", "test"), (20, "Rock", "medium", "training"), (11, "Rock", "small", "training")]
    lines = [",track,track,set,set", ",genre_top,title,subset,split", "track_id,,,,"]
    lines += [f"{t},{g},x,{s},{sp}" for t, g, s, sp in rows]
    (meta / "tracks.csv").write_text("\n".join(lines) + "\n")
    for t in (2, 3, 5, 10, 20):  # 11 has no audio
        _touch_audio(tmp_path / "fma_small" / f"{t:06d}"[:3] / f"{t:06d}.mp3")
    ds = load_dataset(tmp_path)
    assert ds.name == "fma_small" and ds.labels == ["Hip-Hop", "Pop", "Rock"]
    assert {(e.label, e.split) for e in ds.examples} == {("Hip-Hop", "train"), ("Rock", "valid"), ("Pop", "test")}
    assert ds.skipped == {"without a top genre": 1, "without audio": 1}


def test_manifest_groups_never_cross_splits(tmp_path):
    lines = ["path,label,group"]
    for i in range(60):
        p = tmp_path / "audio" / f"{i}.wav"
        _touch_audio(p)
        lines.append(f"audio/{i}.wav,{'ab'[i % 2]},artist{i // 3}")
    lines.append("audio/missing.wav,a,artistX")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path / "m.csv")
    assert len(ds.examples) == 60 and ds.skipped["missing on disk"] == 1
    where: dict[str, set] = {}
    for e in ds.examples:
        where.setdefault(e.group, set()).add(e.split)
    assert all(len(s) == 1 for s in where.values())
    assert {e.split for e in ds.examples} == {"train", "valid", "test"}


def test_folder_per_label(tmp_path):
    for lab in ("x", "y", "z"):
        for i in range(5):
            _touch_audio(tmp_path / lab / f"{i}.flac")
    ds = load_dataset(tmp_path)
    assert ds.labels == ["x", "y", "z"] and len(ds.examples) == 15


def test_hf_dataset_on_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    import io

    import soundfile as sf

    blobs = []
    for f in (220, 440, 880, 660):
        buf = io.BytesIO()
        sf.write(buf, tone(1.0, 16000, f), 16000, format="WAV")
        blobs.append({"bytes": buf.getvalue(), "path": None})
    d = datasets.Dataset.from_dict({"audio": blobs, "genre": [0, 1, 0, 1]})
    d = d.cast_column("audio", datasets.Audio(decode=False))
    d = d.cast_column("genre", datasets.ClassLabel(names=["low", "high"]))
    d.save_to_disk(str(tmp_path / "hf"))
    ds = load_dataset(tmp_path / "hf")
    assert ds.labels == ["high", "low"] and len(ds.examples) == 4
    from musicgenre import load_audio

    y = load_audio(ds.examples[0].source, sr=16000)  # our own loader decodes the stored bytes
    assert len(y) == 16000 and np.abs(y).max() > 0.3
