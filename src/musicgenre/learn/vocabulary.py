"""From the genre tags a library holds to one vocabulary, per-file labels and artist groups.

Values are read by the genre-tag room (``musicgenre.genres.values``: splitting, ID3 codes, the spelling-free
``canonical_key``); different words never merge by themselves ("Electronica" is not "Electronic", "Alt. Rock" is
not "Alternative Rock"): only the user's aliases (``--alias "Electronica=Electronic"``, chains followed) merge
meanings. An alias also matches a whole joined value before it is split. The genre's **display name** is the
owner's own most frequent spelling of the target word (ties: first seen), else the alias target as written.
"Unknown", "Other", "Remix", "Cover" and the like are not genres (``genres.words.NOT_GENRES``).
**Multi-genre files.** A single-label classifier is told that every other class is wrong for a file, so a
file tagged with two kept genres would teach a contradiction (and, in validation, score a right answer as
wrong). Such files are *ambiguous*: reported, never trained or validated on. A genre's ``--min-files`` and
``--min-artists`` therefore count only the files that would be labelled with it alone. Dropping a genre can
make its co-tagged files single-genre, so the thresholds are applied in rounds, weakest genres first (those
with the fewest such files, all ties together): a "Rock; Pop" file becomes a Rock example once Pop is too
rare to keep, and two genres that always co-occur go together rather than one winning by a coin toss.

**Parents.** A genre too rare to keep that the owner gave a parent (``--parent "Synthwave=Electronic"``) is read
as that parent, as an alias that applies only to rare genres (a parent too rare itself backs off in turn): the
thresholds are applied, the rare genres with a parent become aliases of it, and the vocabulary is built again
until no more back off.

**Our own tags never become labels** (``genres.provenance.written_by_us``). **Artist groups**
(``genres.tracks.group_keys``) keep one artist's tracks on one side of a validation fold; ``grouping_leaks`` says
when the folder fallback coincides with genres, so figures can be marked leaky.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from ..genres.provenance import written_by_us
from ..genres.tracks import TrackTags, group_keys
from ..genres.values import canonical_key, resolve_id3_numeric, split_values, tidy
from ..genres.words import NOT_GENRES

__all__ = ["Dropped", "GenreCount", "Leakage", "Merge", "Split", "Vocabulary", "build_vocabulary", "grouping_leaks",
           "parse_aliases", "resolve_aliases"]

NOT_A_GENRE = "not a genre"  # a dropped genre's reason when its value says "no genre" ("Unknown", "Misc")


@dataclass(frozen=True)
class GenreCount:
    """A kept genre: ``files`` labelled with it alone, the artist groups among them, and ``shared`` files
    that also carry another kept genre (ambiguous, so unused)."""

    name: str
    files: int
    artists: int
    shared: int = 0


@dataclass(frozen=True)
class Merge:
    """Spellings merged into one genre. ``how``: "spelling" (same canonical key), "alias" (the user's
    ``--alias``), "parent" (a genre too rare to keep, backed off to the parent the user named with ``--parent``)
    or "id3" (numeric ID3 codes). ``files``: files that carried one of ``from_``."""

    into: str
    from_: tuple[str, ...]
    files: int
    how: str

    def as_dict(self) -> dict[str, object]:
        return {"into": self.into, "from": list(self.from_), "files": self.files, "how": self.how}


@dataclass(frozen=True)
class Split:
    """A joined value ("Rock; Pop") read as several genres, and how many files held it."""

    value: str
    into: tuple[str, ...]
    files: int


@dataclass(frozen=True)
class Dropped:
    """A genre left out: ``files`` and ``artists`` that carry it at all, and why (the counts that failed)."""

    genre: str
    files: int
    artists: int
    reason: str


@dataclass
class Vocabulary:
    """What ``build_vocabulary`` decided. ``labels``: path -> genre (display name) for every file that
    trains; ``ambiguous``: path -> its several kept genres (not used); ``ours``: files whose genre tags our
    writers put there (ignored); ``untagged``: files without a genre value."""

    kept: list[GenreCount]
    merged: list[Merge]
    dropped: list[Dropped]
    labels: dict[str, str]
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)
    splits: list[Split] = field(default_factory=list)
    ours: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)

    @property
    def genres(self) -> list[str]:
        return [g.name for g in self.kept]


# ---- values -------------------------------------------------------------------------------------

# ---- aliases --------------------------------------------------------------------------------------

def parse_aliases(specs: Iterable[str], *, flag: str = "--alias") -> dict[str, str]:
    """``--alias`` values ("Electronica=Electronic"), or ``--parent`` values ("Synthwave=Electronic") ->
    {source: target}; ValueError for a malformed one."""
    out: dict[str, str] = {}
    for spec in specs:
        source, eq, target = spec.partition("=")
        if not eq or not canonical_key(source) or not canonical_key(target):
            raise ValueError(f"{flag} {spec!r}: expected SOURCE=TARGET, both genre names")
        out[tidy(source)] = tidy(target)
    return out


def resolve_aliases(aliases: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """{source: target} -> {source key: (final target key, its name as written)}, chains followed
    ("Electronica=Electronic", "Electronic=Electronic Music": Electronica -> Electronic Music).
    ValueError for a cycle or one source sent to two targets; an alias between spellings is a no-op."""
    step: dict[str, tuple[str, str]] = {}
    for source, target in aliases.items():
        key, to = canonical_key(source), canonical_key(target)
        if not key or not to:
            raise ValueError(f"alias {source!r}={target!r}: both sides must be genre names")
        if key == to:
            continue
        if key in step and step[key][0] != to:
            raise ValueError(f"alias {source!r}: sent to both {step[key][1]!r} and {target!r}")
        step[key] = (to, tidy(target))
    out = {}
    for key in step:
        seen = [key]
        end = step[key]
        while end[0] in step:
            if end[0] in seen:
                raise ValueError("aliases form a cycle: " + " -> ".join([*seen, end[0]]))
            seen.append(end[0])
            end = step[end[0]]
        out[key] = end
    return out


@dataclass(frozen=True)
class Leakage:
    """Whether validation figures are optimistic because the grouping fell back to genre-like folders."""

    leaky: bool
    reasons: tuple[str, ...]
    folder_files: int  # labelled files grouped by folder
    files: int  # labelled files


def grouping_leaks(tracks: Iterable[TrackTags], labels: Mapping[str, str], *, tolerance: float = 0.05) -> Leakage:
    """Leaky when, among the labelled files grouped by folder (no artist known), more than ``tolerance`` of
    all labelled files sit (a) in folders named after a genre ("Music/Jazz/..."): the groups are the genres,
    or (b) in folders of several files that each hold a single genre: folder, album and genre coincide, an
    artist's other albums land on both sides of a fold, and the model is scored on sounds it has heard.
    A few such files do not move the figures; ``tolerance`` (5%) is that noise."""
    groups = group_keys(t for t in tracks if t.path in labels)
    folders: dict[str, list[str]] = {}
    for path, g in groups.items():
        if g.startswith("folder:"):
            folders.setdefault(g.removeprefix("folder:"), []).append(path)
    genre_keys = {canonical_key(name): name for name in labels.values()}
    named: set[str] = set()
    by_name: list[str] = []
    for folder, paths in folders.items():
        hits = {canonical_key(part) for part in PurePath(folder).parts} & genre_keys.keys()
        if hits:
            named.update(genre_keys[k] for k in hits)
            by_name.extend(paths)
    pure = [p for paths in folders.values() if len(paths) > 1 and len({labels[p] for p in paths}) == 1
            for p in paths]
    total = len(groups)
    reasons = []
    if by_name and len(by_name) > tolerance * total:
        reasons.append(f"{len(by_name)} of {total} labelled files are grouped by folders named after genres "
                       f"({', '.join(sorted(named))}): the folds separate genres, not artists")
    if pure and len(pure) > tolerance * total:
        reasons.append(f"{len(pure)} of {total} labelled files are grouped by folders that each hold one genre: "
                       "an artist's albums can land on both sides of a fold")
    return Leakage(bool(reasons), tuple(reasons), sum(map(len, folders.values())), total)


# ---- the vocabulary ---------------------------------------------------------------------------------

@dataclass
class _Seen:
    """Who wrote what: per source key, each spelling's files (first seen first); ID3 codes; joined values."""

    spellings: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    codes: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    splits: dict[str, tuple[tuple[str, ...], set[str]]] = field(default_factory=dict)

    def add(self, path: str, raw: str, aliases: Mapping[str, tuple[str, str]]) -> list[str]:
        """Record one raw value of one file; returns its source keys."""
        if canonical_key(raw) in aliases:  # an alias for the whole joined value ("Hip-Hop/Rap=Hip-Hop")
            pieces = [(tidy(raw), tidy(raw))]
        else:
            parts = split_values(raw)
            pieces = [(part, name) for part in parts for name in resolve_id3_numeric(part)]
            if len(parts) > 1:
                self.splits.setdefault(tidy(raw), (tuple(tidy(n) for _, n in pieces), set()))[1].add(path)
        keys = []
        for part, name in pieces:
            name, key = tidy(name), canonical_key(name)
            if not key:
                continue
            self.spellings.setdefault(key, {}).setdefault(name, set()).add(path)
            if part != name:
                self.codes.setdefault(key, {}).setdefault(part, set()).add(path)
            keys.append(key)
        return keys


