"""Rendering predictions for the terminal and for files: table, json, jsonl, csv."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from ._names import printable_name
from .genres import descriptive_tags, display
from .prediction import Prediction

FORMATS = ("table", "json", "jsonl", "csv")


def render(preds: Sequence[Prediction], fmt: str, *, top_k: int, top_tags: int = 10, segments: bool = False) -> str:
    """Predictions -> text in ``fmt`` (one of FORMATS)."""
    if fmt == "table":
        return "".join(_table(p, top_k, top_tags) for p in preds)
    dicts = [p.to_dict(top_k=top_k, top_tags=top_tags, segments=segments) for p in preds]
    if fmt == "json":
        return json.dumps(dicts, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(d) + "\n" for d in dicts)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["source", "rank", "genre", "score", "duration", "model", "status"])
        for p in preds:
            for rank, (label, score) in enumerate(p.top(top_k), 1):
                w.writerow([printable_name(p.source), rank, label, f"{score:.6f}", f"{p.duration:.3f}", p.model,
                            p.status])
        return buf.getvalue()
    raise ValueError(f"unknown format {fmt!r}")


def unknown_note(p: Prediction) -> str:
    """What an "unknown" call says in words (the table and the web page)."""
    hint = f" (closest tags: {', '.join(p.closest_tags)})" if p.closest_tags else ""
    return f"none of this model's genres{hint}: the scores below are its nearest genres, not a call"


def _table(p: Prediction, top_k: int, top_tags: int) -> str:
    lines = [f"{printable_name(p.source)}  ({p.duration:.1f} s, {len(p.segments)} windows, {p.status}, "
             f"window agreement {p.agreement:.2f})"]
    if p.status == "unknown":  # said before the scores, so they do not read as the answer
        lines.append(f"  {unknown_note(p)}")
    top = [(display(label), score) for label, score in p.top(top_k)]  # "Hip Hop"; JSON and CSV keep the ids
    width = max(len(name) for name, _ in top)
    for name, score in top:
        lines.append(f"  {name:<{width}}  {score:6.1%}  {'#' * round(score * 30)}")
    tags = descriptive_tags(p.tags, p.scores)  # no genre word beside the answer; JSON keeps every tag
    if tags and top_tags:
        lines.append("  tags: " + ", ".join(f"{t} {s:.2f}" for t, s in list(tags.items())[:top_tags]))
    lines.extend(f"  warning: {w}" for w in p.warnings)
    return "\n".join(lines) + "\n\n"
