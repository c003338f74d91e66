"""The genre word lists, one rule for each word.

**Spellings** (``CANONICAL``) are one genre written differently: "hiphop", "hip-hop" and "hip_hop" are hip hop,
"rnb" and "rhythm and blues" are r&b. **Styles** (``STYLE_OF``) are genres of their own that belong to a wider one:
house, techno and trance are electronic music; so are **electronica, electro and EDM**. The word lists used to
disagree about these three: ``genres.canonical`` folded "electronica" into "electronic" while ``learn`` kept an
owner's "Electronica" apart from "Electronic". Decision: they are styles, not spellings. A backbone tag
"electronica" still names the electronic genre (``is_genre_tag``: a style names its genre, so the tags line and
the "unknown" detector behave as before), and an owner's "Electronica" stays its own genre when learning unless
the owner merges it (``--alias Electronica=Electronic``) or backs it off (``--parent Electronica=Electronic``):
a library that tags both says they differ. A model label "electronica" is now shown as "Electronica" (no shipped
model has one).

``NOT_GENRES``: values that say "no genre" (or describe the version, as ID3's RX/CR do): reported, never labels
(canonical keys). ``GENRE_WORDS``: the backbones' tags that name a genre or style (the "unknown" detector's
vocabulary).
"""

from __future__ import annotations

# label id (as a model may name it) -> canonical name: spellings of one genre only. The shipped labels blues,
# classical, country, disco, jazz, metal, pop, reggae, rock, electronic are already canonical.
CANONICAL: dict[str, str] = {
    "hiphop": "hip hop",
    "hip-hop": "hip hop",
    "hip_hop": "hip hop",
    "rnb": "r&b",
    "r-n-b": "r&b",
    "r_and_b": "r&b",
    "rhythm and blues": "r&b",
    "heavy_metal": "heavy metal",
    "heavymetal": "heavy metal",
    "easy_listening": "easy listening",
}

# Tags that name a style of a genre: tag (canonical) -> that genre (canonical). What the shipped taggers'
# vocabularies hold (MSD: house, electronica, electro; MTT: techno, classic, opera) and a few plain cases.
STYLE_OF: dict[str, str] = {
    "electronica": "electronic",
    "electro": "electronic",
    "edm": "electronic",
    "house": "electronic",
    "techno": "electronic",
    "trance": "electronic",
    "dubstep": "electronic",
    "drum and bass": "electronic",
    "classic": "classical",  # MagnaTagATune's tag for classical music
    "opera": "classical",
    "baroque": "classical",
    "bebop": "jazz",
}

# Backbone tags (MSD and MagnaTagATune vocabularies, lower-cased) that name a genre or style of music; the
# others (moods, instruments, eras, voices) say nothing about which genre a recording lacks. "indie" and
# "alternative" are left out: they name a scene (independent labels, not the mainstream) that Last.fm's
# listeners put on rock, pop, folk and electronic alike, not a sound; as foreign tags they called alternative
# rock from an unseen source unknown (docs/models.md, "None of its genres"). "indie rock", "alternative rock"
# and "indie pop" stay: they say rock or pop.
GENRE_WORDS = frozenset({
    "rock", "pop", "electronic", "dance", "alternative rock", "jazz", "metal",
    "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock", "ambient",
    "experimental", "hip-hop", "country", "easy listening", "funk", "electro", "heavy metal", "progressive rock",
    "rnb", "indie pop", "house", "chillout", "chill",
    # MagnaTagATune
    "classical", "techno", "new age", "opera", "indian", "choral", "classic", "baroque", "world", "oriental",
})

# Values that say "no genre" (or describe the version, as ID3's RX/CR do), as canonical keys.
NOT_GENRES = frozenset({"unknown", "unknowngenre", "genre", "none", "nogenre", "na", "null", "undefined",
                        "other", "misc", "miscellaneous", "default", "remix", "cover"})
