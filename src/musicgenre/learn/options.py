"""``LearnOptions``: what a ``learn`` run is asked to do, the one place its defaults are written.

The command line of ``musicgenre learn`` and of ``beet musicgenre-learn`` are both made from ``FLAGS`` (argparse
and optparse), so the two adapters only map options; ``command_line`` writes the command back for the model card,
naming only what differs from the defaults.

The defaults keep the genres a real library has: a genre with at least 8 files from at least 2 artists is
learned (a library of 11 genres with 8-16 files each keeps them all); the report and the card say which genres
were learned from few files and how sure their figures are (``report.FEW_FILES``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParameterError

__all__ = ["FLAGS", "Flag", "LearnOptions", "add_arguments", "add_options", "check_installed"]


@dataclass(frozen=True)
class Flag:
    """One command-line flag of ``learn``: ``dest`` is the ``LearnOptions`` field it sets."""

    name: str
    dest: str
    help: str
    metavar: str = "N"
    repeat: bool = False  # SOURCE=TARGET pairs, given once per pair


@dataclass(frozen=True)
class LearnOptions:
    """A ``learn`` run: the library database ``db``, the model directory ``out`` to write, the ``report`` JSON
    to write beside it (None: none), ``aliases`` and ``parents`` ({source: target}, as ``vocabulary.parse_aliases``
    reads them), the thresholds a genre must reach to be learned (``min_files`` files, from ``min_artists``
    artists, counting only the files it labels alone), the validation ``folds`` (grouped by artist; fewer when
    the library has fewer artist groups or its largest genre fewer files) and the ``command`` recorded in the
    card (None: ``command_line("musicgenre learn")``)."""

    db: Path
    out: Path
    report: Path | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    parents: Mapping[str, str] = field(default_factory=dict)
    min_files: int = 8
    min_artists: int = 2
    folds: int = 5
    command: str | None = None

    def __post_init__(self) -> None:
        if self.min_files < 1 or self.min_artists < 1:
            raise ParameterError("--min-files and --min-artists must be at least 1")
        if self.folds < 2:
            raise ParameterError("--folds must be at least 2")

    @classmethod
    def from_flags(cls, values: Any, *, db: Path, out: Path, report: Path | None = None,
                   command: str | None = None) -> LearnOptions:
        """From parsed flags (an argparse ``Namespace`` or optparse ``Values`` made with ``add_arguments`` or
        ``add_options``); a malformed ``--alias``/``--parent`` is a ``ParameterError``."""
        from .vocabulary import parse_aliases

        try:
            aliases = parse_aliases(values.alias)
            parents = parse_aliases(values.parent, flag="--parent")
        except ValueError as e:
            raise ParameterError(str(e)) from None
        return cls(db=Path(db), out=Path(out), report=None if report is None else Path(report), aliases=aliases,
                   parents=parents, min_files=values.min_files, min_artists=values.min_artists, folds=values.folds,
                   command=command)

    def flag_words(self) -> list[str]:
        """The flags that differ from the defaults, as command-line words (aliases and parents first)."""
        words = [w for source, target in self.aliases.items() for w in ("--alias", f"{source}={target}")]
        words += [w for source, target in self.parents.items() for w in ("--parent", f"{source}={target}")]
        default = LearnOptions(self.db, self.out)
        for flag in FLAGS:
            if not flag.repeat and getattr(self, flag.dest) != getattr(default, flag.dest):
                words += [flag.name, str(getattr(self, flag.dest))]
        return words

    @classmethod
    def from_card(cls, training: Mapping[str, Any], *, db: Path, out: Path) -> LearnOptions:
        """The run that made a model again, on ``db`` into ``out``: the thresholds, aliases and parents its card
        records (``training``: the card's ``training`` section; what it lacks takes the defaults)."""
        return cls(db=Path(db), out=Path(out), aliases=dict(training.get("aliases") or {}),
                   parents=dict(training.get("parents") or {}),
                   min_files=int(training.get("min_files") or _DEFAULT.min_files),
                   min_artists=int(training.get("min_artists") or _DEFAULT.min_artists))

    def command_line(self, program: str = "musicgenre learn", extra: Sequence[str] = ()) -> str:
        """The command that makes this run, as the card records it."""
        head = [*program.split(), "--db", str(self.db), "-o", str(self.out)]
        return shlex.join([*head, *self.flag_words(), *extra])


_DEFAULT = LearnOptions(Path(), Path())

FLAGS = (
    Flag("--alias", "alias", "treat genre SOURCE as TARGET (repeatable), e.g. --alias Electronica=Electronic",
         "SOURCE=TARGET", repeat=True),
    Flag("--parent", "parent", "a GENRE too rare to keep (--min-files, --min-artists) is learned as PARENT instead "
         "(repeatable), e.g. --parent Synthwave=Electronic", "GENRE=PARENT", repeat=True),
    Flag("--min-files", "min_files", f"drop genres with fewer files (default {_DEFAULT.min_files})"),
    Flag("--min-artists", "min_artists", f"drop genres with fewer artists (default {_DEFAULT.min_artists})"),
    Flag("--folds", "folds", f"validation folds, grouped by artist (default {_DEFAULT.folds}; fewer when the "
         "library has fewer artists, or its largest genre fewer files)"),
)


def check_installed(what: str = "learn") -> None:
    """ParameterError naming what ``learn`` needs and is not installed (the learn extra: no torch)."""
    import importlib.util

    missing = [m for m in ("sklearn", "onnx", "safetensors") if importlib.util.find_spec(m) is None]
    if missing:
        raise ParameterError(f"{what} needs {', '.join(missing)}, which is not installed: "
                             "pip install 'musicgenre[learn]'")


def add_arguments(parser: Any) -> None:
    """``FLAGS`` on an argparse parser (``musicgenre learn``)."""
    for flag in FLAGS:
        if flag.repeat:
            parser.add_argument(flag.name, dest=flag.dest, action="append", default=[], metavar=flag.metavar,
                                help=flag.help)
        else:
            parser.add_argument(flag.name, dest=flag.dest, type=int, default=getattr(_DEFAULT, flag.dest),
                                metavar=flag.metavar, help=flag.help)


def add_options(parser: Any) -> None:
    """``FLAGS`` on an optparse parser (beets' subcommands)."""
    for flag in FLAGS:
        if flag.repeat:
            parser.add_option(flag.name, dest=flag.dest, action="append", default=[], metavar=flag.metavar,
                              help=flag.help)
        else:
            parser.add_option(flag.name, dest=flag.dest, type="int", default=getattr(_DEFAULT, flag.dest),
                              metavar=flag.metavar, help=flag.help)
