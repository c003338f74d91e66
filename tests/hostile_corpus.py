"""A seeded corpus of hostile and odd inputs, built at test time, each with its expected outcome.

``build(root, seed=...)`` writes the files under ``root`` and returns one ``Case`` per input. An
outcome is ``GENRE`` (a prediction must come back) or a ``Reason`` name; cases whose exact failure
depends on how a decoder reads random bytes accept any of ``NO_GENRE`` (still: a fixed reason, never
a genre, never a traceback). ``warning`` is a substring one of the prediction's warnings must hold.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from musicgenre.errors import Reason

from .conftest import tone

GENRE = "GENRE"
NO_GENRE = frozenset({"NOT_AUDIO", "CORRUPT", "UNSUPPORTED_CODEC", "TOO_SHORT", "NO_MUSIC"})
SR = 22050


@dataclass(frozen=True)
class Case:
    path: Path
    expect: frozenset[str]
    warning: str | None = None

    @property
    def label(self) -> str:
        return os.fsdecode(self.path.name).encode("ascii", "backslashreplace").decode()


def music(seconds: float, *, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A little 'melody': tones with harmonics whose pitch changes every half second."""
    rng = np.random.default_rng(seed)
    parts = [tone(0.5, sr=SR, freq=float(rng.choice([220, 262, 330, 392, 440, 523]))) for _ in range(int(seconds * 2))]
    y = np.concatenate(parts)
    return y if channels == 1 else np.stack([y] * channels, axis=1)


