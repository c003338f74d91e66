"""Command-line interface: ``musicgenre <command>``. ``main(argv)`` is callable in-process.

Exit codes: 0 ok, 1 some inputs failed, 2 usage error. User errors print one line, no traceback.
Heavy libraries (torch, soundfile) load only inside the commands that need them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from . import __version__
from .errors import MusicGenreError, ParameterError

log = logging.getLogger("musicgenre")


def _err(msg: str) -> None:
    print(f"musicgenre: error: {msg}", file=sys.stderr)


def iter_audio_files(paths: list[str], errors: list[str]) -> Iterator[Path]:
    """Files as given; directories walked recursively (sorted) for audio extensions.
    Paths that do not exist are reported in ``errors`` and skipped."""
    from .audio import AUDIO_EXTENSIONS

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                log.warning("%s: no audio files found", p)
            yield from found
        elif p.exists():
            yield p
        else:
            errors.append(f"{p}: file not found")


def cmd_predict(args: argparse.Namespace) -> int:
    from .output import render, write_atomic
    from .pipeline import Classifier

    if args.top_k < 1:
        raise ParameterError("--top-k must be at least 1")
    errors: list[str] = []
    files = list(iter_audio_files(args.inputs, errors))
    for e in errors:
        _err(e)
    clf = Classifier.from_pretrained(args.model, device=args.device)
    fmt = dict(top_k=args.top_k, segments=args.segments)
    stream = args.output is None and args.format in ("table", "jsonl")  # print each result as it comes
    bar = None
    if not args.quiet and sys.stderr.isatty() and len(files) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", file=sys.stderr)
    preds = []
    failed = len(errors)
    for result in clf.predict_many((str(f) for f in files), workers=args.workers, on_error="return"):
        if isinstance(result, MusicGenreError):
            failed += 1
            (bar.write if bar else _err)(f"musicgenre: error: {result}" if bar else str(result))
        elif stream:
            text = render([result], args.format, **fmt)
            bar.write(text.rstrip("\n")) if bar else print(text, end="", flush=True)
        else:
            preds.append(result)
        if bar:
            bar.update()
    if bar:
        bar.close()
    if not stream:
        text = render(preds, args.format, **fmt)
        if args.output is None:
            print(text, end="")
        else:
            write_atomic(args.output, text)
    if failed:
        _err(f"{failed} of {len(files) + len(errors)} inputs failed")
    return 1 if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models.registry import DEFAULT_MODEL, list_architectures, list_pretrained

    print("Pretrained models (use with --model NAME):")
    for name, cfg in list_pretrained().items():
        mark = " (default)" if name == DEFAULT_MODEL else ""
        print(f"  {name}{mark}: {len(cfg['labels'])} genres: {', '.join(cfg['labels'])}")
        print(f"      {cfg.get('description', '')}")
    print("\nArchitectures (for `musicgenre train`):")
    for name, doc in list_architectures().items():
        print(f"  {name}: {doc}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .pipeline import Classifier
    from .web import Limits, check_port_free, serve

    check_port_free(args.host, args.port)  # before the model loads: fail fast
    clf = Classifier.from_pretrained(args.model, device=args.device)
    serve(clf, host=args.host, port=args.port, limits=Limits(args.max_upload_mb, args.max_minutes * 60))
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from .file_tags import TagWriter
    from .library import scan
    from .pipeline import Classifier

    errors: list[str] = []
    files = list(iter_audio_files(args.dirs, errors))
    for e in errors:
        _err(e)
    tagger = None
    if args.write_tags or args.dry_run:
        tagger = TagWriter(dry_run=args.dry_run, overwrite=args.overwrite_genre,
                           report=lambda m: print(m, file=sys.stderr))
    if args.engine == "ray":
        from .distributed import scan_ray

        summary = scan_ray(files, args.db, args.model, address=args.address, shards=args.shards,
                           device=args.device, tagger=tagger)
    else:
        clf = Classifier.from_pretrained(args.model, device=args.device)
        summary = scan(files, args.db, clf, workers=args.workers, tagger=tagger,
                       progress=sys.stderr.isatty() and not args.quiet)
    print(f"{args.db}: {summary.line()}", file=sys.stderr)
    return 1 if summary.failed or errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    from .library_export import export

    n = export(args.db, args.format, args.output)
    if args.output:
        print(f"wrote {n} rows to {args.output}", file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .library_export import genre_chart, stats_text

    print(stats_text(args.db), end="")
    if args.chart:
        genre_chart(args.db, args.chart)
        print(f"chart: {args.chart}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .output import FORMATS

    p = argparse.ArgumentParser(prog="musicgenre", description="Recognise the genre of music recordings.")
    p.add_argument("--version", action="version", version=f"musicgenre {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more detail to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pr = sub.add_parser("predict", help="classify audio files or folders",
                        description="Print the top genres of each audio file (folders are walked recursively).")
    pr.add_argument("inputs", nargs="+", metavar="FILE|DIR")
    pr.add_argument("-k", "--top-k", type=int, default=5, help="genres to show per file (default 5)")
    pr.add_argument("-f", "--format", choices=FORMATS, default="table", help="output format (default table)")
    pr.add_argument("-o", "--output", type=Path, help="write results to this file instead of stdout")
    pr.add_argument("-m", "--model", default=None, help="shipped model name or model directory (default musicnn-gtzan)")
    pr.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs")
    pr.add_argument("--segments", action="store_true", help="include per-window scores in json/jsonl output")
    pr.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=cmd_predict)

    sv = sub.add_parser("serve", help="start the web app (upload or record a song; JSON API)",
                        description="Serve the web app and POST /api/classify on HOST:PORT (local only by default).")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    sv.add_argument("-m", "--model", default=None, help="shipped model name or model directory")
    sv.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs")
    sv.add_argument("--max-upload-mb", type=float, default=100.0, help="largest accepted upload (default 100)")
    sv.add_argument("--max-minutes", type=float, default=20.0,
                    help="analyse at most this many minutes of a track (default 20)")
    sv.set_defaults(func=cmd_serve)

    sc = sub.add_parser("scan", help="classify a music library into SQLite (incremental, resumable)",
                        description="Walk folders, classify every audio file once, keep results in SQLite. "
                        "Re-runs skip unchanged files; an interrupted scan resumes where it stopped.")
    sc.add_argument("dirs", nargs="+", metavar="DIR|FILE")
    sc.add_argument("--db", type=Path, required=True, help="SQLite database (created if missing)")
    sc.add_argument("-m", "--model", default=None, help="shipped model name or model directory")
    sc.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    sc.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    sc.add_argument("--write-tags", action="store_true", help="write GENRE + MUSICGENRE_CONFIDENCE into the files")
    sc.add_argument("--dry-run", action="store_true", help="show which tags would change; write nothing to files")
    sc.add_argument("--overwrite-genre", action="store_true", help="replace a GENRE tag the file already has")
    sc.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local threads, or a Ray Data job (pip install '.[distributed]')")
    sc.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    sc.add_argument("--shards", type=Path, default=None,
                    help="Ray: folder for the Parquet shards (default: DB path + '.shards')")
    sc.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sc.set_defaults(func=cmd_scan)

    ex = sub.add_parser("export", help="export a library database as csv, json or parquet")
    ex.add_argument("--db", type=Path, required=True)
    ex.add_argument("-f", "--format", choices=("csv", "json", "parquet"), default="csv")
    ex.add_argument("-o", "--output", type=Path, help="output file (default stdout; required for parquet)")
    ex.set_defaults(func=cmd_export)

    st = sub.add_parser("stats", help="genre distribution of a library database")
    st.add_argument("--db", type=Path, required=True)
    st.add_argument("--chart", type=Path, help="also save a bar chart PNG here")
    st.set_defaults(func=cmd_stats)

    md = sub.add_parser("models", help="list shipped models and trainable architectures")
    md.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args))
    except ParameterError as e:
        _err(str(e))
        return 2
    except MusicGenreError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