def _by_files(spellings: Mapping[str, set[str]]) -> list[str]:
    """Spellings, most files first (ties: first seen)."""
    return sorted(spellings, key=lambda s: -len(spellings[s]))


def _reason(files: int, artists: int, total_files: int, total_artists: int, min_files: int,
            min_artists: int) -> str:
    """Why a genre is dropped, naming the files that count (those labelled with it alone)."""
    why = []
    if files < min_files:
        why.append(f"only {files} files (--min-files {min_files})" if files == total_files else
                   f"only {files} of its {total_files} files have no other kept genre (--min-files {min_files})")
    if artists < min_artists:
        why.append(f"only {artists} artists (--min-artists {min_artists})" if artists == total_artists else
                   f"only {artists} of its {total_artists} artists on files with no other kept genre "
                   f"(--min-artists {min_artists})")
    return "; ".join(why)


def build_vocabulary(tracks: Iterable[TrackTags], *, aliases: Mapping[str, str] | None = None,
                     min_files: int, min_artists: int,
                     parents: Mapping[str, str] | None = None) -> Vocabulary:
    """The vocabulary and labels a library's own genre tags give (the rules: this module's docstring).
    ``aliases``: {source: target} as ``parse_aliases`` reads ``--alias``; ``parents``: {genre: parent} as it
    reads ``--parent``: a genre dropped as too rare is read as its parent instead (and the parent as its own
    parent, if that is too rare too), as an alias that applies only then. ValueError for a bad one."""
    if min_files < 1 or min_artists < 1:
        raise ValueError("--min-files and --min-artists must be at least 1")
    aliases, parents = dict(aliases or {}), dict(parents or {})
    twice = {canonical_key(a) for a in aliases} & {canonical_key(p) for p in parents}
    if twice:
        raise ValueError(f"{', '.join(sorted(twice))}: given both --alias and --parent; keep one")
    resolve_aliases({**aliases, **parents})  # a cycle or a genre sent to two places fails before any work
    tracks = list(tracks)
    backed: dict[str, str] = {}
    while True:
        vocab = _vocabulary(tracks, {**aliases, **backed}, min_files, min_artists, {canonical_key(c) for c in backed})
        rare = {canonical_key(d.genre) for d in vocab.dropped if d.reason != NOT_A_GENRE}
        more = {c: p for c, p in parents.items() if c not in backed and canonical_key(c) in rare}
        if not more:
            return vocab
        backed.update(more)


