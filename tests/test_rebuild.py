"""The shipped model rebuilt from its recipe on this machine matches what ships, within the stated tolerance.

A rebuild recomputes every cached backbone feature (``.cache/features``, beside the checkout) unless it is
there already: several minutes of CPU. The head's training is bit-for-bit repeatable on one machine (one
thread, fixed seeds), but the features are not across machines: another CPU's convolution kernels, numpy's
FFT or the MP3 encoder's build move their last bits, and 30 epochs of training turn that into other weights
(another sha256). ``benchmarks/rebuild.py`` measures how far such a rebuild moves the scores; this test
holds a fresh rebuild to that tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RECIPE = ROOT / "recipes" / "musicnn-genre.toml"

# Largest score difference a rebuild may show against the shipped model on the example clips, and on its
# valid-partition figures (top-1) in clips. benchmarks/results/rebuild.json (2.3): on this machine the rebuild
# is bit-exact; with the features perturbed by 1e-6 (relative; three noise seeds) the example scores move by at
# most 0.0072, the valid clips' by 0.0020, no label and no validation figure changes. A fresh clone elsewhere
# moved 2.2's example scores by 0.0105: the tolerance leaves about 5x that.
SCORE_TOL = 0.05
TOP1_TOL_CLIPS = 2


@pytest.mark.slow
def test_rebuild_from_recipe_matches_shipped(tmp_path):
    if not (SHARED / "gtzan").is_dir() or not (SHARED / "emotify").is_dir():
        pytest.skip(f"{SHARED} is absent: the rebuild needs the shared GTZAN and Emotify audio")
    pytest.importorskip("torch", reason="training needs torch (pip install 'musicgenre[train]')")
    import musicgenre
    from musicgenre.modeldir import read, resolve
    from musicgenre.train.recipe import Recipe, build

    # the recipe as `musicgenre train --recipe` runs it, without its robustness report (576 more backbone passes
    # over degraded valid clips that the weights do not depend on; the card's figures are checked above them)
    build(Recipe.load(RECIPE, robustness=()), tmp_path / "m", recipe_file=str(RECIPE))
    shipped_card, rebuilt_card = read(resolve(None)), read(tmp_path / "m")
    assert (rebuilt_card.name, rebuilt_card.version, rebuilt_card.labels) == (
        shipped_card.name, shipped_card.version, shipped_card.labels)
    assert rebuilt_card.temperature == pytest.approx(shipped_card.temperature, rel=0.15)
    np.testing.assert_allclose(rebuilt_card.temperature_by_windows, shipped_card.temperature_by_windows, rtol=0.25)
    shipped_valid = shipped_card.extra["metrics"]["valid"]
    rebuilt_valid = rebuilt_card.extra["metrics"]["valid"]
    for source in ("gtzan", "emotify"):
        n = shipped_valid[source]["n"]
        assert rebuilt_valid[source]["n"] == n
        assert abs(rebuilt_valid[source]["accuracy"] - shipped_valid[source]["accuracy"]) * n <= TOP1_TOL_CLIPS + 1e-9
    shipped = musicgenre.load(backend="torch", device="cpu")
    rebuilt = musicgenre.load(tmp_path / "m", backend="torch", device="cpu")
    worst = 0.0
    for clip in sorted((ROOT / "examples").glob("*.ogg")):
        a, b = shipped.predict(str(clip)), rebuilt.predict(str(clip))
        assert a.label == b.label, clip.name
        worst = max(worst, max(abs(a.scores[g] - b.scores[g]) for g in a.scores))
    exact = rebuilt_card.sha256 == shipped_card.sha256
    print(json.dumps({"bit_exact": exact, "max_score_difference": round(worst, 5)}))
    assert worst <= SCORE_TOL
