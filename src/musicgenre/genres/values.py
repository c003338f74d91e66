"""Genre tag values as files and taggers write them -> genre names, and a name's spelling-free identity.

1. **Splitting** (``split_values``). ``;``, ``|``, backslashes, NUL and line breaks always separate values (no
   genre name holds them). ``/`` and ``,`` separate too ("Rock/Pop", "Rock, Pop"), except inside the few names
   that contain them: the ID3 list's ("Pop/Funk"), "Singer/Songwriter", "Hip-Hop/Rap", "R&B/Soul" and Discogs'
   "Folk, World, & Country". ``&``, ``+``, "and" and "'n'" never split: "Drum & Bass", "R&B", "Rock & Roll" are
   names, and a wrong split silently invents labels while an unsplit "Jazz & Blues" is a visible class an alias
   can fix.
2. **ID3 codes** (``resolve_id3_numeric``: "17", "(17)", "(17)(18)", "(17)Rock", "(RX)", "(CR)") resolve through
   mutagen's ID3v1 list; words after codes are the ID3v2.3 refinement and win ("(4)Eurodisco" is Eurodisco).
3. **Spelling** (``canonical_key``): case, accents, spacing, punctuation and the connectives "&"/"+"/"and"/"'n'"
   are ignored, so "Hip-Hop", "hip hop", "HipHop" and "hiphop" are one genre, as are "Rock & Roll" and
   "Rock'n'Roll". Different words never merge here (``words``: one rule per word).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from .words import NOT_GENRES

__all__ = ["canonical_key", "genre_keys", "genre_names", "resolve_id3_numeric", "split_values", "tidy"]

_STRONG = re.compile(r"\s*(?:[;|\x00\r\n]|\\+)\s*")
_WEAK = re.compile(r"\s*([/,])\s*")
_WORD = re.compile(r"[^\W_]+")
_CONNECTIVES = frozenset({"and", "n"})
_ID3_CODES = re.compile(r"((?:\((?:[0-9]+|RX|CR)\))+)(.*)", re.DOTALL)
_ID3_SPECIAL = {"RX": "Remix", "CR": "Cover"}


@functools.cache
def _id3_list() -> tuple[str, ...]:
    from mutagen.id3 import TCON

    return tuple(TCON.GENRES)


def _fold_accents(text: str) -> str:
    """"Électro" -> "Electro": drop the marks on Latin letters only (a kana's voicing mark is spelling)."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        parts = unicodedata.normalize("NFD", ch)
        plain = len(parts) > 1 and parts[0].isascii() and all(unicodedata.combining(c) for c in parts[1:])
        out.append(parts[0] if plain else ch)
    return "".join(out)


def canonical_key(value: str) -> str:
    """The spelling-free identity of a name: case, accents, spacing, punctuation and the connectives
    between words ("&", "+", "and", "'n'") ignored. "Hip-Hop", "hip hop", "HipHop" -> "hiphop";
    "Rock & Roll", "Rock'n'Roll" -> "rockroll"; "R&B" -> "rb". Empty for a value with no letters or digits."""
    words = _WORD.findall(_fold_accents(value).casefold())
    return "".join(w for i, w in enumerate(words) if not (w in _CONNECTIVES and 0 < i < len(words) - 1))


def tidy(value: str) -> str:
    return " ".join(value.split())


_COMPOUNDS = frozenset(canonical_key(name) for name in
                       [g for g in _id3_list() if _WEAK.search(g)]
                       + ["Singer/Songwriter", "Hip-Hop/Rap", "R&B/Soul", "Folk, World, & Country"])
_LONGEST_COMPOUND = 3  # pieces: "Folk", "World", "& Country"


def split_values(value: str) -> list[str]:
    """One raw tag value -> the separate values it joins ("Rock; Pop", "Rock/Pop", "Rock, Pop" -> Rock, Pop),
    keeping the names that contain a separator whole ("Pop/Funk", "Folk, World, & Country")."""
    out: list[str] = []
    for part in _STRONG.split(value):
        bits = _WEAK.split(tidy(part))  # words, separator, words, ...
        words, seps = bits[::2], bits[1::2]
        i = 0
        while i < len(words):
            for j in range(min(len(words) - 1, i + _LONGEST_COMPOUND - 1), i, -1):  # the longest name first
                joined = words[i] + "".join(f"{seps[k]}{' ' if seps[k] == ',' else ''}{words[k + 1]}"
                                            for k in range(i, j))
                if canonical_key(joined) in _COMPOUNDS:
                    out.append(joined)
                    i = j + 1
                    break
            else:
                out.append(words[i])
                i += 1
    return [v for v in out if v]


def resolve_id3_numeric(value: str) -> list[str]:
    """ID3 numeric genres -> names via mutagen's ID3v1 list: "17", "(17)" -> Rock; "(17)(18)" -> Rock, Techno;
    "(RX)" -> Remix, "(CR)" -> Cover; words after the codes refine them and win ("(17)Hard Rock" ->
    Hard Rock); "((abc)" is an escaped "(abc)". Unknown codes (255 means "none") give nothing; any other
    value comes back as it is."""
    value = value.strip()
    names = _id3_list()
    if re.fullmatch(r"[0-9]{1,3}", value):
        code = int(value)
        return [names[code]] if code < len(names) else [] if code < 256 else [value]
    if value in _ID3_SPECIAL:
        return [_ID3_SPECIAL[value]]
    m = _ID3_CODES.fullmatch(value)
    if m is None:
        return [value[1:] if value.startswith("((") else value]
    text = m.group(2).strip()
    if text:
        return [text[1:] if text.startswith("((") else text]
    out = []
    for code in re.findall(r"\(([0-9]+|RX|CR)\)", m.group(1)):
        name = _ID3_SPECIAL.get(code) or (names[int(code)] if int(code) < len(names) else None)
        if name and name not in out:
            out.append(name)
    return out


def genre_names(value: str) -> list[str]:
    """One raw tag value -> the genre names it holds: split, then ID3 codes resolved."""
    return [name for piece in split_values(value) for name in resolve_id3_numeric(piece)]


def genre_keys(value: str) -> frozenset[str]:
    """One raw genre tag value -> the canonical keys of the genres it names ("Unknown" and the like are none)."""
    keys = {canonical_key(name) for name in genre_names(value)}
    return frozenset(key for key in keys if key and key not in NOT_GENRES)
