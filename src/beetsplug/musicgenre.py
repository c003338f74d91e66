"""beets plugin: genres recognised from the audio itself, offline, with musicgenre's shipped model.

Enable it with ``plugins: musicgenre`` (``pip install 'musicgenre[beets]'``); see docs/beets.md.

- ``beet musicgenre [QUERY]`` classifies the matching items (``-a``: albums, one vote per album),
  ``-p`` shows the changes without storing them, ``-f`` replaces genres the items already have.
- ``auto: yes`` classifies items as they are imported (an import stage).
- ``beet musicgenre-learn -o DIR [QUERY]`` trains a genre model on the library's own genres (``musicgenre learn``'s
  trainer); ``model: DIR`` then classifies with it. The backbone's window features come from one pass of the
  configured model over each item, kept in a musicgenre library database (``db``, default ``musicgenre.sqlite``
  next to the beets library) so that the next run computes only what changed.

Options carry lastgenre's names (``auto``, ``force``, ``keep_existing``, ``count``, ``min_confidence``,
``title_case``, ``pretend``, ``source``). Genres another tool or the user set are never replaced unless
``force`` is on; uncertain predictions (top probability below ``min_confidence``) change nothing and are
listed. What was set records ``genre_source: musicgenre`` and the typed flexible attributes
``musicgenre_confidence``, ``musicgenre_model`` and ``musicgenre_version``.

beets instantiates every enabled plugin on every command (``beet ls`` too), so this module imports only
what beets has already loaded; musicgenre, numpy and the model load on the first classification, once
per command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from beets import plugins, ui
from beets.dbcore import types
from beets.library import Album, Item

if TYPE_CHECKING:
    from beets.importer import ImportSession, ImportTask
    from beets.library import LibModel, Library

SOURCE = "musicgenre"
FIELDS = ("genres", "genre_source", "musicgenre_confidence", "musicgenre_model", "musicgenre_version")
_TYPES = {
    "genre_source": types.STRING,
    "musicgenre_confidence": types.Float(3),
    "musicgenre_model": types.STRING,
    "musicgenre_version": types.STRING,
}


def _describe(obj: LibModel) -> str:
    """An item by its path (what a user can find), an album by "albumartist - album"."""
    if isinstance(obj, Item):
        from beets.util import displayable_path

        return displayable_path(obj.path)
    return str(obj)


class Outcome:
    """What happened to one object (item or album) in one run, for the summary line."""

    SET, UNCERTAIN, UNKNOWN, KEPT, DONE, FAILED = "set", "uncertain", "unknown", "kept", "done", "failed"


class Call(NamedTuple):
    """One classified object: its genre scores and, when the model found it unlike all its genres (status
    "unknown"), the genre tags it sounds like instead (``unknown`` True)."""

    scores: dict[str, float]
    unknown: bool = False
    closest: tuple[str, ...] = ()


class _LearnSubcommand(ui.Subcommand):
    """``musicgenre-learn``: its learn flags (``musicgenre.learn.options``, the one place learn's defaults are
    written) join the parser only when the command runs or shows its help, so other commands import nothing."""

    def _learn_flags(self) -> None:
        if not getattr(self, "_flags_added", False):
            from musicgenre.learn.options import add_options

            add_options(self.parser)
            self._flags_added = True

    def parse_args(self, args: list[str]) -> Any:
        self._learn_flags()
        return super().parse_args(args)

    def print_help(self) -> None:
        self._learn_flags()
        super().print_help()


class MusicGenrePlugin(plugins.BeetsPlugin):
    item_types = _TYPES
    album_types = _TYPES

    def __init__(self) -> None:
        super().__init__()
        self.config.add({
            "auto": True,             # classify while importing
            "force": False,           # replace genres set by the user or another plugin
            "keep_existing": False,   # with force: combine existing genres with the new ones (up to count)
            "count": 1,               # how many genres (runner-ups need a probability >= 0.25)
            "min_confidence": None,   # None: the model's own "confident" threshold, as every writer uses
            "title_case": True,       # "Hip Hop" (else the canonical lowercase "hip hop")
            "pretend": False,         # show what would change, store nothing
            "source": "album",        # album: one vote per album, inherited by its items; track: per track
            "model": None,            # a shipped model name or a model directory (default: the shipped one)
            "workers": 2,             # files decoded and classified at once
            "db": None,               # musicgenre-learn's feature store (default: musicgenre.sqlite beside the library)
        })
        self._clf: Any = None
        self._override: dict[str, Any] = {}  # the running command's options (config.set_args would outlive it)
        self._importing = False
        self._id: tuple[str, str] | None = None
        self._pending_writes: dict[Any, bool] = {}  # item id -> written by import_task_files
        if self._flag("auto"):
            self.import_stages = [self.imported]
            self.register_listener("import_task_files", self.import_task_files)

    # ---- the model: loaded on first use, once per command ------------------------------------

    @property
    def classifier(self) -> Any:
        if self._clf is None:
            from musicgenre.errors import MusicGenreError
            from musicgenre.pipeline import load

            try:  # the same defaults as `musicgenre scan` (ONNX Runtime on the CPU for the shipped model)
                self._clf = load(self._model())
            except MusicGenreError as e:  # unknown model name, damaged model directory: one line
                raise ui.UserError(f"musicgenre: {e}") from None
        return self._clf

    def _model(self) -> str | None:
        """The configured model: a shipped model's name or a model directory (``~`` expanded), None: the default."""
        value = self.config["model"].get()
        return os.path.expanduser(str(value)) if value else None

    def _flag(self, key: str) -> bool:
        return bool(self._opt(key))

    def _opt(self, key: str) -> Any:
        """This command's option if given on the command line, else the config's value."""
        return self._override[key] if key in self._override else self.config[key].get()

    def _min_confidence(self) -> float:
        value = self._opt("min_confidence")
        if value is None:  # the default of `musicgenre scan --write-tags` and the CLI's status
            from musicgenre.prediction import check_min_confidence

            return check_min_confidence(None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ui.UserError(f"musicgenre: min_confidence must be between 0 and 1, got {value}")
        return float(value)

    def _genres_for(self, scores: dict[str, float]) -> list[str] | None:
        from musicgenre.genres import pick_genres

        return pick_genres(scores, min_confidence=self._min_confidence(), count=int(self._opt("count")),
                           title_case=self._flag("title_case"))

    # ---- deciding -----------------------------------------------------------------------------

    @staticmethod
    def _existing(obj: LibModel) -> list[str]:
        if isinstance(obj, Item):
            return list(obj.get("genres", with_album=False) or [])
        return list(obj.get("genres") or [])

    def _identity(self) -> tuple[str, str]:
        """(name, version) of the configured model, read from its manifest without loading it."""
        if self._id is None:
            from musicgenre.errors import MusicGenreError
            from musicgenre.modeldir import identity

            try:
                self._id = identity(self._model())
            except MusicGenreError as e:
                raise ui.UserError(f"musicgenre: {e}") from None
        return self._id

    def _clf_matches(self, obj: LibModel) -> bool:
        """Set by this plugin with the model that would run now."""
        return (obj.get("musicgenre_model"), obj.get("musicgenre_version")) == self._identity()

    def _needs_work(self, obj: LibModel) -> str | None:
        """None if ``obj`` should be classified, else the outcome that stands without classifying it."""
        if self._flag("force"):
            return None
        existing = self._existing(obj)
        if not existing:
            return None
        if obj.get("genre_source") == SOURCE:
            return Outcome.DONE if self._clf_matches(obj) else None
        return Outcome.KEPT

    def _apply(self, obj: LibModel, call: Call) -> str:
        """Set the genres and attributes that ``call`` calls for on ``obj`` (not stored); an unknown call, like
        an uncertain one, sets nothing."""
        if call.unknown:
            return Outcome.UNKNOWN
        scores = call.scores
        genres = self._genres_for(scores)
        if genres is None:
            return Outcome.UNCERTAIN
        existing = self._existing(obj)
        if existing and obj.get("genre_source") != SOURCE and not self._flag("force"):
            return Outcome.KEPT
        if existing and self._flag("force") and self._flag("keep_existing"):
            seen = {g.lower() for g in existing}
            genres = (existing + [g for g in genres if g.lower() not in seen])[:max(int(self._opt("count")), 1)]
        clf = self.classifier
        obj.genres = genres
        obj.genre_source = SOURCE
        obj.musicgenre_confidence = round(max(scores.values()), 4)
        obj.musicgenre_model = clf.name
        obj.musicgenre_version = clf.version
        return Outcome.SET

    # ---- classifying --------------------------------------------------------------------------

    def _predict(self, items: Sequence[Item], progress: bool = False) -> dict[Any, Any]:
        """item id -> its ``Call`` (scores, unknown or not), or the one-line reason it failed."""
        from musicgenre.pipeline import predict_many

        paths = [os.fsdecode(item.path) for item in items]
        results = predict_many(self.classifier, paths, workers=self.config["workers"].get(int), on_error="return")
        bar = None
        if progress and len(items) > 1 and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=len(items), unit="file", desc="musicgenre", file=sys.stderr, dynamic_ncols=True)
        out: dict[Any, Any] = {}
        for item, result in zip(items, results):
            if isinstance(result, Exception):
                out[item.id] = str(result)
            else:
                out[item.id] = Call(dict(result.scores), result.status == "unknown", tuple(result.closest_tags))
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        return out

    def _fail(self, item: Item, reason: str) -> str:
        self._log.error("{}", reason if os.fsdecode(item.path) in reason else f"{os.fsdecode(item.path)}: {reason}")
        return Outcome.FAILED

    def _uncertain(self, obj: LibModel, call: Call) -> None:
        """List an uncertain or unknown object (a warning while importing, where info lines are not shown)."""
        from musicgenre.genres import display

        say = self._log.warning if self._importing else self._log.info
        if call.unknown:
            hint = f"; closest tags: {', '.join(call.closest)}" if call.closest else ""
            say("{}: unknown (none of the model's genres{}); keeps its genres", _describe(obj), hint)
            return
        label, score = max(call.scores.items(), key=lambda kv: kv[1])
        say("{}: uncertain ({} {:.2f} < {:.2f}); keeps its genres", _describe(obj), display(label), score,
            self._min_confidence())

    def process_items(self, items: Iterable[Item], *, store: Callable[[Item], None], progress: bool = False,
                      batch: Callable[[], AbstractContextManager[Any]] = nullcontext) -> dict[str, int]:
        """Classify each item on its own (singletons, ``beet musicgenre`` without ``-a``)."""
        counts: dict[str, int] = {}
        todo = []
        for item in items:
            standing = self._needs_work(item)
            if standing is None:
                todo.append(item)
            else:
                counts[standing] = counts.get(standing, 0) + 1
                if standing == Outcome.KEPT:
                    self._log.info("{}: keeps its genres {} (use --force to replace them)", _describe(item),
                                   item.genres)
        results = self._predict(todo, progress=progress) if todo else {}
        with batch():  # the command stores in one transaction, as `beet modify` does
            for item in todo:
                result = results[item.id]
                if isinstance(result, str):
                    outcome = self._fail(item, result)
                else:
                    outcome = self._apply(item, result)
                    if outcome in (Outcome.UNCERTAIN, Outcome.UNKNOWN):
                        self._uncertain(item, result)
                    elif outcome == Outcome.SET:
                        self._show(item)
                        store(item)
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def process_album(self, album: Album, items: Sequence[Item], *, store_album: Callable[[Album], None],
                      store: Callable[[Item], None], progress: bool = False,
                      batch: Callable[[], AbstractContextManager[Any]] = nullcontext) -> dict[str, int]:
        """One vote per album (mean probability over its tracks), set on the album and inherited by the
        tracks that have no genres of their own (``source: track``: each track keeps its own call)."""
        import numpy as np

        counts: dict[str, int] = {}
        force = self._flag("force")
        source = self._opt("source")
        if source not in ("album", "track"):
            raise ui.UserError(f"musicgenre: source must be album or track, got {source!r}")
        per_track = source == "track"
        standing = self._needs_work(album)
        track_todo = [it for it in items if force or self._needs_work(it) is None]
        if standing is not None and not (per_track and track_todo):
            counts[standing] = len(items)
            if standing == Outcome.KEPT:
                self._log.info("{}: keeps its genres {} (use --force to replace them)", _describe(album),
                               album.genres)
            return counts
        results = self._predict(list(items), progress=progress)
        good = {i: r for i, r in results.items() if not isinstance(r, str)}
        for item in items:
            if isinstance(results[item.id], str):
                counts[Outcome.FAILED] = counts.get(Outcome.FAILED, 0) + 1
                self._fail(item, results[item.id])
        if not good:
            return counts
        labels = list(next(iter(good.values())).scores)
        unknown = [r for r in good.values() if r.unknown]
        # the album is judged as a whole: unknown when most of its tracks are
        vote = Call(dict(zip(labels, np.mean([[r.scores[k] for k in labels] for r in good.values()],
                                             axis=0).tolist())),
                    2 * len(unknown) > len(good), unknown[0].closest if unknown else ())
        album_outcome = self._apply(album, vote) if standing is None else standing
        with batch():
            if album_outcome in (Outcome.UNCERTAIN, Outcome.UNKNOWN):
                self._uncertain(album, vote)
            elif album_outcome == Outcome.SET:
                self._show(album)
                store_album(album)
            for item in items:
                if item.id not in good:
                    continue
                if per_track:
                    outcome = self._apply(item, good[item.id])
                elif album_outcome != Outcome.SET:
                    outcome = album_outcome
                elif self._existing(item) and item.get("genre_source") != SOURCE and not force:
                    outcome = Outcome.KEPT
                else:  # inherit the album's vote (album-level flexible attributes are not inherited by reads)
                    for key in FIELDS:
                        item[key] = album[key]
                    outcome = Outcome.SET
                if outcome == Outcome.SET:
                    self._show(item)
                    store(item)
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def _show(self, obj: LibModel) -> None:
        if obj.id is not None:
            ui.show_model_changes(obj, fields=["genres", "musicgenre_confidence"])

    # ---- writing tags -------------------------------------------------------------------------

    def write_item(self, item: Item) -> bool:
        """Write the item's tags through a verified temporary copy (``musicgenre.library.tags.safe_edit``):
        a write that fails leaves the file byte-identical and logs one line saying why."""
        from musicgenre.library.tags import safe_edit

        path = Path(os.fsdecode(item.path))
        want = list(item.genres)

        def edit(tmp: Path) -> None:
            item.write(path=os.fsencode(tmp))

        def verify(tmp: Path) -> None:
            from mediafile import MediaFile

            got = list(MediaFile(os.fsencode(tmp)).genres or [])
            if got != want:
                raise ValueError(f"genres read back as {got}, not {want}")

        try:
            safe_edit(path, edit, verify)
        except Exception as e:  # one line, whatever broke: the file is unchanged
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0] if str(e) else e
            self._log.error("{}: tags not written ({}); the file is unchanged", path, why)
            return False
        item.mtime = item.current_mtime()
        item.store()
        return True

    # ---- the command --------------------------------------------------------------------------

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("musicgenre", help="set genres recognised from the audio (offline model)")
        cmd.parser.add_option("-p", "--pretend", action="store_true", help="show the changes; store nothing")
        cmd.parser.add_option("-f", "--force", dest="force", action="store_true", default=None,
                              help="replace genres the items already have")
        cmd.parser.add_option("-F", "--no-force", dest="force", action="store_false",
                              help="keep genres the items already have (default)")
        cmd.parser.add_option("-k", "--keep-existing", dest="keep_existing", action="store_true", default=None,
                              help="with --force: combine existing genres with the new ones")
        cmd.parser.add_option("-s", "--source", dest="source", choices=("album", "track"),
                              help="with -a: album (one vote, inherited) or track (each track its own)")
        cmd.parser.add_option("--min-confidence", dest="min_confidence", type="float",
                              help="write a genre only when its probability reaches this "
                                   "(default: the model's confident threshold, 0.8)")
        cmd.parser.add_option("-c", "--count", dest="count", type="int", help="how many genres (default 1)")
        cmd.parser.add_option("-w", "--write", dest="write", action="store_true", default=None,
                              help="write new genres into the files (default: beets' import.write)")
        cmd.parser.add_option("-W", "--nowrite", dest="write", action="store_false",
                              help="store in the library only")
        cmd.parser.add_album_option()
        cmd.func = self._command
        return [cmd, self._learn_subcommand()]

    def _command(self, lib: Library, opts: Any, args: list[str]) -> None:
        self._override = {k: v for k, v in vars(opts).items()
                          if v is not None and k in ("force", "keep_existing", "source", "min_confidence", "count")}
        if opts.pretend:
            self._override["pretend"] = True
        try:
            self._run(lib, opts, args)
        finally:
            self._override = {}

    def _run(self, lib: Library, opts: Any, args: list[str]) -> None:
        self._min_confidence()  # a bad value is a usage error before anything loads
        pretend = self._flag("pretend")
        write = ui.should_write(opts.write) and not pretend
        written = failed_writes = 0

        def store(item: Item) -> None:
            nonlocal written, failed_writes
            if pretend:
                return
            if write and self.write_item(item):  # stored by write_item, with the file's new mtime
                written += 1
                return
            if write:
                failed_writes += 1
            item.store()  # the library gets the genres even where the file could not be written

        def store_album(album: Album) -> None:
            if not pretend:
                album.store(inherit=False)  # items are stored one by one: a track's own genres are respected

        counts: dict[str, int] = {}
        if opts.album:
            albums = list(lib.albums(args))
            n = len(albums)
            for i, album in enumerate(albums, 1):
                if n > 1 and sys.stderr.isatty():
                    print(f"musicgenre: album {i}/{n}: {album}", file=sys.stderr)
                for k, v in self.process_album(album, list(album.items()), store_album=store_album, store=store,
                                               progress=True, batch=lib.transaction).items():
                    counts[k] = counts.get(k, 0) + v
        else:
            counts = self.process_items(list(lib.items(args)), store=store, progress=True, batch=lib.transaction)
        what = "would be set" if pretend else "set"
        parts = [f"{counts.get(Outcome.SET, 0)} {what}",
                 f"{counts.get(Outcome.UNCERTAIN, 0)} uncertain and {counts.get(Outcome.UNKNOWN, 0)} unknown "
                 "(kept as they were)",
                 f"{counts.get(Outcome.KEPT, 0)} kept their own genres",
                 f"{counts.get(Outcome.DONE, 0)} already done",
                 f"{counts.get(Outcome.FAILED, 0)} failed"]
        if write:
            parts.append(f"{written} files written" + (f", {failed_writes} not written" if failed_writes else ""))
        ui.print_("musicgenre: " + ", ".join(parts) + (" (pretend: nothing stored)" if pretend else ""))

    # ---- learning from the library's own genres ----------------------------------------------

    def _learn_subcommand(self) -> ui.Subcommand:
        cmd = _LearnSubcommand("musicgenre-learn", help="train a genre model on the library's own genres "
                                                     "(then `model: DIR` classifies with it)")
        cmd.parser.usage = f"{cmd.parser.usage or '%prog [options]'} [QUERY]"
        cmd.parser.add_option("-o", "--output", dest="output", metavar="DIR",
                              help="the model directory to write (an existing model directory is replaced)")
        cmd.parser.add_option("--report", dest="report", metavar="R.json",
                              help="also write the report: genres, merges, drops, validation, suspects, left_out, "
                              "to_tag")
        cmd.parser.add_option("--db", dest="db", metavar="LIB",
                              help="the musicgenre library database holding the features (default: the config's "
                                   "db, else musicgenre.sqlite next to the beets library); missing ones are added")
        cmd.func = self._learn_command
        return cmd

    def _features_db(self, lib: Library, given: str | None) -> Path:
        """Where the items' window features are kept: ``--db``, else the config's ``db``, else
        ``musicgenre.sqlite`` next to the beets library (beets' config folder for a library in memory)."""
        if given:
            return Path(given).expanduser()
        if self.config["db"].get():
            return Path(self.config["db"].as_filename())
        library = os.fsdecode(lib.path)
        if library == ":memory:":
            from beets import config

            return Path(config.config_dir()) / "musicgenre.sqlite"
        return Path(library).expanduser().resolve().parent / "musicgenre.sqlite"

    @staticmethod
    def _track_tags(item: Item, path: str, file_tags: dict[str, Any] | None = None) -> Any:
        """What the trainer reads of one item: beets' own genres (``genres``, or the ``genre`` string of older
        data), artist fields and ``genre_source`` (musicgenre's own genres are never labels). ``file_tags``
        (what the features database read from the file): a file carrying the mark of ``musicgenre scan
        --write-tags`` whose genres beets took from it is ours too."""
        from musicgenre.genres.tracks import TrackTags

        genres = [g for g in (item.get("genres", with_album=False) or []) if g]
        if not genres and item.get("genre", with_album=False):  # older beets: one (possibly joined) string
            genres = [str(item.get("genre", with_album=False))]
        ours = bool(file_tags and file_tags.get("genre_ours")
                    and {g.casefold() for g in file_tags.get("genres") or []} == {g.casefold() for g in genres})
        return TrackTags(path=path, genres=genres, artist=item.get("artist") or None,
                         album_artist=item.get("albumartist") or None, album=item.get("album") or None,
                         musicbrainz_artist_id=item.get("mb_artistid") or None,
                         musicbrainz_album_id=item.get("mb_albumid") or None, genre_ours=ours,
                         genre_source=item.get("genre_source", with_album=False) or None)

    def _current_features(self, db: Path, backbone: tuple[str, str]) -> dict[str, Any]:
        """path -> ``FeatureRow`` for the files of ``db`` with current features of ``backbone`` (none when
        ``db`` does not exist yet)."""
        from musicgenre.library.db import read_features

        if not db.exists():
            return {}
        return {r.path: r for r in read_features(db, backbone=backbone[0], backbone_version=backbone[1])}

    def _learn_command(self, lib: Library, opts: Any, args: list[str]) -> None:
        import importlib.util

        missing = [m for m in ("sklearn", "onnx", "safetensors") if importlib.util.find_spec(m) is None]
        if missing:
            raise ui.UserError(f"musicgenre-learn needs {', '.join(missing)}, which is not installed: "
                               "pip install 'musicgenre[learn]'")
        from musicgenre.errors import MusicGenreError

        try:
            self._learn(lib, opts, args)
        except MusicGenreError as e:  # no genres, too few left, one artist, bad -o: one line, nothing written
            raise ui.UserError(f"musicgenre-learn: {e}") from None

    def _learn(self, lib: Library, opts: Any, args: list[str]) -> None:
        import dataclasses
        import shlex

        from musicgenre._names import printable_name
        from musicgenre.errors import ParameterError
        from musicgenre.genres.provenance import written_by_us
        from musicgenre.learn.options import LearnOptions
        from musicgenre.learn.report import summary_lines
        from musicgenre.learn.run import learn, prepare_output
        from musicgenre.learn.writer import backbone_identity, base_model
        from musicgenre.library.db import read_rows
        from musicgenre.library.scan import scan
        from musicgenre.stored import StoredLibrary, window_features

        if not opts.output:
            raise ui.UserError("musicgenre-learn: say where to write the model: -o DIR")
        db = self._features_db(lib, opts.db)
        try:
            options = LearnOptions.from_flags(opts, db=db, out=Path(opts.output).expanduser(),
                                              report=Path(opts.report).expanduser() if opts.report else None)
        except ParameterError as e:
            raise ui.UserError(f"musicgenre-learn: {e}") from None
        out = options.out
        prepare_output(out)  # the checks learn makes, before the features are computed
        if opts.report and not Path(opts.report).expanduser().resolve().parent.is_dir():
            raise ParameterError(f"{Path(opts.report).parent}: no such folder for --report")
        base_model()
        backbone = backbone_identity()

        items = list(lib.items(args))
        paths = {item.id: str(Path(os.fsdecode(item.path)).resolve()) for item in items}
        own = [t for t in (self._track_tags(item, paths[item.id]) for item in items)
               if t.genres and not written_by_us(t)]
        if not own:
            raise ui.UserError(f"musicgenre-learn: no genres to learn from: none of the {len(items)} matched items "
                               "has genres of its own (those musicgenre set are never used)")

        # the window features: those the database already holds for the file as it is now, the rest from one
        # pass of the configured model (the scan that `musicgenre scan` runs, into the same database)
        have = self._current_features(db, backbone)
        stats = {r["path"]: (r["size"], r["mtime"]) for r in read_rows(db)} if have else {}
        todo = []
        for item in items:
            path = paths[item.id]
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if path not in have or st is None or stats.get(path) != (st.st_size, st.st_mtime):
                todo.append(Path(path))
        self._log.info("{}: features of {} items stored, {} to compute", printable_name(db), len(items) - len(todo),
                       len(todo))
        if todo:
            clf = self.classifier
            gives = getattr(clf, "feature_backbone", None)
            if gives is None or tuple(gives) != backbone:
                what = "no embeddings" if gives is None else f"the embeddings of {' '.join(gives)}"
                raise ui.UserError(f"musicgenre-learn: model {clf.name} {clf.version} gives {what}; learning reads "
                                   f"those of {' '.join(backbone)}: set musicgenre's model to a shipped model or one "
                                   "learned before")
            db.parent.mkdir(parents=True, exist_ok=True)
            summary = scan(todo, db, clf, workers=self.config["workers"].get(int), progress=sys.stderr.isatty())
            self._log.info("{}: {}", printable_name(db), summary.line())
            have = self._current_features(db, backbone)

        tracks, features = [], {}
        no_features = no_tags = 0
        for item in items:
            row = have.get(paths[item.id])
            if row is None:  # unreadable, or no window above the silence threshold
                no_features += 1
            elif row.tag_logits is None or len(row.embedding) == 0:
                no_tags += 1
            else:
                tracks.append(self._track_tags(item, row.path, row.tags))
                features[row.path] = window_features(row.embedding, row.tag_logits)
        skipped = {k: v for k, v in (("no features (unreadable or silent files)", no_features),
                                     ("no tag logits stored", no_tags)) if v}
        if not tracks:
            raise ui.UserError(f"musicgenre-learn: none of the {len(items)} matched items has features "
                               "(unreadable or silent files)")

        command = shlex.join(["beet", "musicgenre-learn", "-o", str(opts.output), *options.flag_words(), *args])
        stored = StoredLibrary(tracks, features, backbone, skipped)
        done = learn(dataclasses.replace(options, command=command), read=lambda _: stored,
                     say=lambda line: self._log.info("{}", line))
        for w in done.warnings:
            self._log.warning("{}", w)
        lines = summary_lines(done.report, printable_name(done.out), items="items", report=opts.report)
        lines.append(f"classify with it: set `musicgenre: {{model: {done.out}}}` in the beets config, then "
                     "`beet musicgenre` (genres of your own are kept)")
        ui.print_("\n".join(lines))

    # ---- importing ----------------------------------------------------------------------------

    def imported(self, session: ImportSession, task: ImportTask) -> None:
        """Import stage: classify and store (``task.reload()`` follows every stage); files are written by
        beets itself for autotagged tasks, and by ``import_task_files`` below for as-is imports."""
        if self._flag("pretend"):
            return

        def store(item: Item) -> None:
            item.store()
            self._pending_writes[item.id] = True

        self._importing = True
        try:
            if task.is_album:
                self.process_album(task.album, task.imported_items(),
                                   store_album=lambda a: a.store(inherit=False), store=store)
            else:
                self.process_items([task.item], store=store)  # type: ignore[attr-defined]
        finally:
            self._importing = False

    def import_task_files(self, session: ImportSession, task: ImportTask) -> None:
        """After beets moved/copied the files: write our genres into the library's files where beets
        would write tags (``import.write``) but did not (as-is imports, which beets writes no tags for).
        In copy mode ``item.path`` is the library's copy by now, never the user's source file."""
        from beets.importer import Action

        items = [it for it in task.imported_items() if self._pending_writes.pop(it.id, False)]
        if not items or not session.config["write"].get(bool):
            return
        if task.choice_flag in (Action.APPLY, Action.RETAG):  # beets has just written every field itself
            return
        for item in items:
            self.write_item(item)
