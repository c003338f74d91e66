"""musicgenre.learn.vocabulary: a library's own genre tags -> one vocabulary, per-file labels, artist groups."""

from __future__ import annotations

import itertools

import pytest

from musicgenre.genres.provenance import written_by_us
from musicgenre.genres.tracks import TrackTags, group_key, group_keys
from musicgenre.genres.values import canonical_key, genre_names, resolve_id3_numeric, split_values
from musicgenre.learn.vocabulary import build_vocabulary, grouping_leaks, parse_aliases, resolve_aliases

_serial = itertools.count()


def tracks(genre: str | list[str], n: int, artists: int = 4, **tags: str) -> list[TrackTags]:
    """``n`` files tagged ``genre`` by ``artists`` artists, each in its own artist/album folder."""
    values = [genre] if isinstance(genre, str) else genre
    call = next(_serial)
    out = []
    for i in range(n):
        artist = f"Artist {call} x {i % artists}"
        out.append(TrackTags(path=f"/music/{artist}/Album/{next(_serial):05d}.flac", genres=list(values),
                             artist=artist, **tags))
    return out


def vocab(*groups: list[TrackTags], **kw):
    """``build_vocabulary`` at these tests' thresholds (20 files, 3 artists) unless told otherwise."""
    return build_vocabulary([t for g in groups for t in g], **{"min_files": 20, "min_artists": 3, **kw})


# ---- values -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, parts", [
    ("Rock; Pop", ["Rock", "Pop"]),
    ("Rock/Pop", ["Rock", "Pop"]),
    ("Rock / Pop", ["Rock", "Pop"]),
    ("Rock,Pop , Jazz", ["Rock", "Pop", "Jazz"]),
    ("Rock | Jazz", ["Rock", "Jazz"]),
    ("Rock\\\\Pop", ["Rock", "Pop"]),  # Mp3tag's multi-value display separator
    ("Rock\x00Pop", ["Rock", "Pop"]),  # ID3v2.4 values read raw
    ("Drum & Bass", ["Drum & Bass"]),
    ("R&B", ["R&B"]),
    ("Rock & Roll", ["Rock & Roll"]),
    ("Jazz+Funk", ["Jazz+Funk"]),
    ("Pop/Funk", ["Pop/Funk"]),  # an ID3v1 name
    ("Singer/Songwriter", ["Singer/Songwriter"]),
    ("Folk, World, & Country", ["Folk, World, & Country"]),  # Discogs
    ("Rock, Folk, World, & Country/Jazz", ["Rock", "Folk, World, & Country", "Jazz"]),
    ("Drum & Bass; Rock/Pop", ["Drum & Bass", "Rock", "Pop"]),
    ("  Hip  Hop  ", ["Hip Hop"]),
    ("Rock;;", ["Rock"]),
    ("", []),
])
def test_joined_values_are_split_and_names_with_separators_kept(value, parts):
    assert split_values(value) == parts


@pytest.mark.parametrize("value, names", [
    ("17", ["Rock"]), ("(17)", ["Rock"]), ("(17)Rock", ["Rock"]), ("(7)", ["Hip-Hop"]),
    ("(17)(18)", ["Rock", "Techno"]), ("(17)(RX)", ["Rock", "Remix"]), ("(RX)", ["Remix"]), ("(CR)", ["Cover"]),
    ("(4)Eurodisco", ["Eurodisco"]),  # ID3v2.3 refinement: the words win
    ("(62)", ["Pop/Funk"]), ("127", ["Drum & Bass"]), ("((Live)", ["(Live)"]),
    ("255", []), ("(200)", []),  # "none" and codes past the list
    ("2010", ["2010"]), ("Rock", ["Rock"]), ("Rock (17)", ["Rock (17)"]),
])
def test_id3_numeric_genres_resolve_through_mutagens_list(value, names):
    assert resolve_id3_numeric(value) == names


def test_codes_are_resolved_after_splitting_and_not_split_again():
    assert genre_names("(17); (62)") == ["Rock", "Pop/Funk"]
    assert genre_names("(17)Rock/Pop") == ["Rock", "Pop"]


