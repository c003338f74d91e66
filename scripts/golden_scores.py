"""Write the shipped default model's scores on the example clips to tests/fixtures/golden_scores.json.

    python -m scripts.golden_scores

Run it after the shipped weights change on purpose (and say why in the commit); tests/test_golden.py then
checks that every backend reproduces these scores within 1e-4 (a framing shift or a front-end change
moves them; a top-3 check would not notice).
"""

from __future__ import annotations

import json
from pathlib import Path

import musicgenre

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    clf = musicgenre.load(backend="torch", device="cpu")
    out = {"model": clf.name, "version": clf.version, "clips": {}}
    for clip in sorted((ROOT / "examples").glob("*.ogg")):
        p = clf.predict(clip)
        out["clips"][clip.name] = {"scores": p.scores, "tags": dict(list(p.tags.items())[:10])}
    path = ROOT / "tests" / "fixtures" / "golden_scores.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
