"""Export and statistics for a library database (or a folder of Ray Parquet shards).

Paths are exported as text; bytes of a name that is not valid UTF-8 appear as ``\\xNN`` escapes
(the database itself keeps the exact bytes, see db.py)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path

from .._io import save_figure, write_atomic
from .._names import printable_name
from ..errors import MusicGenreError, ParameterError
from .db import read_rows


def export(db: Path, fmt: str, output: Path | None) -> int:
    """Write every row as csv / json / parquet to ``output`` (stdout for csv/json); returns the count."""
    rows = [{**r, "path": printable_name(r["path"])} for r in read_rows(db)]
    if fmt == "parquet":
        if output is None:
            raise ParameterError("--format parquet needs --output PATH")
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise MusicGenreError("parquet export needs pyarrow (pip install 'musicgenre[distributed]')") from None
        table = pa.Table.from_pylist(
            [{**r, "scores": json.dumps(r["scores"]), "tags": json.dumps(r["tags"])} for r in rows]
        )
        tmp = output.with_name(f".{output.name}.tmp")
        pq.write_table(table, tmp)
        tmp.replace(output)
        return len(rows)
    if fmt == "json":
        text = json.dumps(rows, indent=2) + "\n"
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "label", "score", "second", "second_score", "third", "third_score", "duration",
                    "model", "model_version", "error", "scanned_at"])
        for r in rows:
            top = list((r["scores"] or {}).items())[:3] + [("", "")] * 3
            w.writerow([r["path"], r["label"] or "", r["score"] if r["score"] is not None else "",
                        top[1][0], top[1][1], top[2][0], top[2][1], r["duration"] or "", r["model"],
                        r["model_version"], r["error"] or "", r["scanned_at"]])
        text = buf.getvalue()
    else:
        raise ParameterError(f"unknown format {fmt!r}")
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
    return len(rows)


UNKNOWN_ROW = "(unknown)"  # the stats' row for calls of none of the model's genres (status "unknown")


def _counts(db: Path) -> tuple[Counter, int, float]:
    genres: Counter = Counter()
    failed, seconds = 0, 0.0
    for r in read_rows(db):
        if r["error"]:
            failed += 1
        else:
            genres[UNKNOWN_ROW if r.get("status") == "unknown" else r["label"]] += 1
            seconds += r["duration"] or 0.0
    return genres, failed, seconds


def stats_text(db: Path) -> str:
    genres, failed, seconds = _counts(db)
    total = sum(genres.values())
    lines = [f"{total} tracks classified ({seconds / 3600:.1f} h), {failed} failed"]
    width = max((len(g) for g in genres), default=5)
    for g, n in genres.most_common():
        lines.append(f"  {g:<{width}}  {n:6d}  {n / total:6.1%}  {'#' * round(40 * n / total)}")
    return "\n".join(lines) + "\n"


def genre_chart(db: Path, png: Path) -> None:
    """Horizontal bar chart of the genre distribution (drawn on a bare Figure: no global backend)."""
    from matplotlib.figure import Figure

    genres, failed, _ = _counts(db)
    items = genres.most_common()[::-1]
    fig = Figure(figsize=(7, 0.4 * len(items) + 1.5), dpi=100)
    ax = fig.subplots()
    ax.barh([g for g, _ in items], [n for _, n in items], color="#e8590c")
    for i, (_, n) in enumerate(items):
        ax.text(n, i, f" {n}", va="center")
    ax.set_xlabel("tracks")
    ax.set_title(f"Genre distribution: {sum(genres.values())} tracks" + (f", {failed} failed" if failed else ""))
    fig.tight_layout()
    save_figure(fig, png)