@pytest.mark.parametrize("a, b", [
    ("Hip-Hop", "hip hop"), ("HipHop", "hiphop"), ("HIP HOP", "Hip_Hop"), ("Rock & Roll", "Rock'n'Roll"),
    ("Rock and Roll", "rock 'n' roll"), ("Drum & Bass", "Drum n Bass"), ("Drum and Bass", "drum&bass"),
    ("R&B", "R & B"), ("Électronique", "electronique"), ("Synth-Pop", "synthpop"), ("Jazz+Funk", "Jazz Funk"),
    ("80's", "80s"), ("Post-Rock", "Post Rock"),
])
def test_spelling_variants_share_a_key(a, b):
    assert canonical_key(a) == canonical_key(b)


@pytest.mark.parametrize("a, b", [
    ("Electronica", "Electronic"), ("Alt. Rock", "Alternative Rock"), ("Electro Rock", "Electronic Rock"),
    ("Alternative", "Alternative Rock"), ("R&B", "RnB"), ("Electro", "Electronic"), ("ブルース", "フルース"),
])
def test_different_words_keep_different_keys(a, b):
    assert canonical_key(a) != canonical_key(b)


# ---- aliases ----------------------------------------------------------------------------------------

def test_aliases_parse_chain_and_refuse_cycles():
    assert parse_aliases(["Electronica=Electronic", " Alt.  Rock = Alternative Rock "]) == {
        "Electronica": "Electronic", "Alt. Rock": "Alternative Rock"}
    for bad in ["Electronica", "=Rock", "Rock=", "Rock=--"]:
        with pytest.raises(ValueError, match="SOURCE=TARGET"):
            parse_aliases([bad])
    chained = resolve_aliases({"Electronica": "Electronic", "Electronic": "Electronic Music", "IDM": "electronica"})
    assert chained == {"electronica": ("electronicmusic", "Electronic Music"),
                       "electronic": ("electronicmusic", "Electronic Music"),
                       "idm": ("electronicmusic", "Electronic Music")}
    assert resolve_aliases({"Hip Hop": "Hip-Hop"}) == {}  # a spelling: nothing to do
    with pytest.raises(ValueError, match="cycle"):
        resolve_aliases({"Rock": "Pop", "Pop": "Rock"})
    with pytest.raises(ValueError, match="both"):
        resolve_aliases({"Electronica": "Electronic", "electronica": "Techno"})


# ---- the vocabulary -----------------------------------------------------------------------------------

def test_spellings_merge_under_the_owners_most_frequent_one():
    v = vocab(tracks("hip hop", 6), tracks("Hip-Hop", 12), tracks("HipHop", 3), tracks("hiphop", 1),
              tracks("(7)", 2))
    assert v.genres == ["Hip-Hop"] and v.kept[0].files == 24
    merges = [m.as_dict() for m in v.merged]
    assert {"into": "Hip-Hop", "from": ["hip hop", "HipHop", "hiphop"], "files": 10, "how": "spelling"} in merges
    assert {"into": "Hip-Hop", "from": ["(7)"], "files": 2, "how": "id3"} in merges
    assert set(v.labels.values()) == {"Hip-Hop"}


def test_a_tie_between_spellings_goes_to_the_first_seen():
    v = vocab(tracks("Trip Hop", 10), tracks("Trip-Hop", 10))
    assert v.genres == ["Trip Hop"]


def test_different_words_merge_only_by_alias():
    library = [tracks("Alternative Rock", 20), tracks("Alt. Rock", 20), tracks("(40)", 5), tracks("Electro Rock", 20),
               tracks("Electronica", 20), tracks("Electronic", 20)]
    plain = vocab(*library)
    assert sorted(plain.genres) == ["Alt. Rock", "Alternative Rock", "Electro Rock", "Electronic", "Electronica"]
    aliased = vocab(*library, aliases={"Alt. Rock": "Alternative Rock", "Electronica": "Electronic"})
    assert sorted(aliased.genres) == ["Alternative Rock", "Electro Rock", "Electronic"]
    counts = {g.name: g.files for g in aliased.kept}
    assert counts == {"Alternative Rock": 45, "Electro Rock": 20, "Electronic": 40}
    merges = [m.as_dict() for m in aliased.merged]
    assert {"into": "Alternative Rock", "from": ["Alt. Rock"], "files": 25, "how": "alias"} in merges  # (40) too
    assert {"into": "Electronic", "from": ["Electronica"], "files": 20, "how": "alias"} in merges


