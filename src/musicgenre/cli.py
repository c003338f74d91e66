"""Command-line interface: ``musicgenre <command>``. ``main(argv)`` is callable in-process.

Exit codes: 0 ok, 1 some inputs failed, 2 usage error. User errors print one line, no traceback.
Heavy libraries (torch, soundfile) load only inside the commands that need them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .errors import MusicGenreError, ParameterError

log = logging.getLogger("musicgenre")


def _err(msg: str) -> None:
    print(f"musicgenre: error: {msg}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    """`musicgenre predict`: classify files and folders, print or write the results."""
    from ._io import write_atomic
    from .audio import find_audio_files
    from .output import render
    from .pipeline import load, predict_many
    from .runtime import threads_per_worker

    if args.top_k < 1:
        raise ParameterError("--top-k must be at least 1")
    if not args.max_minutes > 0:
        raise ParameterError("--max-minutes must be a positive number")
    errors: list[str] = []
    files = list(find_audio_files(args.inputs, errors=errors))
    for e in errors:
        _err(e)
    if not files:
        _err("nothing to classify: no audio files in the given paths")
        return 1
    clf = load(args.model, device=args.device, backend=args.backend, min_confidence=args.min_confidence,
               unknown=not args.no_unknown,
               threads=threads_per_worker(min(args.workers, len(files))))
    fmt = dict(top_k=args.top_k, segments=args.segments)
    stream = args.output is None and args.format in ("table", "jsonl")  # print each result as it comes
    bar = None
    if not args.quiet and sys.stderr.isatty() and len(files) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", file=sys.stderr)
    preds = []
    failed = len(errors)
    for result in predict_many(clf, [str(f) for f in files], workers=args.workers, on_error="return",
                                  max_seconds=args.max_minutes * 60):
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
    """`musicgenre models`: shipped models and the trainable architectures (no torch needed)."""
    import importlib.util

    from .modeldir import DEFAULT_MODEL, list_shipped
    from .models import declared_architectures

    print("Pretrained models (use with --model NAME):")
    for name, card in list_shipped().items():
        mark = " (default)" if name == DEFAULT_MODEL else ""
        print(f"  {name}{mark}: {len(card.labels)} genres: {', '.join(card.labels)}")
        print(f"      {card.description}")
    print("\nArchitectures (for `musicgenre train ARCHITECTURE DATA`):")
    for arch in declared_architectures().values():  # read from the registry's source: no torch import
        if not arch.trainable:
            continue
        missing = [m for m in arch.requires if importlib.util.find_spec(m) is None]
        needs = f"needs {', '.join(arch.requires)}"
        note = f"{needs}; missing {', '.join(missing)}: pip install 'musicgenre[{arch.extra}]'" if missing else needs
        print(f"  {arch.name}: {arch.description} ({note})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`musicgenre serve`: the web page and the JSON API."""
    from .pipeline import load
    from .web.analyzer import Limits, check_port_free
    from .web.connections import ConnectionLimits
    from .web.server import serve

    check_port_free(args.host, args.port)  # before the model loads: fail fast
    library = None
    if args.db is not None:
        from .learn.review import is_learned
        from .web.library_view import LibraryConfig

        learned = Path(args.model) if args.model and is_learned(Path(args.model)) else None
        library = LibraryConfig(db=args.db, model=learned, allow_writes=args.allow_writes)
    elif args.allow_writes:
        raise ParameterError("--allow-writes needs --db (the library whose files the page may write)")
    clf = load(args.model, device=args.device, backend=args.backend)
    limits = Limits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_minutes * 60, workers=args.concurrency,
                    queue=args.queue, timeout_s=args.timeout)
    connections = ConnectionLimits(max_connections=args.max_connections, header_timeout_s=args.header_timeout,
                                   body_timeout_s=args.body_timeout, min_body_bytes_per_s=args.min_upload_kbps * 1000)
    serve(clf, host=args.host, port=args.port, limits=limits, connections=connections, library=library)
    return 0