def _ffmpeg(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


def _wav_header(*, sr: int, channels: int, bits: int, n_bytes: int) -> bytes:
    block = channels * max(1, bits // 8)
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * block, block, bits)
    return b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", n_bytes)


def build(root: Path, *, seed: int = 1234) -> list[Case]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str | bytes, expect: str | frozenset[str], data: bytes | None = None,
            warning: str | None = None) -> Path:
        path = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(name))))
        if data is not None:
            path.write_bytes(data)
        cases.append(Case(path, frozenset({expect}) if isinstance(expect, str) else expect, warning))
        return path

    song = music(4.0, channels=2, seed=seed)
    good_wav = root / "_song.wav"
    sf.write(good_wav, song, SR)
    have_ffmpeg = shutil.which("ffmpeg") is not None

    # --- nothing, text, random bytes -------------------------------------------------------------
    add("empty.wav", Reason.EMPTY_FILE.name, b"")
    add("notes.mp3", Reason.NOT_AUDIO.name, b"Dear diary, today I renamed a text file to .mp3.\n" * 40)
    add("page.wav", Reason.NOT_AUDIO.name, b"<html><body>" + b"not audio " * 200 + b"</body></html>")
    for i, n in enumerate((1, 16, 333, 4096, 65536)):
        add(f"random_{i}.{['wav', 'mp3', 'm4a', 'ogg', 'flac'][i]}", NO_GENRE, rng.bytes(n))

    # --- truncated and damaged music ------------------------------------------------------------
    wav = good_wav.read_bytes()
    for cut in (4, 44, 1000):
        add(f"cut_{cut}.wav", NO_GENRE, wav[:cut])
    add("half.wav", GENRE, wav[: len(wav) // 2])
    flac = root / "_song.flac"
    sf.write(flac, song, SR)
    data = flac.read_bytes()
    add("half.flac", GENRE, data[: len(data) // 2], warning="corrupt or truncated")
    rot = bytearray(data)
    start = len(rot) // 3
    rot[start : start + 4096] = rng.bytes(4096)
    add("bitrot.flac", GENRE, bytes(rot), warning="corrupt or truncated")
    if have_ffmpeg:
        mp3 = _ffmpeg(good_wav, root / "_song.mp3")
        data = mp3.read_bytes()
        rot = bytearray(data)
        start = len(rot) // 3
        rot[start : start + 4096] = rng.bytes(4096)
        add("bitrot.mp3", GENRE, bytes(rot), warning="corrupt or truncated")
        add("cut_10.mp3", NO_GENRE, data[:10])
        m4a = _ffmpeg(good_wav, root / "_song.m4a", "-c:a", "aac")
        data = m4a.read_bytes()
        add("cut_half.m4a", NO_GENRE | {GENRE}, data[: len(data) // 2])  # moov may sit at either end
        rot = bytearray(data)
        rot[len(rot) // 2 : len(rot) // 2 + 2048] = rng.bytes(2048)
        add("bitrot.m4a", NO_GENRE | {GENRE}, bytes(rot))
        # chained Ogg and concatenated MP3 whose parts differ in sample rate: decoded in full
        a, b = root / "_a.wav", root / "_b.wav"
        sf.write(a, music(3.0, seed=1), 44100)  # 22.05-kHz samples written at 44.1 kHz: 1.5 s, an octave up
        sf.write(b, music(3.0, seed=2), 22050)
        parts = [_ffmpeg(a, root / "_a.ogg", "-c:a", "libvorbis"), _ffmpeg(b, root / "_b.ogg", "-c:a", "libvorbis")]
        add("chained.ogg", GENRE, b"".join(p.read_bytes() for p in parts))
        parts = [_ffmpeg(a, root / "_a.mp3"), _ffmpeg(b, root / "_b.mp3")]
        add("concat.mp3", GENRE, b"".join(p.read_bytes() for p in parts))
        # odd names: a file named like an ffmpeg protocol must be read as a file
        shutil.copy(m4a, add("pipe:0.m4a", GENRE))
        shutil.copy(mp3, add("-i.mp3", GENRE))
        # a playlist naming a local file: never decoded
        secret = root / "_secret.wav"
        shutil.copy(good_wav, secret)
        playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:4,\n{secret}\n#EXT-X-ENDLIST\n".encode()
        add("playlist.m4a", Reason.NOT_AUDIO.name, playlist)
        add("playlist_url.mp3", Reason.NOT_AUDIO.name, f"#EXTM3U\n#EXTINF:4,\nfile:{secret}\n".encode())
        add("concat.ogg", Reason.NOT_AUDIO.name, f"ffconcat version 1.0\nfile '{secret}'\n".encode())

    # --- header bombs and bad headers -------------------------------------------------------------
    add("bomb_1hz.wav", Reason.CORRUPT.name, _wav_header(sr=1, channels=1, bits=16, n_bytes=40000) + bytes(40000))
    add("zero_channels.wav", NO_GENRE, _wav_header(sr=22050, channels=0, bits=16, n_bytes=4000) + bytes(4000))
    add("huge_rate.wav", NO_GENRE, _wav_header(sr=2**31 - 1, channels=1, bits=16, n_bytes=4000) + bytes(4000))
    add("many_channels.wav", NO_GENRE, _wav_header(sr=22050, channels=4000, bits=16, n_bytes=8000) + bytes(8000))
    noise7 = rng.integers(0, 128, 5 * 22050, dtype=np.uint8).tobytes()  # a '7-bit' file of noise
    add("seven_bit.wav", NO_GENRE, _wav_header(sr=22050, channels=1, bits=8, n_bytes=len(noise7)) + noise7)
    add("lying_size.wav", GENRE, _wav_header(sr=SR, channels=1, bits=16, n_bytes=2**31)
        + (music(2.0) * 32767).astype("<i2").tobytes())

    # --- signals that are not music -------------------------------------------------------------
    def wav_of(name: str, y: np.ndarray, expect: str) -> None:
        sf.write(add(name, expect), y, SR)

    wav_of("silence.wav", np.zeros(SR * 3, np.float32), Reason.NO_MUSIC.name)
    wav_of("dc.wav", np.full(SR * 3, 0.5, np.float32), Reason.NO_MUSIC.name)
    click = np.zeros(SR * 3, np.float32)
    click[SR] = 0.9
    wav_of("click.wav", click, Reason.NO_MUSIC.name)
    wav_of("noise.wav", (rng.standard_normal(SR * 3) * 0.3).astype(np.float32), Reason.NO_MUSIC.name)
    mono = music(3.0, seed=3)
    wav_of("antiphase.wav", np.stack([mono, -mono], axis=1), GENRE)
    wav_of("short.wav", music(0.5)[: SR // 2], Reason.TOO_SHORT.name)

    # --- names and file kinds -------------------------------------------------------------------
    shutil.copy(good_wav, add(b"caf\xe9 latin-1.wav", GENRE))
    shutil.copy(good_wav, add("new\nline.wav", GENRE))
    shutil.copy(good_wav, add("space and 'quote'.WAV", GENRE))
    os.symlink(good_wav, add("link.wav", GENRE))
    os.symlink(root / "_gone.wav", add("dangling.wav", Reason.FILE_NOT_FOUND.name))
    os.symlink(root / "loop_b.wav", add("loop_a.wav", Reason.SYMLINK_LOOP.name))
    os.symlink(root / "loop_a.wav", add("loop_b.wav", Reason.SYMLINK_LOOP.name))
    if hasattr(os, "mkfifo"):
        os.mkfifo(add("fifo.wav", Reason.NOT_A_REGULAR_FILE.name))
    add("missing.wav", Reason.FILE_NOT_FOUND.name)
    if os.geteuid() != 0:  # root reads everything
        locked = add("locked.wav", Reason.PERMISSION_DENIED.name)
        shutil.copy(good_wav, locked)
        locked.chmod(0)
    return cases


def outcome(result: object) -> str:
    """A predict_many result -> GENRE or the error's Reason name."""
    reason = getattr(result, "reason", None)
    return reason.name if reason is not None else GENRE