def test_an_alias_chain_ends_at_a_target_nobody_spelled():
    v = vocab(tracks("electronica", 15), tracks("IDM", 10),
              aliases={"Electronica": "Electronic", "Electronic": "Electronic Music", "IDM": "Electronica"})
    assert v.genres == ["Electronic Music"] and v.kept[0].files == 25


def test_an_alias_matches_a_whole_joined_value_before_it_is_split():
    v = vocab(tracks("Rock/Pop", 20), tracks("Rock", 20), aliases={"Rock/Pop": "Pop Rock"})
    assert sorted(v.genres) == ["Pop Rock", "Rock"] and not v.splits


def test_joined_values_split_and_reported():
    v = vocab(tracks("Rock; Pop", 5), tracks("Rock", 30), tracks("Drum & Bass", 20))
    assert [(s.value, s.into, s.files) for s in v.splits] == [("Rock; Pop", ("Rock", "Pop"), 5)]
    assert sorted(v.genres) == ["Drum & Bass", "Rock"]
    assert v.kept[0].name == "Rock" and v.kept[0].files == 35  # Pop is too rare: those files are Rock examples


def test_rare_genres_are_dropped_with_the_reason():
    v = vocab(tracks("Rock", 30), tracks("Polka", 19), tracks("Shoegaze", 25, artists=2), tracks("Unknown", 40),
              tracks("Other", 30), tracks("(RX)", 2), min_files=20, min_artists=3)
    assert v.genres == ["Rock"]
    why = {d.genre: (d.files, d.artists, d.reason) for d in v.dropped}
    assert why["Polka"] == (19, 4, "only 19 files (--min-files 20)")
    assert why["Shoegaze"] == (25, 2, "only 2 artists (--min-artists 3)")
    assert why["Unknown"][2] == why["Other"][2] == why["Remix"][2] == "not a genre"
    assert vocab(tracks("Polka", 19), min_files=19).genres == ["Polka"]
    with pytest.raises(ValueError):
        vocab(tracks("Polka", 19), min_files=0)


def test_a_rare_genre_backs_off_to_the_parent_the_owner_named():
    library = [tracks("Electronic", 25), tracks("Synthwave", 8), tracks("Vaporwave", 4), tracks("Rock", 30),
               tracks("Jazz", 25)]
    parents = {"Synthwave": "Electronic", "Vaporwave": "Synthwave", "Jazz": "Blues"}
    v = vocab(*library, parents=parents)
    # Synthwave (8 files) is too rare: its files and, through it, Vaporwave's count as Electronic; Jazz is kept
    assert sorted(v.genres) == ["Electronic", "Jazz", "Rock"]
    assert {g.name: g.files for g in v.kept} == {"Electronic": 37, "Rock": 30, "Jazz": 25}
    merges = sorted((m.into, m.from_, m.files) for m in v.merged if m.how == "parent")
    assert merges == [("Electronic", ("Synthwave",), 8), ("Electronic", ("Vaporwave",), 4)]
    assert not v.dropped
    # a parent too rare itself backs off to its own parent; without parents the rare genres are dropped
    chain = vocab(tracks("Synthwave", 8), tracks("Vaporwave", 14), tracks("Rock", 30),
                  parents={"Synthwave": "Vaporwave", "Vaporwave": "Electronic"})
    assert sorted(chain.genres) == ["Electronic", "Rock"] and {g.name: g.files for g in chain.kept}["Electronic"] == 22
    assert sorted(d.genre for d in vocab(*library).dropped) == ["Synthwave", "Vaporwave"]


def test_a_genre_given_both_an_alias_and_a_parent_is_refused():
    with pytest.raises(ValueError, match="both --alias and --parent"):
        vocab(tracks("Synthwave", 8), tracks("Rock", 30), aliases={"Synthwave": "Electronic"},
              parents={"synthwave": "Rock"})
    with pytest.raises(ValueError, match="cycle"):
        vocab(tracks("A", 8), tracks("Rock", 30), parents={"A": "B", "B": "A"})
    with pytest.raises(ValueError, match="--parent"):
        parse_aliases(["Synthwave"], flag="--parent")


