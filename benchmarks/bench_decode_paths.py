"""Decode time of the ffmpeg path vs the soundfile path on the same files (decode only, no model).

    PYTHONPATH=src python -m benchmarks.bench_decode_paths ../shared/data/emotify --limit 20

MP3 and Ogg go through ffmpeg when it is installed (resync after damage, chained streams, no mpg123
noise); this measures what that costs against soundfile, which is used when ffmpeg is missing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import musicgenre.audio as audio
from musicgenre.audio import _ffmpeg


def decode_all(files: list[Path]) -> tuple[float, float]:
    """(seconds of audio, wall seconds) to decode ``files`` to 16 kHz mono."""
    t = time.perf_counter()
    n = sum(len(b) for f in files for b in audio.stream_audio(f, sr=16000).blocks)
    return n / 16000, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args()
    errors: list[str] = []
    files = [f for f in audio.find_audio_files([args.folder], errors=errors)
             if f.suffix.lower() in (".mp3", ".ogg", ".opus")][: args.limit]
    real = _ffmpeg.ffmpeg_exe
    for label, exe in (("ffmpeg", real), ("soundfile", lambda: None), ("ffmpeg (again)", real)):
        _ffmpeg.ffmpeg_exe = exe  # type: ignore[assignment]  # every decoder asks _ffmpeg at call time
        seconds, wall = decode_all(files)
        print(f"{label:>15}: {len(files)} files, {seconds:.0f} s of audio in {wall:.2f} s "
              f"({seconds / wall:.0f}x real time, {1000 * wall / len(files):.0f} ms per file)")
    _ffmpeg.ffmpeg_exe = real


if __name__ == "__main__":
    main()
