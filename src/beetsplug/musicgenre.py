"""beets plugin: genres recognised from the audio itself, offline (docs/beets.md). It maps beets' options and
objects onto musicgenre's library: the vote and the keep/skip ladder (``library.verdict``), verified tag writes
(``library.tags.safe_edit``), learning's input (``library.learning.stored_for``). beets loads every plugin for
every command (``beet ls`` too): musicgenre and the model load on the first classification, once per command."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beets import plugins, ui
from beets.dbcore import types
from beets.library import Album, Item

if TYPE_CHECKING:
    from beets.importer import ImportSession, ImportTask
    from beets.library import LibModel, Library

SOURCE = "musicgenre"
FIELDS = ("genres", "genre_source", "musicgenre_confidence", "musicgenre_model", "musicgenre_version")
_TYPES = {"genre_source": types.STRING, "musicgenre_confidence": types.Float(3), "musicgenre_model": types.STRING,
          "musicgenre_version": types.STRING}
SET, UNCERTAIN, UNKNOWN, KEPT = "set", "uncertain", "unknown", "kept"  # library.verdict's outcomes


class _LearnSubcommand(ui.Subcommand):
    """``musicgenre-learn``: learn's flags (``musicgenre.learn.options``) join the parser only when it runs."""

    def _flags(self) -> None:
        from musicgenre.learn.options import add_options

        if not self.parser.has_option("--min-files"):
            add_options(self.parser)

    def parse_args(self, args: list[str]) -> Any:
        self._flags()
        return super().parse_args(args)

    def print_help(self) -> None:
        self._flags()
        super().print_help()