def test_files_with_several_kept_genres_are_ambiguous_not_trained():
    both = tracks(["Rock", "Jazz"], 5)
    v = vocab(tracks("Rock", 25), tracks("Jazz", 25), both)
    assert sorted(v.genres) == ["Jazz", "Rock"]
    assert {g.name: (g.files, g.shared) for g in v.kept} == {"Rock": (25, 5), "Jazz": (25, 5)}
    assert v.ambiguous == {t.path: ("Jazz", "Rock") for t in both}
    assert not set(v.ambiguous) & set(v.labels) and len(v.labels) == 50


def test_thresholds_count_the_files_a_genre_labels_alone():
    """Rock has 40 files but only 15 alone while Pop is kept; Pop (2 alone) goes first, then Rock has 40."""
    v = vocab(tracks("Rock", 15), tracks("Pop", 2), tracks("Rock; Pop", 25))
    assert v.genres == ["Rock"] and v.kept[0].files == 40
    assert [d.genre for d in v.dropped] == ["Pop"]
    assert v.dropped[0].reason.startswith("only 2 of its 27 files have no other kept genre (--min-files 20)")
    # always together: neither can be told apart, so neither is kept (no coin toss)
    together = vocab(tracks("Rock/Pop", 30), tracks("Jazz", 20))
    assert together.genres == ["Jazz"] and {d.genre for d in together.dropped} == {"Rock", "Pop"}


def test_genres_our_writers_put_into_files_never_become_labels():
    scanned = tracks("Hip Hop", 30, musicgenre_confidence="0.912")  # scan --write-tags
    beets = tracks("Jazz", 30, genre_source="musicgenre")  # the beets plugin
    in_db = tracks("Rock", 30, db_tagged="rock")  # the library database's `tagged`
    owner = tracks("Jazz", 25)
    v = vocab(scanned, beets, in_db, owner)
    assert v.genres == ["Jazz"] and v.kept[0].files == 25
    assert set(v.ours) == {t.path for t in scanned + beets + in_db} and not set(v.ours) & set(v.labels)
    assert not written_by_us(TrackTags("/a.flac", ["Rock"], genre_source="lastgenre"))
    assert not written_by_us(TrackTags("/a.flac", ["Blues"], db_tagged="rock"))  # the owner retagged it
    assert written_by_us(TrackTags("/a.flac", ["Hip-Hop"], db_tagged="hiphop"))
    assert written_by_us(TrackTags("/a.flac", ["Rock"], genre_source="MusicGenre "))
    assert written_by_us(TrackTags("/a.flac", ["Rock"], genre_ours=True))  # library.filetags' file_tags column


def test_untagged_files_are_listed():
    v = vocab(tracks("Rock", 20), [TrackTags("/x/a.mp3"), TrackTags("/x/b.mp3", ["", " ; "])])
    assert v.untagged == ["/x/a.mp3", "/x/b.mp3"]


def test_a_messy_emotify_magnatune_like_library():
    library = [
        tracks("Classical", 30), tracks("classical", 4), tracks("(32)", 3),
        tracks("Alternative Rock", 22), tracks("Alt Rock", 6), tracks("Alt. Rock", 4), tracks("alternative rock", 2),
        tracks("Electro Rock", 21), tracks("Electronica", 12), tracks("Electronic", 15), tracks("(52)", 3),
        tracks("New Age; Ambient", 8), tracks("New Age", 20), tracks("Hard Rock/Metal", 3),
        tracks("Rock", 24), tracks("Pop, Rock", 4),
    ]
    v = vocab(*library, aliases=parse_aliases(["Alt Rock=Alternative Rock", "Alt. Rock=Alt Rock",
                                               "Electronica=Electronic"]))
    counts = {g.name: g.files for g in v.kept}
    assert counts == {"Classical": 37, "Alternative Rock": 34, "Electronic": 30, "Rock": 28, "Electro Rock": 21,
                      "New Age": 28}
    dropped = {d.genre for d in v.dropped}
    assert dropped == {"Ambient", "Hard Rock", "Metal", "Pop"}
    assert len(v.labels) == sum(counts.values())


# ---- artist groups ------------------------------------------------------------------------------------

MBID = "0383dadf-2a4e-4d10-a46a-e9e041da8eb3"
VA_MBID = "89ad4ac3-39f7-470e-963a-56509c546377"


