"""The beets plugin (src/beetsplug/musicgenre.py), tested with beets' own helpers on our own audio.

A small album in three or four formats is cut from the example clips (beets' fixtures are not in its wheel);
it is imported with autotagging off and the plugin on, then re-classified with ``beet musicgenre``. The
expected genres are computed independently, from ``Classifier.predict`` on the same files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import mutagen
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("beets", minversion="2.7")

import beets.plugins  # noqa: E402
from beets.library import Item  # noqa: E402
from beets.test.helper import AutotagImportHelper, ImportHelper, PluginMixin  # noqa: E402
from mediafile import MediaFile  # noqa: E402

from musicgenre.genres import display  # noqa: E402

from .conftest import EXAMPLES, ROOT  # noqa: E402

# (example clip, format, title): an album the shipped model calls classical with confidence, in several formats
TRACKS = [
    ("classical_sugar_plum_fairy.ogg", "flac", "Sugar Plum Fairy"),
    ("classical_hungarian_dance_5.ogg", "mp3", "Hungarian Dance 5"),
    ("classical_sugar_plum_fairy.ogg", "ogg", "Sugar Plum Fairy Reprise"),
]
if shutil.which("ffmpeg"):
    TRACKS.append(("classical_hungarian_dance_5.ogg", "m4a", "Hungarian Dance 5 Reprise"))
# clips it is unsure about (country 0.47, pop 0.42 for the jazz clip)
UNSURE = [("country_lets_go_fishin.ogg", "ogg", "Lets Go Fishin"), ("jazz_vibe_ace.ogg", "flac", "Vibe Ace")]


def sha(path: Path | str | bytes) -> str:
    return hashlib.sha256(Path(os.fsdecode(path)).read_bytes()).hexdigest()


def make_track(src: str, dest: Path, *, title: str, track: int, album: str = "Fixture Album",
               genre: str | None = None) -> Path:
    """``src`` (an example clip) re-encoded as ``dest``'s format, with ordinary tags."""
    y, sr = sf.read(EXAMPLES / src, dtype="float32")
    if dest.suffix == Path(src).suffix:  # the clip itself: re-encoding would change what the model hears
        shutil.copyfile(EXAMPLES / src, dest)
    elif dest.suffix == ".m4a":
        wav = dest.with_suffix(".wav")
        sf.write(wav, y, sr)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(dest)], check=True)
        wav.unlink()
    elif dest.suffix == ".mp3":
        sf.write(dest, y, sr, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(dest, y, sr, **({"format": "OGG", "subtype": "VORBIS"} if dest.suffix == ".ogg" else {}))
    mf = MediaFile(dest)
    mf.update({"title": title, "artist": "Fixture Artist", "albumartist": "Fixture Artist", "album": album,
               "track": track, "genres": [genre] if genre else []})
    mf.save()
    return dest


def file_genres(path: Path | str | bytes) -> list[str]:
    """The genre values as players read them, straight from mutagen: native multi-value fields."""
    path = Path(os.fsdecode(path))
    f = mutagen.File(path)
    if path.suffix == ".mp3":
        return list(f.tags["TCON"].text) if "TCON" in f.tags else []
    if path.suffix == ".m4a":
        return list(f.tags.get("\xa9gen", []))
    return list(f.tags.get("genre", []) if f.tags else [])


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def plugin_log():
    handler = Lines()
    logger = beets.plugins.log.getChild("musicgenre")  # beets' own logger class ("{}" formatting)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


class MusicGenreHelper(PluginMixin, ImportHelper):
    plugin: ClassVar[str] = "musicgenre"
    preload_plugin: ClassVar[bool] = False

    @pytest.fixture(autouse=True)
    def _fixture(self, classifier, plugin_log):
        self.shared = classifier
        self.log = plugin_log

    def plugin_on(self, **config) -> beets.plugins.BeetsPlugin:
        self.unload_plugins()
        self.config["musicgenre"].set({"min_confidence": 0.6, **config})
        self.load_plugins()
        (inst,) = [p for p in beets.plugins.find_plugins() if p.name == "musicgenre"]
        inst._clf = self.shared  # the session's classifier: one model load for the whole test module
        return inst

    def make_album(self, folder: str = "album", **genres: str) -> list[Path]:
        d = self.import_path / folder
        d.mkdir(parents=True, exist_ok=True)
        return [make_track(src, d / f"{i:02d}.{fmt}", title=title, track=i, genre=genres.get(fmt))
                for i, (src, fmt, title) in enumerate(TRACKS, 1)]

    def import_(self, **kw) -> None:
        self.setup_importer(autotag=False, **{"copy": True, "write": True, **kw})
        self.importer.run()

    def expected_scores(self, paths) -> list[dict[str, float]]:
        return [dict(self.shared.predict(str(p)).scores) for p in paths]


class TestImport(MusicGenreHelper):
    def test_album_import_votes_stores_and_writes_the_library_copies(self):
        sources = self.make_album()
        before = {p: sha(p) for p in sources}
        self.plugin_on()
        self.import_()
        (album,) = self.lib.albums()
        items = sorted(album.items(), key=lambda it: it.track)
        assert len(items) == len(TRACKS)
        per_track = self.expected_scores(sources)
        labels = list(per_track[0])
        vote = np.mean([[s[k] for k in labels] for s in per_track], axis=0)
        want = display(labels[int(np.argmax(vote))])
        assert vote.max() >= 0.6, "fixture album should be a confident call"
        assert album.genres == [want] and album.genre_source == "musicgenre"
        assert album.musicgenre_confidence == pytest.approx(float(vote.max()), abs=1e-3)
        for item in items:  # inherited by every track, stored in the database, typed
            fresh = self.lib.get_item(item.id)
            assert fresh.genres == [want] and fresh.genre_source == "musicgenre"
            assert isinstance(fresh.musicgenre_confidence, float)
            assert (fresh.musicgenre_model, fresh.musicgenre_version) == (self.shared.name, self.shared.version)
            assert file_genres(fresh.path) == [want]  # the library's copy carries it
            assert str(self.lib_path) in os.fsdecode(fresh.path)
        assert {p: sha(p) for p in sources} == before  # copy mode: the user's files are untouched
        queried = self.lib.items("musicgenre_confidence:0.5..")  # a typed (numeric) flexible field
        assert len(list(queried)) == len(TRACKS)

    def test_import_without_write_stores_but_leaves_files_alone(self):
        self.make_album()
        self.plugin_on()
        self.import_(write=False)
        for item in self.lib.items():
            assert item.genres and file_genres(item.path) == []

    def test_as_is_import_in_place_writes_the_users_files_only_when_asked(self):
        sources = self.make_album()
        self.plugin_on()
        self.import_(copy=False, write=True)
        for p in sources:
            (item,) = self.lib.items(f"path:{p}")
            assert file_genres(p) == item.genres != []

    def test_singletons_per_track_and_uncertain_ones_are_listed_not_changed(self):
        d = self.import_path / "loose"
        d.mkdir()
        sources = [make_track(src, d / f"{i}.{fmt}", title=title, track=i, album="")
                   for i, (src, fmt, title) in enumerate([TRACKS[0], *UNSURE], 1)]
        self.plugin_on()
        self.import_(singletons=True)
        scores = self.expected_scores(sources)
        assert [next(iter(s.values())) >= 0.6 for s in scores] == [True, False, False]
        for p, s in zip(sources, scores):
            (item,) = self.lib.items(f"title:{MediaFile(p).title}")
            if next(iter(s.values())) >= 0.6:
                assert item.genres == [display(next(iter(s)))] and file_genres(item.path) == item.genres
            else:  # listed, and nothing changed: no genres, no attributes, no tags
                assert item.genres == [] and "genre_source" not in item and file_genres(item.path) == []
        uncertain = [line for line in self.log if "uncertain" in line]
        assert len(uncertain) == 2 and all(p.name in line for p, line in zip(sources[1:], uncertain))

    def test_existing_genres_are_kept_on_import(self):
        self.make_album(flac="Bebop")
        self.plugin_on(source="track")
        self.import_()
        items = {it.title: it for it in self.lib.items()}
        assert items["Sugar Plum Fairy"].genres == ["Bebop"]
        assert "genre_source" not in items["Sugar Plum Fairy"]
        assert file_genres(items["Sugar Plum Fairy"].path) == ["Bebop"]

    def test_model_loads_once_per_command(self, monkeypatch):
        import musicgenre.pipeline as pipeline

        calls = []
        real = pipeline.load

        def counting(*a, **k):
            calls.append(a)
            return real(*a, **k)

        monkeypatch.setattr(pipeline, "load", counting)
        self.make_album("a1")
        self.make_album("a2")
        inst = self.plugin_on()
        inst._clf = None
        self.import_()
        assert len(self.lib.albums()) == 2 and calls == [(None,)]


class TestAutotaggedImport(MusicGenreHelper, AutotagImportHelper):
    """An autotagged album (beets' MusicBrainz stub): beets writes every tag itself, ours included."""

    def test_applied_match_carries_our_genres_into_the_files(self):
        from beets.importer import Action

        self.make_album()
        self.plugin_on()
        self.setup_importer(autotag=True, copy=True, write=True)
        self.importer.add_choice(Action.APPLY)
        self.importer.run()
        (album,) = self.lib.albums()
        assert album.mb_albumid == "albumid" and album.genres == ["Classical"]  # the match was applied
        for item in album.items():
            assert MediaFile(item.path).title.startswith("Applied Track")  # written by beets' own stage
            assert file_genres(item.path) == ["Classical"] and item.genre_source == "musicgenre"


class TestCommand(MusicGenreHelper):
    @pytest.fixture(autouse=True)
    def _library(self, setup, _fixture):
        self.sources = self.make_album()
        self.plugin_on(auto=False)
        self.import_()  # plain import: the plugin's stage is off
        assert all(item.genres == [] for item in self.lib.items())

    def test_items_pretend_force_and_existing_genres(self, capsys):
        items = sorted(self.lib.items(), key=lambda it: it.track)
        items[0].genres = ["Bebop"]
        items[0].store()
        before = {it.id: sha(it.path) for it in items}
        self.run_command("musicgenre", "-p", "--min-confidence", "0")
        out = capsys.readouterr().out
        assert f"{len(items) - 1} would be set" in out and "1 kept their own genres" in out
        assert [self.lib.get_item(it.id).genres for it in items] == [["Bebop"]] + [[]] * (len(items) - 1)
        assert {it.id: sha(it.path) for it in items} == before  # pretend: nothing stored, nothing written

        self.run_command("musicgenre", "--min-confidence", "0", "-W")
        scores = self.expected_scores([it.path.decode() for it in items])
        got = [self.lib.get_item(it.id) for it in items]
        assert got[0].genres == ["Bebop"]
        for item, s in zip(got[1:], scores[1:]):
            assert item.genres == [display(next(iter(s)))]
        assert {it.id: sha(it.path) for it in items} == before  # -W: the library only
        assert "already done" in capsys.readouterr().out

        self.run_command("musicgenre", "-f", "--min-confidence", "0", "-w", f"title:{items[0].title}")
        first = self.lib.get_item(items[0].id)
        assert first.genres == [display(next(iter(scores[0])))] and file_genres(first.path) == first.genres

    def test_keep_existing_with_force_combines(self):
        item = sorted(self.lib.items(), key=lambda it: it.track)[0]
        item.genres = ["Bebop"]
        item.store()
        self.config["musicgenre"]["count"] = 2
        self.run_command("musicgenre", "-f", "-k", "--min-confidence", "0", "-W", f"title:{item.title}")
        got = self.lib.get_item(item.id).genres
        assert got[0] == "Bebop" and len(got) == 2 and got[1] != "Bebop"

    def test_album_vote_inherited_unless_per_track(self):
        (album,) = self.lib.albums()
        self.run_command("musicgenre", "-a", "--min-confidence", "0.5", "-W")
        album = self.lib.get_album(album.id)
        assert album.genres and all(it.genres == album.genres for it in album.items())
        self.run_command("musicgenre", "-a", "-f", "-s", "track", "--min-confidence", "0", "-W")
        items = sorted(self.lib.get_album(album.id).items(), key=lambda it: it.track)
        scores = self.expected_scores([it.path.decode() for it in items])
        assert [it.genres for it in items] == [[display(next(iter(s)))] for s in scores]

    def test_bad_file_fails_in_one_line_and_the_rest_is_done(self, capsys):
        broken = self.lib_path / "broken.flac"
        broken.write_bytes(b"fLaC" + os.urandom(4000))
        self.lib.add(Item(path=str(broken), title="Broken", format="FLAC"))
        self.run_command("musicgenre", "--min-confidence", "0", "-W")
        failures = [line for line in self.log if "broken.flac" in line]
        assert len(failures) == 1 and "\n" not in failures[0]
        assert "1 failed" in capsys.readouterr().out
        assert all(it.genres for it in self.lib.items() if it.title != "Broken")

    def test_failed_tag_write_leaves_the_file_byte_identical(self, capsys):
        item = sorted(self.lib.items(), key=lambda it: it.track)[0]
        path = Path(item.path.decode())
        path.chmod(0o444)
        before = sha(path)
        try:
            self.run_command("musicgenre", "--min-confidence", "0", "-w", f"title:{item.title}")
        finally:
            path.chmod(0o644)
        assert sha(path) == before and file_genres(path) == []
        lines = [line for line in self.log if "tags not written" in line]
        assert len(lines) == 1 and path.name in lines[0] and "read-only" in lines[0]
        assert "1 not written" in capsys.readouterr().out
        assert not [p for p in path.parent.iterdir() if "musicgenre-tmp" in p.name]

    def test_bad_settings_are_one_line_usage_errors(self):
        from beets.ui import UserError

        with pytest.raises(UserError, match="min_confidence"):
            self.run_command("musicgenre", "--min-confidence", "7")
        self.plugin_on(auto=False, model="nosuchmodel")._clf = None
        with pytest.raises(UserError, match="unknown model 'nosuchmodel'"):  # beets prints it as one line
            self.run_command("musicgenre")


def test_beet_ls_does_not_import_musicgenre(tmp_path):
    """beets instantiates every plugin for every command: with the plugin on, `beet ls` loads no module
    that it does not load without it, except the plugin's own (no musicgenre, no onnxruntime)."""
    code = ("import sys, beets.ui\n"
            "try:\n    beets.ui.main(['ls'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ' '.join(sorted(sys.modules)))\n")

    def loaded(plugins: str) -> set[str]:
        d = tmp_path / (plugins.strip("[]") or "none")
        d.mkdir()
        (d / "config.yaml").write_text(f"directory: {d / 'lib'}\nlibrary: {d / 'l.db'}\nplugins: {plugins}\n")
        env = {**os.environ, "BEETSDIR": str(d), "HOME": str(d)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert "error loading plugin" not in out.stderr, out.stderr
        (line,) = [x for x in out.stdout.splitlines() if x.startswith("LOADED ")]
        return set(line.split()[1:])

    extra = loaded("musicgenre") - loaded("[]")
    assert extra == {"beetsplug.musicgenre"}, extra


def test_docs_beets_md_commands_run(tmp_path):
    """docs/beets.md, followed as written: its config block and its `$ beet ...` commands, on a fixture album."""
    text = (ROOT / "docs" / "beets.md").read_text()
    config = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    commands = re.findall(r"^\$ (beet .*)$", text, re.M)
    assert config.strip() and commands, "docs/beets.md lost its config block or its commands"
    home = tmp_path / "home"
    beetsdir = home / ".config" / "beets"
    beetsdir.mkdir(parents=True)
    (beetsdir / "config.yaml").write_text(config)
    incoming = home / "Downloads" / "new-album"
    incoming.mkdir(parents=True)
    for i, (src, fmt, title) in enumerate(TRACKS, 1):
        make_track(src, incoming / f"{i:02d}.{fmt}", title=title, track=i)
    env = {**os.environ, "HOME": str(home), "BEETSDIR": str(beetsdir)}
    beet = [sys.executable, "-c", "import beets.ui; beets.ui.main()"]
    outputs = []
    for line in commands:
        args = [str(home) + a[1:] if a.startswith("~/") else a for a in shlex.split(line)[1:]]
        run = subprocess.run([*beet, *args], env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{line}\n{run.stdout}\n{run.stderr}"
        assert "Traceback" not in run.stderr and "error loading plugin" not in run.stderr, run.stderr
        outputs.append(run.stdout)
    listing = subprocess.run([*beet, "ls", "-a", "-f", "$album: $genres ($genre_source)"], env=env,
                             capture_output=True, text=True, check=True).stdout
    assert "Fixture Album: " in listing and "(musicgenre)" in listing, listing
    library_files = [p for p in (home / "Music").rglob("*") if p.is_file()]
    assert library_files and all(file_genres(p) for p in library_files)


def test_wheel_ships_the_plugin_in_the_namespace_package():
    """beets imports `beetsplug.musicgenre` by name: the wheel must carry src/beetsplug, and beetsplug must stay
    a namespace package (an __init__.py would hide beets' own plugins)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "src/beetsplug" in config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "beets>=2.7" in config["project"]["optional-dependencies"]["beets"]
    assert (ROOT / "src" / "beetsplug" / "musicgenre.py").is_file()
    assert not (ROOT / "src" / "beetsplug" / "__init__.py").exists()


# ---- musicgenre-learn: a model from the library's own genres ------------------------------------------------------

# (clip, genre as the owner spelled it, artist), two items each (two 6-s cuts of the clip): two genres in mixed
# spellings across three artists each
OWNED = [("classical_sugar_plum_fairy.ogg", "Classical", "Ann"), ("classical_hungarian_dance_5.ogg", "classical", "Bo"),
         ("classical_sugar_plum_fairy.ogg", "Classical", "Cy"), ("jazz_vibe_ace.ogg", "Hip-Hop", "Dee"),
         ("country_lets_go_fishin.ogg", "hip hop", "Eve"), ("jazz_vibe_ace.ogg", "HipHop", "Fay")]
# genres musicgenre set (genre_source: musicgenre): frequent enough to be kept, were they labels
OURS = [("country_lets_go_fishin.ogg", "Polka", "Gus"), ("jazz_vibe_ace.ogg", "Polka", "Hal")]


class TestLearn(MusicGenreHelper):
    db_on_disk = True  # the features database goes next to the beets library

    def add_item(self, clip: str, start: float, title: str, artist: str, genres: list[str], **extra) -> Item:
        y, sr = sf.read(EXAMPLES / clip, dtype="float32")
        path = self.lib_path / f"{title}.flac"
        sf.write(path, y[int(start * sr):int((start + 6) * sr)], sr)
        item = Item(path=str(path), title=title, artist=artist, albumartist=artist, album=f"{artist} Album",
                    genres=genres, format="FLAC", **extra)
        self.lib.add(item)
        return item

    def test_learns_the_owners_genres_reuses_features_and_the_model_classifies(self, monkeypatch, capsys):
        import json

        import musicgenre.library.scan as scan_module
        from musicgenre.genres.values import canonical_key
        from musicgenre.modeldir import read

        for i, (clip, genre, artist) in enumerate(OWNED):
            for cut in (0, 1):
                self.add_item(clip, 4.5 * cut + i % 2, f"{artist} {cut}", artist, [genre])
        for clip, genre, artist in OURS:
            self.add_item(clip, 3, f"{artist} ours", artist, [genre], genre_source="musicgenre",
                          musicgenre_confidence=0.9, musicgenre_model="musicnn-gtzan", musicgenre_version="0")
        new = self.add_item("jazz_vibe_ace.ogg", 8, "Untagged", "Ida", [])
        self.plugin_on(auto=False)
        computed: list[str] = []
        real = scan_module.predict_many

        def counting(clf, paths, **kw):
            computed.extend(paths)
            return real(clf, paths, **kw)

        monkeypatch.setattr(scan_module, "predict_many", counting)
        out, report = self.temp_path / "my-genres", self.temp_path / "report.json"
        learn = ["musicgenre-learn", "-o", str(out), "--min-files", "2", "--min-artists", "2", "--folds", "3"]
        self.run_command(*learn, "--report", str(report))
        db = Path(os.fsdecode(self.lib.path)).parent / "musicgenre.sqlite"
        assert db.is_file() and len(computed) == len(self.lib.items()) == 15  # one backbone pass per item
        card = read(out)
        assert sorted(canonical_key(g) for g in card.labels) == ["classical", "hiphop"]  # Polka is ours: no label
        assert "Classical" in card.labels  # the owner's most frequent spelling
        rep = json.loads(report.read_text())
        assert rep["library"]["labelled"] == 12 and rep["library"]["ours"] == 2 and rep["library"]["untagged"] == 1
        assert any(m["how"] == "spelling" and canonical_key(m["into"]) == "hiphop" for m in rep["merged"])
        assert not any(canonical_key(d["genre"]) == "polka" for d in rep["dropped"])
        assert card.extra["training"]["command"].startswith("beet musicgenre-learn -o ")
        printed = capsys.readouterr().out
        assert "2 genres from 12 items (6 artists)" in printed and "model: " in printed

        # again, from the database named with --db: every feature is reused, nothing is decoded
        self.run_command(*learn, "--db", str(db))
        assert len(computed) == 15
        assert any("features of 15 items stored, 0 to compute" in line for line in self.log)

        # the learned directory as the plugin's model: an item without genres gets one of the owner's genres
        inst = self.plugin_on(auto=False, model="~/my-genres")  # beets' helper sets HOME to temp_path
        inst._clf = None
        self.run_command("musicgenre", "--min-confidence", "0", "-W")
        got = self.lib.get_item(new.id)
        assert got.genres and got.genres[0] in {display(g) for g in card.labels}
        assert (got.musicgenre_model, got.genre_source) == (card.name, "musicgenre")
        owned = [it for it in self.lib.items() if it.get("genre_source") != "musicgenre"]
        assert len(owned) == 12 and all(canonical_key(it.genres[0]) in ("classical", "hiphop") for it in owned)

    def test_no_genres_of_the_owner_is_a_one_line_error_before_any_work(self):
        from beets.ui import UserError

        self.add_item("jazz_vibe_ace.ogg", 0, "Ours", "Gus", ["Polka"], genre_source="musicgenre")
        self.add_item("jazz_vibe_ace.ogg", 6, "Untagged", "Hal", [])
        self.plugin_on(auto=False)
        with pytest.raises(UserError, match="no genres to learn from: none of the 2 matched items"):
            self.run_command("musicgenre-learn", "-o", str(self.temp_path / "m"))
        with pytest.raises(UserError, match="-o DIR"):
            self.run_command("musicgenre-learn")
        assert not (Path(os.fsdecode(self.lib.path)).parent / "musicgenre.sqlite").exists()