class MusicGenrePlugin(plugins.BeetsPlugin):
    item_types = album_types = _TYPES

    def __init__(self) -> None:
        super().__init__()
        self.config.add({"auto": True, "force": False, "keep_existing": False, "count": 1, "min_confidence": None,
                         "title_case": True, "pretend": False, "source": "album", "model": None, "workers": 2,
                         "db": None})
        self._clf: Any = None
        self._override: dict[str, Any] = {}  # the running command's options (config.set_args would outlive it)
        self._importing = False
        self._id: tuple[str, str] | None = None
        self._pending_writes: dict[Any, bool] = {}  # item id -> written by import_task_files
        if self._opt("auto"):
            self.import_stages = [self.imported]
            self.register_listener("import_task_files", self.import_task_files)

    def _opt(self, key: str) -> Any:  # this command's option if given on the command line, else the config's
        return self._override[key] if key in self._override else self.config[key].get()

    def _musicgenre(self, call: Callable[[], Any]) -> Any:  # musicgenre's one-line errors as beets usage errors
        from musicgenre.errors import MusicGenreError

        try:
            return call()
        except MusicGenreError as e:
            raise ui.UserError(f"musicgenre: {e}") from None

    def _model(self) -> str | None:
        return os.path.expanduser(str(self.config["model"].get())) if self.config["model"].get() else None

    @property
    def classifier(self) -> Any:
        from musicgenre.pipeline import load

        if self._clf is None:  # `musicgenre scan`'s defaults
            self._clf = self._musicgenre(lambda: load(self._model()))
        return self._clf

    def _identity(self) -> tuple[str, str]:  # (name, version) of the configured model, without loading it
        from musicgenre.modeldir import identity

        self._id = self._id or self._musicgenre(lambda: identity(self._model()))
        return self._id

    def _rules(self) -> Any:
        from musicgenre.library.verdict import Rules

        keys = ("min_confidence", "count", "title_case", "force", "keep_existing")  # checked: one-line errors
        return self._musicgenre(lambda: Rules.checked(**{k: self._opt(k) for k in keys}))

    def _subject(self, obj: LibModel) -> Any:
        """An item or album as the ladder sees it (``library.assign.Subject``)."""
        from musicgenre.library.assign import Subject

        own = obj.get("genres", with_album=False) if isinstance(obj, Item) else obj.get("genres")
        ours = obj.get("genre_source") == SOURCE
        model = (obj.get("musicgenre_model"), obj.get("musicgenre_version"))
        return Subject(id(obj), list(own or []), ours, ours and model == self._identity())

    def process(self, album: Album | None, items: Sequence[Item], *, store: Callable[[Any], None],
                progress: bool = False, batch: Callable[[], AbstractContextManager[Any]] = nullcontext) -> Any:
        """Classify ``items`` each on its own, or as ``album`` (``library.assign``); ``store`` what changed."""
        from beets.util import displayable_path

        from musicgenre.library.assign import assign, classify

        if self._opt("source") not in ("album", "track"):
            raise ui.UserError(f"musicgenre: source must be album or track, got {self._opt('source')!r}")
        rules, objs = self._rules(), {id(o): o for o in (*items, album) if o is not None}
        run = assign(rules, [self._subject(it) for it in items], album=self._subject(album) if album else None,
                     per_track=self._opt("source") == "track",
                     predict=lambda keys: classify(self.classifier, [os.fsdecode(objs[k].path) for k in keys],
                                                   workers=self.config["workers"].get(int),
                                                   progress=progress and sys.stderr.isatty(),
                                                   fail=lambda line: self._log.error("{}", line)))
        with batch():  # the command stores in one transaction, as `beet modify` does
            for change in run.changes:
                obj = objs[change.key]
                if change.say and change.outcome in (KEPT, UNCERTAIN, UNKNOWN):  # import shows no info lines
                    say = self._log.warning if self._importing and change.outcome != KEPT else self._log.info
                    name = displayable_path(obj.path) if isinstance(obj, Item) else str(obj)  # "artist - album"
                    say("{}: {}", name, change.note(rules.min_confidence))
                elif change.outcome == SET:
                    if change.from_album:  # album-level attributes are not inherited by reads
                        obj.update({k: album[k] for k in FIELDS})  # type: ignore[index]
                    else:
                        clf = self.classifier
                        obj.update(dict(zip(FIELDS, (change.genres, SOURCE, change.confidence, clf.name, clf.version))))
                    if obj.id is not None:
                        ui.show_model_changes(obj, fields=["genres", "musicgenre_confidence"])
                    store(obj)
        return run

    def write_item(self, item: Item) -> bool:
        """Write the item's tags through a verified temporary copy: a failed write leaves the file unchanged."""
        from mediafile import MediaFile

        from musicgenre.library.tags import failure_reason, safe_edit

        path, want = Path(os.fsdecode(item.path)), list(item.genres)

        def verify(tmp: Path) -> None:
            if (got := list(MediaFile(os.fsencode(tmp)).genres or [])) != want:
                raise ValueError(f"genres read back as {got}, not {want}")

        try:
            safe_edit(path, lambda tmp: item.write(path=os.fsencode(tmp)), verify)
        except Exception as e:  # whatever broke: the file is unchanged
            self._log.error("{}: tags not written ({}); the file is unchanged", path, failure_reason(e))
            return False
        item.mtime = item.current_mtime()
        item.store()
        return True

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("musicgenre", help="set genres recognised from the audio (offline model)")
        for *names, kw in (
                ("-p", "--pretend", {"action": "store_true", "help": "show the changes; store nothing"}),
                ("-f", "--force", {"action": "store_true", "help": "replace genres the items already have"}),
                ("-F", "--no-force", {"dest": "force", "action": "store_false", "help": "keep them (default)"}),
                ("-k", "--keep-existing", {"action": "store_true", "help": "with --force: keep them first"}),
                ("-s", "--source", {"choices": ("album", "track"), "help": "with -a: one vote, or each track's"}),
                ("--min-confidence", {"type": "float", "help": "set from this probability on (default 0.8)"}),
                ("-c", "--count", {"type": "int", "help": "how many genres (default 1)"}),
                ("-w", "--write", {"action": "store_true", "help": "write the files (default: beets' import.write)"}),
                ("-W", "--nowrite", {"dest": "write", "action": "store_false", "help": "store in the library only"})):
            cmd.parser.add_option(*names, default=None, **kw)
        cmd.parser.add_album_option()
        cmd.func = self._command
        learn = _LearnSubcommand("musicgenre-learn", help="train a genre model on the library's own genres "
                                 "(then `model: DIR` classifies with it)")
        learn.parser.usage = f"{learn.parser.usage or '%prog [options]'} [QUERY]"
        for *names, metavar, text in (
                ("-o", "--output", "DIR", "the model directory to write (an existing model directory is replaced)"),
                ("--report", "R.json", "also write the report: genres, merges, drops, validation, suspects, "
                 "left_out, to_tag"),
                ("--db", "LIB", "the musicgenre library database holding the features (default: the config's db, "
                 "else musicgenre.sqlite next to the beets library)")):
            learn.parser.add_option(*names, metavar=metavar, help=text)
        learn.func = self._learn_command
        return [cmd, learn]

    def _command(self, lib: Library, opts: Any, args: list[str]) -> None:
        keys = ("force", "keep_existing", "source", "min_confidence", "count")
        self._override = {k: v for k, v in vars(opts).items() if v is not None and k in keys}
        self._override.update({"pretend": True} if opts.pretend else {})
        try:
            from musicgenre.library.assign import Run

            self._rules()  # a bad value is a usage error before anything loads
            pretend = bool(self._opt("pretend"))
            write = ui.should_write(opts.write) and not pretend
            writes = {True: 0, False: 0}

            def store(obj: Any) -> None:
                if pretend:
                    return
                if isinstance(obj, Album):  # its items are stored one by one: a track's own genres are respected
                    return obj.store(inherit=False)
                if write:
                    ok = self.write_item(obj)  # which stores it, with the file's new mtime
                    writes[ok] += 1
                    if ok:
                        return
                obj.store()  # the library gets the genres even where the file could not be written

            total = Run()
            groups = [(a, list(a.items())) for a in lib.albums(args)] if opts.album else [(None, lib.items(args))]
            for i, (album, items) in enumerate(groups, 1):
                if album is not None and len(groups) > 1 and sys.stderr.isatty():
                    print(f"musicgenre: album {i}/{len(groups)}: {album}", file=sys.stderr)
                total.merge(self.process(album, list(items), store=store, progress=True, batch=lib.transaction))
        finally:
            self._override = {}
        written = f", {writes[True]} files written" + (f", {writes[False]} not written" if writes[False] else "")
        ui.print_(f"musicgenre: {total.line(pretend=pretend)}{written if write else ''}"
                  + (" (pretend: nothing stored)" if pretend else ""))

    def _features_db(self, lib: Library, given: str | None) -> Path:
        """``--db``, the config's ``db``, else ``musicgenre.sqlite`` by the beets library (in memory: its config)."""
        from beets import config

        if given or self.config["db"].get():
            return Path(given).expanduser() if given else Path(self.config["db"].as_filename())
        library = os.fsdecode(lib.path)
        folder = Path(config.config_dir()) if library == ":memory:" else Path(library).expanduser().resolve().parent
        return folder / "musicgenre.sqlite"

    def _learn_command(self, lib: Library, opts: Any, args: list[str]) -> None:
        import dataclasses
        from functools import partial

        from musicgenre.errors import MusicGenreError
        from musicgenre.learn.options import LearnOptions, check_installed
        from musicgenre.learn.report import summary_lines
        from musicgenre.learn.run import learn
        from musicgenre.library.learning import FIELDS, OWN_FIELDS, stored_for, track_from_fields

        def say(line: str) -> None:
            self._log.info("{}", line)

        db = self._features_db(lib, opts.db)
        tracks = [track_from_fields(it.path, {k: it.get(k, with_album=k not in OWN_FIELDS) for k in FIELDS})
                  for it in lib.items(args)]
        try:  # not installed, no genres, too few left, one artist, bad -o: one line, nothing written
            check_installed("musicgenre-learn")
            if not opts.output:
                raise MusicGenreError("say where to write the model: -o DIR")
            options = LearnOptions.from_flags(opts, db=db, out=Path(opts.output).expanduser(),
                                              report=Path(opts.report).expanduser() if opts.report else None)
            command = shlex.join(["beet", "musicgenre-learn", "-o", str(opts.output), *options.flag_words(), *args])
            read = partial(stored_for, db, tracks, model=self._identity(), classifier=lambda: self.classifier,
                           workers=self.config["workers"].get(int), progress=sys.stderr.isatty(), say=say)
            done = learn(dataclasses.replace(options, command=command), read=read, say=say)
        except MusicGenreError as e:
            raise ui.UserError(f"musicgenre-learn: {e}") from None
        for w in done.warnings:
            self._log.warning("{}", w)
        ui.print_("\n".join([*summary_lines(done.report, done.out, items="items", report=opts.report),
                             f"classify with it: set `musicgenre: {{model: {done.out}}}` in the beets config, then "
                             "`beet musicgenre` (genres of your own are kept)"]))

    def imported(self, session: ImportSession, task: ImportTask) -> None:
        """Import stage: classify and store (files: written by beets when autotagged, else ``import_task_files``)."""
        if self._opt("pretend"):
            return

        def store(obj: Any) -> None:
            if isinstance(obj, Album):
                return obj.store(inherit=False)
            obj.store()
            self._pending_writes[obj.id] = True

        self._importing = True
        try:
            self.process(task.album if task.is_album else None,
                         task.imported_items() if task.is_album else [task.item],  # type: ignore[attr-defined]
                         store=store)
        finally:
            self._importing = False

    def import_task_files(self, session: ImportSession, task: ImportTask) -> None:
        """Write our genres where beets would write tags but did not (as-is imports): the library's copy."""
        from beets.importer import Action

        items = [it for it in task.imported_items() if self._pending_writes.pop(it.id, False)]
        if not items or not session.config["write"].get(bool) or task.choice_flag in (Action.APPLY, Action.RETAG):
            return  # (autotagged: beets has just written every field itself)
        for item in items:
            self.write_item(item)