def test_group_key_falls_back_from_id_to_artist_to_album_artist_to_folder():
    t = TrackTags("/m/Queen/Album/01.flac", ["Rock"], artist="Queen", album_artist="Queen",
                  musicbrainz_artist_id=MBID)
    assert group_key(t) == f"mbid:{MBID}"
    assert group_key(TrackTags("/m/x/01.flac", artist="Queen feat. David Bowie")) == "artist:queen"
    assert group_key(TrackTags("/m/x/01.flac", artist="QUEEN (ft. Someone)")) == "artist:queen"
    assert group_key(TrackTags("/m/x/01.flac", artist="Queen; David Bowie")) == "artist:queen"  # joined values
    assert group_key(TrackTags("/m/x/01.flac", album_artist="Simon & Garfunkel")) == "artist:simongarfunkel"
    assert group_key(TrackTags("/m/x/01.flac")) == "folder:/m/x"


@pytest.mark.parametrize("va", ["Various Artists", "VA", "Various", "Verschiedene", "various artist", "V/A",
                                "Unknown Artist", "[unknown]"])
def test_various_artists_never_form_a_group(va):
    assert group_key(TrackTags("/m/Comp/01.flac", artist=va, album_artist="Björk")) == "artist:bjork"
    assert group_key(TrackTags("/m/Comp/01.flac", artist=va, album_artist=va)) == "folder:/m/Comp"
    assert group_key(TrackTags("/m/Comp/01.flac", artist="Björk", musicbrainz_artist_id=VA_MBID)) == "artist:bjork"


def test_an_artist_is_one_group_with_or_without_its_id():
    with_id = TrackTags("/m/a/1.flac", artist="Queen", musicbrainz_artist_id=f"{MBID}/{VA_MBID}")
    without = TrackTags("/m/b/2.flac", artist="queen")
    assert group_keys([with_id, without]) == {"/m/a/1.flac": f"mbid:{MBID}", "/m/b/2.flac": f"mbid:{MBID}"}
    assert group_keys([without]) == {"/m/b/2.flac": "artist:queen"}


def test_artists_count_groups():
    v = vocab(tracks("Rock", 30, artists=3))
    assert v.kept[0].artists == 3


# ---- leaks ----------------------------------------------------------------------------------------------

def _untagged_artist(folder: str, genre: str, n: int) -> list[TrackTags]:
    return [TrackTags(f"{folder}/{next(_serial):05d}.mp3", [genre]) for _ in range(n)]


def test_folders_named_after_genres_are_a_leak():
    files = _untagged_artist("/music/Jazz", "Jazz", 10) + _untagged_artist("/music/Rock/Live", "Rock", 10)
    leak = grouping_leaks(files, {t.path: t.genres[0] for t in files})
    assert leak.leaky and leak.folder_files == leak.files == 20
    assert "named after genres (Jazz, Rock)" in leak.reasons[0]


def test_folders_that_each_hold_one_genre_are_a_leak():
    files = (_untagged_artist("/music/A1", "Jazz", 5) + _untagged_artist("/music/A2", "Jazz", 5)
             + _untagged_artist("/music/B1", "Rock", 5))
    leak = grouping_leaks(files, {t.path: t.genres[0] for t in files})
    assert leak.leaky and "each hold one genre" in leak.reasons[0]


def test_artist_grouping_or_mixed_folders_are_not_a_leak():
    tagged = tracks("Jazz", 10) + tracks("Rock", 10)
    assert not grouping_leaks(tagged, {t.path: t.genres[0] for t in tagged}).leaky
    mixed = _untagged_artist("/music/Mix1", "Jazz", 3) + _untagged_artist("/music/Mix1", "Rock", 3)
    assert not grouping_leaks(mixed, {t.path: t.genres[0] for t in mixed}).leaky
    few = tracks("Jazz", 40) + _untagged_artist("/music/Jazz", "Jazz", 2)  # 2 of 42: within the tolerance
    leak = grouping_leaks(few, {t.path: t.genres[0] for t in few})
    assert not leak.leaky and leak.folder_files == 2


def test_unlabelled_files_do_not_count_for_leaks():
    files = _untagged_artist("/music/Jazz", "Jazz", 10)
    leak = grouping_leaks(files, {})
    assert not leak.leaky and leak.files == 0