def _vocabulary(tracks: list[TrackTags], aliases: Mapping[str, str], min_files: int, min_artists: int,
                backed: set[str]) -> Vocabulary:
    """``build_vocabulary`` for one set of aliases; the source keys in ``backed`` are parents' merges."""
    alias = resolve_aliases(aliases)
    groups = group_keys(tracks)
    seen = _Seen()
    ours, untagged = [], []
    file_keys: dict[str, set[str]] = {}
    for t in tracks:
        if written_by_us(t):
            ours.append(t.path)
            continue
        keys = {alias.get(k, (k, ""))[0] for raw in t.genres for k in seen.add(t.path, raw, alias)}
        if keys:
            file_keys[t.path] = keys
        else:
            untagged.append(t.path)

    def display(key: str) -> str:
        own = seen.spellings.get(key)
        return _by_files(own)[0] if own else next(name for to, name in alias.values() if to == key)

    holders: dict[str, set[str]] = {}
    for path, keys in file_keys.items():
        for key in keys:
            holders.setdefault(key, set()).add(path)

    def artists(paths: Iterable[str]) -> int:
        return len({groups[p] for p in paths})

    dropped: list[Dropped] = []

    def drop(key: str, reason: str) -> None:
        dropped.append(Dropped(display(key), len(holders[key]), artists(holders[key]), reason))

    kept = set()
    for key, paths in holders.items():  # not a genre, or too rare even counting every file
        n, a = len(paths), artists(paths)
        if key in NOT_GENRES:
            drop(key, NOT_A_GENRE)
        elif n < min_files or a < min_artists:
            drop(key, _reason(n, a, n, a, min_files, min_artists))
        else:
            kept.add(key)
    while True:  # rounds: the files a genre would label alone must reach the thresholds
        alone: dict[str, list[str]] = {key: [] for key in kept}
        for path, keys in file_keys.items():
            mine = keys & kept
            if len(mine) == 1:
                alone[next(iter(mine))].append(path)
        failing = {k: len(p) for k, p in alone.items() if len(p) < min_files or artists(p) < min_artists}
        if not failing:
            break
        weakest = min(failing.values())
        for key in sorted(k for k, n in failing.items() if n == weakest):
            paths = holders[key]
            drop(key, _reason(len(alone[key]), artists(alone[key]), len(paths), artists(paths), min_files,
                              min_artists))
            kept.discard(key)

    labels, ambiguous = {}, {}
    for path, keys in file_keys.items():
        several = sorted(keys & kept)
        if len(several) == 1:
            labels[path] = display(several[0])
        elif several:
            ambiguous[path] = tuple(display(k) for k in several)
    counts = [GenreCount(display(k), len(alone[k]), artists(alone[k]), len(holders[k]) - len(alone[k]))
              for k in kept]
    return Vocabulary(
        kept=sorted(counts, key=lambda g: (-g.files, g.name.casefold())),
        merged=_merges(seen, alias, display, backed),
        dropped=sorted(dropped, key=lambda d: (-d.files, d.genre.casefold())),
        labels=labels, ambiguous=ambiguous,
        splits=[Split(value, into, len(paths)) for value, (into, paths) in seen.splits.items()],
        ours=ours, untagged=untagged,
    )


def _merges(seen: _Seen, alias: Mapping[str, tuple[str, str]], display: Callable[[str], str],
            backed: set[str]) -> list[Merge]:
    """Every merge made, biggest first: spellings of one word, alias sources (parents' for ``backed`` keys), ID3
    codes."""
    out = []
    for key, spellings in seen.spellings.items():
        target = alias[key][0] if key in alias else key
        into = display(target)
        others = [s for s in _by_files(spellings) if key != target or s != into]
        if others:
            files = set().union(*(spellings[s] for s in others))
            how = "spelling" if key == target else "parent" if key in backed else "alias"
            out.append(Merge(into, tuple(others), len(files), how))
        codes = seen.codes.get(key, {})
        if codes:
            out.append(Merge(into, tuple(_by_files(codes)), len(set().union(*codes.values())), "id3"))
    return sorted(out, key=lambda m: -m.files)
