"""Train and select the genre head of the default model (``musicnn-gtzan``) on GTZAN clips.

    python scripts/train_genre_head.py --data ../shared/data/gtzan/genres

1. Every clip is cut into MusiCNN's 3-s windows; each window gets the pretrained MSD MusiCNN's
   200-d penultimate features plus the MTT MusiCNN's 50 tag logits (cached in .cache/); see
   docs/models.md for why this feature set.
2. Candidate heads (logistic regression with several L2 strengths, one-hidden-layer MLPs) are
   compared by stratified 5-fold cross-validation grouped by clip (no clip in two folds), scored at
   clip level: the clip's prediction is the mean of its windows' probabilities, as in ``predict``.
3. The best candidate is refit on all clips and written to src/musicgenre/weights/musicnn_gtzan/,
   with its cross-validation figures; docs/models.md reports them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from musicgenre.weights_io import save_weights  # noqa: E402

from musicgenre.features import FeatureConfig  # noqa: E402
from musicgenre.models.genre import MusicnnGenre  # noqa: E402
from musicgenre.windows import Windows  # noqa: E402

CANDIDATES = {
    "logreg_C0.01": ("logreg", {"C": 0.01}),
    "logreg_C0.1": ("logreg", {"C": 0.1}),
    "logreg_C1": ("logreg", {"C": 1.0}),
    "mlp_128_a1e-2": ("mlp", {"hidden_layer_sizes": (128,), "alpha": 1e-2}),
    "mlp_128_a1": ("mlp", {"hidden_layer_sizes": (128,), "alpha": 1.0}),
}


def embed_dataset(data: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """(windows, 250) features, window label ids, window clip ids, genre names, clip paths."""
    genres = sorted(p.name for p in data.iterdir() if p.is_dir())
    clips = sorted(str(f) for g in genres for f in (data / g).iterdir() if f.suffix in (".wav", ".au"))
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["clips"]) == clips:
            return z["X"], z["y"], z["g"], genres, clips
    model = MusicnnGenre(n_labels=len(genres)).eval()
    cfg = FeatureConfig()
    X, y, g = [], [], []
    t0 = time.perf_counter()
    for i, clip in enumerate(clips):
        mels, _ = Windows(clip, cfg).all()
        with torch.inference_mode():
            X.append(model.features(torch.from_numpy(mels))[0].numpy())
        y += [genres.index(Path(clip).parent.name)] * len(mels)
        g += [i] * len(mels)
    print(f"embedded {len(clips)} clips in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, X=np.concatenate(X), y=np.array(y), g=np.array(g), clips=np.array(clips))
    return np.concatenate(X), np.array(y), np.array(g), genres, clips


def make(kind: str, params: dict, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if kind == "logreg":
        return LogisticRegression(max_iter=3000, **params)
    return MLPClassifier(max_iter=500, early_stopping=False, random_state=seed, **params)


def clip_level(proba: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean window probabilities per clip: (clip ids, (n_clips, n_labels))."""
    ids = np.unique(g)
    return ids, np.stack([proba[g == i].mean(axis=0) for i in ids])


def cross_validate(X, y, g, kind, params, seed, folds=5):
    from sklearn.model_selection import StratifiedGroupKFold

    clip_true, clip_pred, window_acc = [], [], []
    for tr, te in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(X, y, g):
        mean, std = X[tr].mean(0), X[tr].std(0) + 1e-6
        clf = make(kind, params, seed).fit((X[tr] - mean) / std, y[tr])
        proba = clf.predict_proba((X[te] - mean) / std)
        window_acc.append(float((proba.argmax(1) == y[te]).mean()))
        ids, cp = clip_level(proba, g[te])
        clip_true += [int(y[g == i][0]) for i in ids]
        clip_pred += list(cp.argmax(1))
    return np.array(clip_true), np.array(clip_pred), float(np.mean(window_acc))


def main() -> None:
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/gtzan/genres")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "src/musicgenre/weights/musicnn_gtzan")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    X, y, g, genres, clips = embed_dataset(args.data, ROOT / ".cache/gtzan_embeddings.npz")
    print(f"{len(clips)} clips, {len(X)} windows, {len(genres)} genres")
    results = {}
    for name, (kind, params) in CANDIDATES.items():
        t, pr, wacc = cross_validate(X, y, g, kind, params, args.seed)
        results[name] = {"clip_accuracy": accuracy_score(t, pr), "clip_macro_f1": f1_score(t, pr, average="macro"),
                         "window_accuracy": wacc}
        print(f"{name:16s} clip acc {results[name]['clip_accuracy']:.3f}  macro-F1 "
              f"{results[name]['clip_macro_f1']:.3f}  window acc {wacc:.3f}")
    best = max(results, key=lambda n: (results[n]["clip_macro_f1"], results[n]["window_accuracy"]))
    kind, params = CANDIDATES[best]
    t, pr, _ = cross_validate(X, y, g, kind, params, args.seed)
    report = classification_report(t, pr, target_names=genres, output_dict=True, zero_division=0)
    print(f"selected {best}\n" + classification_report(t, pr, target_names=genres, digits=3, zero_division=0))

    # refit on every clip and copy the sklearn weights into the torch head
    mean, std = X.mean(0), X.std(0) + 1e-6
    clf = make(kind, params, args.seed).fit((X - mean) / std, y)
    hidden = params.get("hidden_layer_sizes", (0,))[0]
    model = MusicnnGenre(n_labels=len(genres), hidden=hidden)
    head = {"head.0.mean": torch.tensor(mean), "head.0.std": torch.tensor(std)}
    if kind == "logreg":
        head |= {"head.2.weight": torch.tensor(clf.coef_), "head.2.bias": torch.tensor(clf.intercept_)}
    else:
        head |= {"head.1.weight": torch.tensor(clf.coefs_[0].T), "head.1.bias": torch.tensor(clf.intercepts_[0]),
                 "head.4.weight": torch.tensor(clf.coefs_[1].T), "head.4.bias": torch.tensor(clf.intercepts_[1])}
    head = {k: v.float() for k, v in head.items()}
    model.load_state_dict(head, strict=False)  # check names and shapes before writing
    config = {
        "name": "musicnn-gtzan",
        "version": "1.0",
        "architecture": "musicnn_genre",
        "model_args": {"n_labels": len(genres), "hidden": hidden},
        "labels": genres,
        "features": FeatureConfig().to_dict(),
        "description": "MusiCNN (Pons & Serra 2019) MSD penultimate features + MTT tag logits + genre head trained on "
        f"{len(clips)} GTZAN clips ({best}); tags from the MSD and MTT MusiCNN taggers",
        "licence": "head: same as musicgenre; backbones: ISC (see backbones/LICENSE-musicnn.txt)",
        "training": {"command": "python scripts/train_genre_head.py --data <gtzan>/genres --seed "
                     f"{args.seed}", "clips": len(clips), "windows": int(len(X)), "selected": best},
        "metrics": {"cv": "stratified 5-fold grouped by clip, clip-level", "candidates": results,
                    "per_genre": {gn: {k: round(report[gn][k], 3) for k in ("precision", "recall", "f1-score")}
                                  for gn in genres}},
    }
    save_weights(head, args.out / "model.safetensors", config, args.out / "config.json")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