def cmd_library_undo(args: argparse.Namespace) -> int:
    """`musicgenre library undo`: revert the latest genre the Library view wrote (file and database)."""
    from ._names import printable_name
    from .library.undo import edits, undo

    if args.list:
        for e in edits(args.db, limit=args.list):
            state = f"undone {e.undone_at}" if e.undone_at else "in place"
            print(f"{e.id}\t{e.written_at}\t{printable_name(e.path)}\t{'; '.join(e.old_genres) or '-'} -> "
                  f"{'; '.join(e.new_genres)}\t{state}")
        return 0
    e = undo(args.db, edit_id=args.id)
    print(f"{printable_name(e.path)}: genre {'; '.join(e.new_genres)!r} -> {'; '.join(e.old_genres) or 'none'!r} "
          f"(undid write {e.id})")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    """`musicgenre scan`: classify a library into SQLite (incremental; optional tag writing)."""
    from .audio import find_audio_files
    from .library.scan import scan
    from .library.tags import TagWriter
    from .pipeline import load
    from .runtime import threads_per_worker

    errors: list[str] = []
    files = list(find_audio_files(args.dirs, errors=errors))
    for e in errors:
        _err(e)
    tagger = None
    if args.write_tags or args.dry_run:
        tagger = TagWriter(dry_run=args.dry_run, overwrite=args.overwrite_genre,
                           report=lambda m: print(m, file=sys.stderr), min_confidence=args.min_confidence,
                           count=args.genre_count, separator=args.genre_separator, unknown=not args.no_unknown)
    if args.engine == "ray":
        from .library.ray_engine import scan_ray

        summary = scan_ray(files, args.db, args.model, address=args.address, shards=args.shards,
                           device=args.device, tagger=tagger, quiet=args.quiet)
    else:
        clf = load(args.model, device=args.device, backend=args.backend,
                   threads=threads_per_worker(min(args.workers, len(files))))
        summary = scan(files, args.db, clf, workers=args.workers, tagger=tagger,
                       progress=sys.stderr.isatty() and not args.quiet)
    print(f"{args.db}: {summary.line()}", file=sys.stderr)
    return 1 if summary.failed or errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    """`musicgenre export`: a library database as CSV, JSON or Parquet."""
    from .library.export import export

    n = export(args.db, args.format, args.output)
    if args.output:
        print(f"wrote {n} rows to {args.output}", file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """`musicgenre stats`: the genre distribution of a library database."""
    from .library.export import genre_chart, stats_text

    print(stats_text(args.db), end="")
    if args.chart:
        genre_chart(args.db, args.chart)
        print(f"chart: {args.chart}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """`musicgenre train`: an architecture on a dataset, or the shipped model from a recipe."""
    import json

    if args.recipe is not None:
        if args.architecture or args.data:
            raise ParameterError("give either --recipe or ARCHITECTURE DATA, not both")
        from dataclasses import replace

        from .train.recipe import Recipe, build

        recipe = Recipe.load(args.recipe)
        if args.source != "all":  # one source only: the first half of a cross-source test
            recipe = replace(recipe, name=f"{recipe.name}-{args.source}-only",
                             **({"emotify": ""} if args.source == "gtzan" else {"gtzan": ()}))
        config = build(recipe, args.output, recipe_file=str(args.recipe))
        print(json.dumps({"model": str(args.output), "temperature": config["temperature"],
                          "valid": config["metrics"]["valid"]}, indent=2))
        return 0
    if not (args.architecture and args.data):
        raise ParameterError("train needs ARCHITECTURE DATA, or --recipe FILE")
    from dataclasses import fields

    from .train.loop import TrainConfig, train

    try:
        model_args = json.loads(args.model_args) if args.model_args else {}
    except json.JSONDecodeError as e:
        raise ParameterError(f"--model-args is not valid JSON: {e}") from None
    # every TrainConfig field is the flag of the same name, except the negated switches and parsed values
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name in vars(args)}
    cfg = TrainConfig(**{**given, "out": str(args.output), "model_args": model_args, "augment": not args.no_augment,
                         "spec_augment": not args.no_spec_augment, "amp": not args.no_amp})
    result = train(cfg, progress=not args.quiet, say=lambda line: print(line, file=sys.stderr))
    print(json.dumps(result, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`musicgenre evaluate`: a model on a dataset split or a recipe's corpus."""
    from .train.evaluate import evaluate, recipe_examples

    if (args.data is None) == (args.recipe is None):
        raise ParameterError("evaluate needs --data DATA or --recipe FILE (the recipe's artist-disjoint corpus)")
    if args.recipe is not None:
        examples, labels, name = recipe_examples(args.recipe, args.subset, args.source)
    else:
        from .data import load_dataset

        ds = load_dataset(args.data, kind=args.dataset_kind, split=args.split, seed=args.seed)
        examples = ds.examples if args.subset == "all" else ds.split(args.subset)
        labels, name = ds.labels, ds.name
    if not examples:
        raise ParameterError(f"{args.data or args.recipe}: the {args.subset} split is empty")
    rep = evaluate(args.model, examples, labels, args.output, device=args.device, backend=args.backend,
                   workers=args.workers,
                   progress=sys.stderr.isatty() and not args.quiet)
    ci = rep["ci95"]
    print(f"{rep['model']} on {name} ({args.subset}, n={rep['clips']} clips): accuracy {rep['accuracy']:.3f} "
          f"[{ci['accuracy'][0]:.3f}, {ci['accuracy'][1]:.3f}], macro-F1 {rep['macro_f1']:.3f} "
          f"[{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}], ECE {rep['ece']:.3f} "
          f"[{ci['ece'][0]:.3f}, {ci['ece'][1]:.3f}] (a perfectly calibrated model: "
          f"{rep['ece_if_calibrated'][0]:.3f} at this n), window accuracy {rep['window_accuracy']:.3f} "
          f"(95% bootstrap intervals over {rep['ci_resampling']})")
    for label, m in rep["per_class"].items():
        if m["support"]:
            print(f"  {label:<14} precision {m['precision']:.3f}  recall {m['recall']:.3f}  f1 {m['f1']:.3f}  "
                  f"n={m['support']}")
    print(f"by input length (confident: top score >= {rep['lengths']['min_confidence']:.2f}):")
    for key, row in rep["lengths"].items():
        if isinstance(row, dict) and row.get("n"):
            what = "whole clips" if key == "whole" else f"{key} window{'s' if key != '1' else ''}"
            sure = "-" if row["confident_accuracy"] is None else f"{row['confident_accuracy']:.3f}"
            print(f"  {what:<18} n={row['n']:<5} top-1 {row['accuracy']:.3f}  ECE {row['ece']:.3f} "
                  f"(floor {row['ece_if_calibrated'][0]:.3f})  confident {row['confident_share']:.0%}, right {sure}")
    for f in rep["failed"]:
        _err(f)
    print(f"report: {args.output / 'report.json'}, confusion matrix: {args.output / 'confusion_matrix.png'}, "
          f"reliability diagram: {args.output / 'reliability.png'}", file=sys.stderr)
    return 1 if rep["failed"] else 0


def cmd_explain(args: argparse.Namespace) -> int:
    """`musicgenre explain`: a saliency map (and filter activations) for one file."""
    from .train.explain import explain

    out = args.output or Path(Path(args.file).stem + "_saliency.png")
    result = explain(args.model, args.file, out, filters=args.filters, device=args.device,
                     max_seconds=args.max_seconds)
    print(f"{args.file}: {result['label']} ({result['score']:.0%}); saliency map: {result['saliency']}")
    for p in result.get("filters", []):
        print(f"  filter activations: {p}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    """`musicgenre ensemble`: write an ensemble directory over trained models."""
    from .ensemble import create_ensemble

    card = create_ensemble(args.models, args.output)
    print(f"{args.output}: ensemble of {len(card.members)} models ({', '.join(card.labels)})")
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    """`musicgenre learn`: a genre model from the genre tags of a scanned library (no torch)."""
    from functools import partial

    from ._names import printable_name
    from .learn.options import LearnOptions, check_installed
    from .learn.report import summary_lines
    from .learn.run import learn
    from .library.learning import read_stored

    def say(line: str) -> None:
        if not args.quiet:
            print(f"learn: {line}", file=sys.stderr)

    check_installed()
    options = LearnOptions.from_flags(args, db=args.db, out=args.output, report=args.report)
    done = learn(options, read=partial(read_stored, options.db), say=say)
    for w in done.warnings:
        print(f"musicgenre: warning: {w}", file=sys.stderr)
    print("\n".join(summary_lines(done.report, printable_name(done.out), report=args.report)))
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    """`musicgenre similar`: the library files nearest FILE in the backbone's embedding space (cosine)."""
    import json

    from ._names import printable_name
    from .library.similar import similar

    found = similar(args.db, args.file, k=args.k, model=args.model, device=args.device, backend=args.backend)
    db = printable_name(args.db)
    for backbone, n in found.index.other_backbones.items():
        print(f"musicgenre: warning: {n} files of {db} have embeddings of another backbone ({backbone}) and are not "
              f"searched; rescan them: `musicgenre scan --db {db} DIR`", file=sys.stderr)
    if not found.neighbours:
        print(f"musicgenre: {db}: no other file in the library", file=sys.stderr)
        return 0
    if args.format == "jsonl":
        print("".join(json.dumps(n.as_dict()) + "\n" for n in found.neighbours), end="")
        return 0
    paths = [printable_name(n.path) for n in found.neighbours]
    width = max(len("path"), *map(len, paths))
    lines = [f"{'rank':>4}  {'similarity':>10}  {'path':<{width}}  genres"]
    lines += [f"{n.rank:>4}  {n.similarity:>10.4f}  {path:<{width}}  {'; '.join(n.genres) or '-'}"
              for n, path in zip(found.neighbours, paths)]
    print("\n".join(line.rstrip() for line in lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `musicgenre` argument parser (shared flags come from parent parsers)."""
    from .audio import DEFAULT_MAX_MINUTES
    from .learn import options as learn_options
    from .output import FORMATS
    from .prediction import DEFAULT_MIN_CONFIDENCE

    # the flags every model-running command shares, defined once
    model_flags = argparse.ArgumentParser(add_help=False)
    model_flags.add_argument("-m", "--model", default=None,
                             help="shipped model name or model directory (default musicnn-gtzan)")
    model_flags.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                             help="where the model runs (default auto: CUDA if available)")
    backend_flag = argparse.ArgumentParser(add_help=False)
    backend_flag.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                              help="auto: ONNX Runtime for models that ship an ONNX file on the CPU, torch otherwise")
    batch_flags = argparse.ArgumentParser(add_help=False)
    batch_flags.add_argument("--workers", type=int, default=2,
                             help="files processed at once; each worker decodes a file and runs the model (default 2)")
    batch_flags.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = argparse.ArgumentParser(prog="musicgenre", description="Recognise the genre of music recordings.")
    p.add_argument("--version", action="version", version=f"musicgenre {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more detail to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pr = sub.add_parser("predict", help="classify audio files or folders",
                        parents=[model_flags, backend_flag, batch_flags],
                        description="Print the top genres of each audio file (folders are walked recursively).")
    pr.add_argument("inputs", nargs="+", metavar="FILE|DIR")
    pr.add_argument("-k", "--top-k", type=int, default=5, help="genres to show per file (default 5)")
    pr.add_argument("-f", "--format", choices=FORMATS, default="table", help="output format (default table)")
    pr.add_argument("-o", "--output", type=Path, help="write results to this file instead of stdout")
    pr.add_argument("--segments", action="store_true", help="include per-window scores in json/jsonl output")
    pr.add_argument("--max-minutes", type=float, default=DEFAULT_MAX_MINUTES,
                    help=f"analyse at most this many minutes of each file; longer files are truncated and "
                    f"say so (default {DEFAULT_MAX_MINUTES:g})")
    pr.add_argument("--min-confidence", type=float, default=None, metavar="P",
                    help=f"a top score below P marks a result 'uncertain' (default {DEFAULT_MIN_CONFIDENCE:g})")
    pr.add_argument("--no-unknown", action="store_true",
                    help="never call a result 'unknown' (none of the model's genres): always its nearest genre")
    pr.set_defaults(func=cmd_predict)

    sv = sub.add_parser("serve", help="start the web app (upload or record a song; JSON API)",
                        parents=[model_flags, backend_flag],
                        description="Serve the web app and POST /api/classify on HOST:PORT (local only by default).")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    sv.add_argument("--max-upload-mb", type=float, default=100.0, help="largest accepted upload (default 100)")
    sv.add_argument("--max-minutes", type=float, default=20.0,
                    help="analyse at most this many minutes of a track (default 20)")
    sv.add_argument("--concurrency", type=int, default=1, help="analyses run at once (default 1)")
    sv.add_argument("--queue", type=int, default=8,
                    help="analyses that may wait; more get HTTP 503 with Retry-After (default 8)")
    sv.add_argument("--timeout", type=float, default=300.0,
                    help="seconds per request, waiting included; then HTTP 504 (default 300)")
    sv.add_argument("--max-connections", type=int, default=200,
                    help="open connections at most; over it the oldest idle one is closed, or, if all are busy, "
                    "the new one gets HTTP 503 (default 200)")
    sv.add_argument("--header-timeout", type=float, default=10.0,
                    help="seconds a connection may take to send a request's headers; then it is closed (default 10)")
    sv.add_argument("--body-timeout", type=float, default=30.0,
                    help="an upload may pause at most this many seconds, and after that grace must average "
                    "--min-upload-kbps; else HTTP 408 (default 30)")
    sv.add_argument("--min-upload-kbps", type=float, default=10.0,
                    help="slowest accepted average upload rate, KB/s (default 10)")
    sv.add_argument("--db", type=Path, default=None,
                    help="library database written by `musicgenre scan`: adds the Library view (/library) with its "
                    "genres, likely mis-tags (with -m a model directory from `musicgenre learn`), similar tracks "
                    "and map")
    sv.add_argument("--allow-writes", action="store_true",
                    help="let the Library view write genres into your files (each write is logged: "
                    "`musicgenre library undo` reverts it); read-only without it")
    sv.set_defaults(func=cmd_serve)

    lb = sub.add_parser("library", help="the Library view's writes: undo them, list them",
                        description="Revert a genre the Library view (`serve --db ... --allow-writes`) wrote: the "
                        "file's tags and the database go back together.")
    lb_sub = lb.add_subparsers(dest="library_command", required=True, metavar="ACTION")
    un = lb_sub.add_parser("undo", help="revert the latest genre write (or --id N)")
    un.add_argument("--db", type=Path, required=True, help="library database written by `musicgenre scan`")
    un.add_argument("--id", type=int, default=None, help="the write to revert (default: the latest not undone)")
    un.add_argument("--list", type=int, nargs="?", const=20, default=None, metavar="N",
                    help="list the latest N writes (default 20) instead of undoing")
    un.set_defaults(func=cmd_library_undo)

    sc = sub.add_parser("scan", help="classify a music library into SQLite (incremental, resumable)",
                        parents=[model_flags, backend_flag, batch_flags],
                        description="Walk folders, classify every audio file once, keep results in SQLite. "
                        "Re-runs skip unchanged files; an interrupted scan resumes where it stopped.")
    sc.add_argument("dirs", nargs="+", metavar="DIR|FILE")
    sc.add_argument("--db", type=Path, required=True, help="SQLite database (created if missing)")
    sc.add_argument("--write-tags", action="store_true", help="write GENRE + MUSICGENRE_CONFIDENCE into the files")
    sc.add_argument("--dry-run", action="store_true", help="show which tags would change; write nothing to files")
    sc.add_argument("--overwrite-genre", action="store_true", help="replace a GENRE tag the file already has")
    sc.add_argument("--min-confidence", type=float, default=None, metavar="P",
                    help=f"write tags only where the top genre's probability reaches P (default "
                    f"{DEFAULT_MIN_CONFIDENCE:g}); "
                    "uncertain files keep their tags and are listed")
    sc.add_argument("--no-unknown", action="store_true",
                    help="with --write-tags: also write calls of none of the model's genres (status 'unknown', "
                    "kept in the database as such) under their nearest genre")
    sc.add_argument("--genre-count", type=int, default=1, metavar="N",
                    help="write up to N genres (runner-ups need a probability of at least 0.25; default 1)")
    sc.add_argument("--genre-separator", default=None, metavar="SEP",
                    help="join several genres into one value with SEP (e.g. '; ') for old players; "
                    "default: one native value per genre")
    sc.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local threads, or a Ray Data job (pip install '.[distributed]'); with -q, "
                    "nothing of Ray's own output")
    sc.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    sc.add_argument("--shards", type=Path, default=None,
                    help="Ray: folder for the Parquet shards (default: DB path + '.shards')")
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

    tr = sub.add_parser("train", help="train a genre model on a labelled dataset",
                        description="Train ARCHITECTURE on DATA, or rebuild a model from a recipe "
                        "(--recipe recipes/musicnn-genre.toml rebuilds the shipped model); the output directory "
                        "is a model usable with --model everywhere. A recipe with a [backbone] section "
                        "(train = \"distill\") first distils a student backbone (resumable; docs/training.md) and "
                        "writes the student and its validation run. Multi-GPU/multi-node: run under torchrun (DDP).")
    tr.add_argument("architecture", nargs="?", help="see `musicgenre models`")
    tr.add_argument("data", nargs="?", help="GTZAN root, FMA root, folder per label, CSV manifest, or HF dataset")
    tr.add_argument("--recipe", type=Path, help="TOML recipe (recipes/); replaces ARCHITECTURE DATA")
    tr.add_argument("--source", choices=("gtzan", "emotify", "all"), default="all",
                    help="with --recipe: train on this source's clips only (for cross-source tests; default all)")
    tr.add_argument("-o", "--output", type=Path, required=True, help="model directory to write")
    _dataset_flags(tr)
    tr.add_argument("--model-args", help='JSON constructor arguments, e.g. \'{"width": 32}\'')
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--optimizer", choices=("adam", "adamw", "rmsprop"), default="adamw")
    tr.add_argument("--weight-decay", type=float, default=1e-4)
    tr.add_argument("--schedule", choices=("cosine", "plateau", "none"), default="cosine",
                    help="warm-up + cosine (per step) or reduce-on-plateau (per epoch)")
    tr.add_argument("--warmup-epochs", type=int, default=1)
    tr.add_argument("--patience", type=int, default=8, help="early stopping on valid macro-F1 (0: off)")
    tr.add_argument("--accumulate", type=int, default=1, help="gradient accumulation steps")
    tr.add_argument("--window-seconds", "--segment-seconds", dest="window_seconds", type=float,
                    help="analysis window of waveform architectures, in training and inference (default per "
                    "architecture)")
    tr.add_argument("--no-augment", action="store_true", help="no waveform augmentation (shift, gain, noise)")
    tr.add_argument("--no-spec-augment", action="store_true", help="no SpecAugment masks")
    tr.add_argument("--freeze-encoder", action="store_true", help="train only the classifier head")
    tr.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    tr.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    tr.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    tr.add_argument("--workers", type=int, default=0, help="data-loader processes")
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class report, calibration, confusion matrix",
                        parents=[model_flags, backend_flag, batch_flags],
                        description="Evaluate a model on a dataset split through the same inference path as "
                        "predict (clip-level aggregation of windows): per-class precision/recall, macro-F1, "
                        "ECE, n and bootstrap 95% intervals (over artist groups when the data has them), "
                        "confusion-matrix and reliability-diagram PNGs; and per input length (every clip cut "
                        "into 1-, 3- and 10-window pieces, each classified on its own, and whole clips): top-1, "
                        "ECE with its small-sample floor, share and accuracy of the confident calls.")
    ev.add_argument("--data", help="a dataset (see train); or use --recipe")
    ev.add_argument("--recipe", type=Path,
                    help="evaluate on the recipe's corpus (GTZAN fault-filtered + Emotify by artist)")
    ev.add_argument("--source", choices=("gtzan", "emotify", "all"), default="all",
                    help="with --recipe: which source's clips (default all)")
    _dataset_flags(ev)
    ev.add_argument("--subset", choices=("test", "valid", "train", "all"), default="test")
    ev.add_argument("-o", "--output", type=Path, default=Path("evaluation"), help="report folder")
    ev.set_defaults(func=cmd_evaluate)

    xp = sub.add_parser("explain", help="saliency map: what drove the decision", parents=[model_flags],
                        description="Save a saliency map over the spectrogram (gradient of the top genre).")
    xp.add_argument("file")
    xp.add_argument("-o", "--output", type=Path, help="PNG path (default <file>_saliency.png)")
    xp.add_argument("--filters", action="store_true", help="also save first/last conv layer activations")
    xp.add_argument("--max-seconds", type=float, default=30.0, help="analyse this much of the start (default 30)")
    xp.set_defaults(func=cmd_explain)

    en = sub.add_parser("ensemble", help="combine saved models (mean of probabilities)")
    en.add_argument("models", nargs="+", type=Path, metavar="MODEL_DIR")
    en.add_argument("-o", "--output", type=Path, required=True)
    en.set_defaults(func=cmd_ensemble)

    le = sub.add_parser("learn", help="train a genre model from the genre tags of a scanned library",
                        description="Train a genre model on the features `scan` stored and the genre tags your "
                        "files carry: one vocabulary (spellings merged, --alias merges meanings; genres our own "
                        "tag writer put there never count), rare genres dropped, validated out of fold in folds "
                        "grouped by artist, calibrated, written as a model directory for -m everywhere "
                        "(docs/learn.md). No torch needed: pip install 'musicgenre[learn]'.")
    le.add_argument("--db", type=Path, required=True, help="library database written by `musicgenre scan`")
    le.add_argument("-o", "--output", "--out", type=Path, required=True, help="model directory to write")
    le.add_argument("--report", type=Path, help="also write the report (genres, merged, dropped, validation, "
                    "suspects, left_out, to_tag) as JSON here")
    learn_options.add_arguments(le)
    le.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    le.set_defaults(func=cmd_learn)

    sm = sub.add_parser("similar", help="the library files most like a track (embedding space, cosine)",
                        parents=[model_flags, backend_flag],
                        description="List the K files of a scanned library nearest FILE in the backbone's embedding "
                        "space (cosine of the mean embeddings `scan` stored), with their own genre tags. FILE may be "
                        "outside the library: it is embedded on the fly by the model the library was scanned with "
                        "(or -m); FILE itself is never listed (docs/library.md).")
    sm.add_argument("file", metavar="FILE", help="an audio file, in the library or not")
    sm.add_argument("--db", type=Path, required=True, help="library database written by `musicgenre scan`")
    sm.add_argument("-k", "--top-k", dest="k", type=int, default=10, help="files to list (default 10)")
    sm.add_argument("-f", "--format", choices=("table", "jsonl"), default="table",
                    help="a table, or one JSON object per line: rank, path, similarity, genres, artist (default table)")
    sm.set_defaults(func=cmd_similar)

    md = sub.add_parser("models", help="list shipped models and trainable architectures")
    md.set_defaults(func=cmd_models)
    return p


def _dataset_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset-kind", choices=("auto", "gtzan", "fma", "folder", "manifest", "hf"), default="auto")
    p.add_argument("--split", choices=("random", "fault-filtered"), default="random",
                   help="GTZAN split: seeded stratified 80/10/10, or the artist-filtered lists")
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors print one line, no traceback)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    for stream in (sys.stdout, sys.stderr):  # any file name prints, even on a C/ASCII locale
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        return int(args.func(args))
    except ParameterError as e:
        _err(str(e))
        return 2
    except MusicGenreError as e:
        _err(str(e))
        return 1
    except BrokenPipeError:  # `musicgenre predict ... | head`: the reader left; stop quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the signal
    except OSError as e:  # e.g. an --output folder that does not exist or is not writable
        _err(f"{e.filename or ''}: {e.strerror or e}" if e.filename else str(e))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except ModuleNotFoundError as e:  # an optional dependency of this command is not installed
        extra = _EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        _err(f"this command needs {e.name}, which is not installed: pip install 'musicgenre[{extra}]'")
        return 2


# optional dependencies -> the extra that brings them (pyproject.toml)
_EXTRAS = {"torch": "train", "safetensors": "train", "matplotlib": "plots", "gradio": "web",
           "fastapi": "web", "uvicorn": "web", "psutil": "web", "ray": "distributed", "pyarrow": "distributed",
           "transformers": "hf", "datasets": "hf"}


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
