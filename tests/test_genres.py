"""The one genre-name mapping (musicgenre.genres) and the tags every writer puts into files."""

from __future__ import annotations

from pathlib import Path

import mutagen
import pytest

from musicgenre.genres import canonical, descriptive_tags, display, is_genre_tag, pick_genres
from musicgenre.library.tags import UNCERTAIN, WRITTEN, TagWriter, read_genres
from musicgenre.modeldir import list_shipped

from .conftest import tone, write_audio


def test_names_as_lastgenre_and_musicbrainz_spell_them():
    assert canonical("hiphop") == canonical("Hip-Hop") == "hip hop" and display("hiphop") == "Hip Hop"
    assert canonical("rnb") == "r&b" and display("rnb") == "R&B"
    assert canonical("electronic") == "electronic" and display("electronic") == "Electronic"
    assert display("classical") == "Classical" and canonical("Heavy_Metal") == "heavy metal"


def test_every_shipped_label_is_a_lastgenre_genre():
    """What we write is in beets' lastgenre whitelist (so lastgenre's filters and players agree), plus the
    label a future model may add (electronic)."""
    beets = pytest.importorskip("beets")
    listed = Path(beets.__file__).parents[1] / "beetsplug" / "lastgenre" / "genres.txt"  # no pylast needed
    whitelist = {line.strip().lower() for line in listed.read_text(encoding="utf-8").splitlines()}
    labels = {label for card in list_shipped().values() for label in card.labels} | {"electronic", "rnb"}
    assert labels and {canonical(label) for label in labels} <= whitelist


TEN = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


@pytest.mark.parametrize("tag", ["jazz", "Hip-Hop", "hip hop", "hiphop", "heavy metal", "hard rock", "classic rock",
                                 "indie rock", "alternative rock", "Progressive rock", "indie pop", "country",
                                 "blues", "classic"])
def test_genre_words_of_the_model_are_genre_tags(tag):
    assert is_genre_tag(tag, TEN)


@pytest.mark.parametrize("tag", ["electronic", "electronica", "House", "soul", "funk", "folk", "punk", "ambient",
                                 "rnb", "instrumental", "80s", "female vocalists", "easy listening", "trip hop"])
def test_other_tags_are_not_genre_tags_of_a_ten_genre_model(tag):
    assert not is_genre_tag(tag, TEN)


def test_genre_tags_follow_the_models_labels():
    eleven = [*TEN, "electronic"]
    assert all(is_genre_tag(t, eleven) for t in ("electronic", "electronica", "electro", "House", "techno"))
    assert is_genre_tag("R&B", ["rnb"]) and is_genre_tag("rhythm and blues", ["rnb"])
    assert not is_genre_tag("rhythm and blues", ["blues"])  # r&b is its own genre
    tags = {"jazz": 0.43, "instrumental": 0.22, "heavy metal": 0.1, "Hip-Hop": 0.09, "oldies": 0.09, "soul": 0.03}
    assert descriptive_tags(tags, TEN) == {"instrumental": 0.22, "oldies": 0.09, "soul": 0.03}  # order kept


def test_pick_genres_is_confident_only():
    scores = {"hiphop": 0.62, "pop": 0.30, "rock": 0.08}
    assert pick_genres(scores, min_confidence=0.6) == ["Hip Hop"]
    assert pick_genres(scores, min_confidence=0.7) is None  # uncertain: nothing to write
    assert pick_genres(scores, min_confidence=0.6, count=3) == ["Hip Hop", "Pop"]  # rock is below 0.25
    assert pick_genres(scores, min_confidence=0.6, count=2, title_case=False) == ["hip hop", "pop"]


class _Pred:
    label = "hiphop"
    scores = {"hiphop": 0.7, "rnb": 0.26, "pop": 0.04}
    status = "confident"


def _native(path: Path) -> list[str]:
    f = mutagen.File(path)
    if path.suffix == ".mp3":
        assert len(f.tags.getall("TCON")) == 1  # one frame ...
        assert f.tags.version[:2] == (2, 4)
        return list(f.tags["TCON"].text)  # ... holding every genre
    if path.suffix == ".m4a":
        return list(f.tags["\xa9gen"])
    return list(f.tags["GENRE"])  # Vorbis comments: one GENRE field per genre


@pytest.mark.parametrize("suffix", [".mp3", ".flac", ".ogg", ".m4a"])
def test_several_genres_are_written_natively(tmp_path, suffix, have_ffmpeg):
    path = write_audio(tmp_path / f"song{suffix}", tone(2.0, 44100), 44100)
    msgs: list[str] = []
    assert TagWriter(count=2, min_confidence=0.6, report=msgs.append).tag(path, _Pred()) == WRITTEN
    assert _native(path) == ["Hip Hop", "R&B"] and read_genres(path) == (["Hip Hop", "R&B"], "0.700")
    joined = TagWriter(count=2, separator="; ", overwrite=True, min_confidence=0.6, report=msgs.append)
    assert joined.tag(path, _Pred()) == WRITTEN and _native(path) == ["Hip Hop; R&B"]


def test_uncertain_prediction_keeps_the_file_and_is_listed(tmp_path):
    path = write_audio(tmp_path / "song.flac", tone(2.0, 44100), 44100)
    before = path.read_bytes()
    msgs: list[str] = []
    assert TagWriter(min_confidence=0.8, report=msgs.append).tag(path, _Pred()) == UNCERTAIN
    assert path.read_bytes() == before and msgs == [f"{path}: uncertain (Hip Hop 0.70 < 0.80); keeps its tags"]
    assert TagWriter(min_confidence=0.5, report=msgs.append).tag(path, _Pred()) == WRITTEN


def test_cli_table_shows_display_names_and_json_keeps_label_ids(capsys):
    import json

    from musicgenre.cli import main

    from .conftest import EXAMPLES

    clip = str(EXAMPLES / "classical_sugar_plum_fairy.ogg")
    assert main(["predict", clip, "-k", "2"]) == 0
    assert "  Classical " in capsys.readouterr().out
    assert main(["predict", clip, "-k", "2", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] == "classical"


def test_owner_spelled_labels_are_kept() -> None:
    from musicgenre.genres import display, name

    assert display("IDM") == "IDM" and display("Drum & Bass") == "Drum & Bass" and display("hiphop") == "Hip Hop"
    assert name("IDM", title_case=False) == "idm"
