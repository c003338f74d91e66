"""Looking at a source's first bytes before any decoder does: playlists and text are refused, and the
format decides the decoder (soundfile first for what it reads well, ffmpeg for the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AudioDecodeError, Reason
from . import _ffmpeg

# Formats soundfile decodes well; anything else (and MP3/Ogg when ffmpeg exists) goes to ffmpeg.
SOUNDFILE_FIRST = frozenset({"WAV", "WAVEX", "FLAC", "AIFF", "AU", "W64", "RF64", "CAF", "RAW", "IRCAM", "NIST"})
SOUNDFILE_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"FORM", b"fLaC", b".snd", b"caff", b"riff")
_MP3_OGG_MAGIC = (b"ID3", b"OggS")
TEXT_SNIFF = 512


def sniff(name: str, head: bytes) -> None:
    """Refuse playlists and plain text before any decoder sees them."""
    lead = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lead.startswith((b"#extm3u", b"#extinf", b"ffconcat", b"[playlist]", b"<?xml", b"<smil", b"<asx")) \
            or (lead.startswith(b"#") and b"://" in lead) or lead.startswith((b"http://", b"https://", b"file:")):
        raise AudioDecodeError(name, Reason.NOT_AUDIO, "a playlist or link; playlists are refused")
    if len(head) >= 64 and b"\0" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            return
        if sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.98 * len(text):
            raise AudioDecodeError(name, Reason.NOT_AUDIO, "a text file")


def soundfile_first(head: bytes) -> bool:
    """WAV/AIFF/FLAC/AU/CAF/W64, MP3 and Ogg are opened with soundfile (fast, in-process: an ffmpeg process
    costs about 3x the decode time of a 30-s MP3); other containers go to ffmpeg when it exists.
    ``needs_ffmpeg`` then sends the MP3/Ogg files soundfile would cut short (chained or re-rated streams)
    to ffmpeg, and damage met while decoding resumes in ffmpeg."""
    return _ffmpeg.ffmpeg_exe() is None or head.startswith(SOUNDFILE_MAGIC + _MP3_OGG_MAGIC) or _is_mpeg_frame(head)


def _is_mpeg_frame(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def _count_ogg_bos(path: Path, *, stop_at: int) -> int:
    """Beginning-of-stream pages (capture pattern, version 0, BOS flag), read in 1 MB chunks: flat memory."""
    bos, count, tail = b"OggS\x00\x02", 0, b""
    with open(path, "rb") as fh:
        while count < stop_at and (chunk := fh.read(1 << 20)):
            data = tail + chunk
            count += data.count(bos)
            tail = data[-(len(bos) - 1) :]  # a pattern cut by the chunk border is found next time
    return count


def needs_ffmpeg(f: Any, path: Path | None, declared: float | None) -> bool:
    """Streams that soundfile stops early on without an error: a chained Ogg (a second beginning-of-stream
    page) or an MP3 whose parts differ in sample rate (mutagen's length estimate from the file size is
    longer than what soundfile will decode)."""
    if path is None:
        return False
    if f.format == "OGG":
        return _count_ogg_bos(path, stop_at=2) > 1
    if f.format == "MP3":
        try:
            from mutagen.mp3 import MP3

            mp3 = MP3(path)
            tag_bytes = getattr(mp3.tags, "size", 0) or 0  # an embedded cover image is not audio
            # the first frames' (or the Xing header's average) bit rate over the whole audio payload
            estimate = (path.stat().st_size - tag_bytes) * 8 / max(1, getattr(mp3.info, "bitrate", 0) or 0)
        except Exception:  # mutagen cannot parse it: let the decoders decide
            return False
        return declared is not None and estimate > 1.1 * declared + 0.5
    return True
