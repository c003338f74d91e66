"""Synthetic libraries for tests and benchmarks: library databases written with the package's own row writer
(``library.db.upsert``), each file stored as ``scan`` stores it (windows of a 200-d embedding and 50 tag logits,
float16, their means, the MSD_musicnn backbone's identity) with its own tags, the embeddings Gaussian clusters
(genre centre + artist offset + file noise). ``synthetic_learning_library`` is what ``learn`` is tested and
benchmarked on (benchmarks/bench_learn.py), ``synthetic_similarity_library`` what ``similar`` is
(benchmarks/bench_similar.py). Like numpy.testing, for tests: nothing in the product imports it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["BACKBONE", "LEARN_GENRES", "SIMILAR_GENRES", "SPELLINGS", "synthetic_learning_library",
           "synthetic_similarity_library"]

LEARN_GENRES = ["Rock", "Jazz", "Hip-Hop", "Electronic", "Classical", "Metal", "Folk", "Reggae", "Blues", "Country",
                "Soul", "Punk", "Ambient", "Funk", "Latin", "Disco"]
SIMILAR_GENRES = [*LEARN_GENRES[:16], "Pop", "House", "Techno", "Gospel"]
SPELLINGS = {"Hip-Hop": ["Hip-Hop", "hip hop", "HipHop"], "Electronic": ["Electronic", "electronic"]}
# what the shipped default model's features are stored under: its backbone behind its levelled front end
# (musicnn-gtzan 3.0; features.feature_identity)
BACKBONE = ("MSD_musicnn", "0.1.0+level-5dB-window")


def _row(path: str, i: int, duration: float, feats: Any, tags: dict[str, Any]) -> dict[str, Any]:
    """One file's row as ``scan`` writes it (``library.db.row_from_prediction``'s columns)."""
    from .library.db import feature_columns, file_tag_columns

    digest = hashlib.blake2b(path.encode(), digest_size=16).hexdigest()
    return {"path": path, "size": 1000 + i, "mtime": 1.0e9 + i, "content_hash": digest, "duration": duration,
            "model": "musicnn-gtzan", "model_version": "2.3", "label": "rock", "score": 0.5,
            "scores": json.dumps({"rock": 0.5, "pop": 0.5}), "tags": "{}", "error": None,
            "scanned_at": "2025-01-01T00:00:00+00:00", "tagged": None, "tag_error": None,
            **feature_columns(feats), **file_tag_columns(tags)}


def synthetic_learning_library(db: Path, n_files: int, *, genres: int = 12, files_per_artist: int = 8, seed: int = 0,
                      windows: int = 10, mistagged: float = 0.03, untagged: float = 0.05, rare: bool = True,
                      artists: bool = True, backbone: tuple[str, str] = BACKBONE, separation: float = 0.35,
                      ours: int = 0) -> dict[str, Any]:
    """Write a library database of ``n_files`` files with stored features and tags (``bench_learn``); returns
    {"truth": {path: genre}, "mistagged": [paths], "untagged": [paths], "rare": genre or None}.

    ``artists=False``: no artist tags, files in genre-named folders (Music/<Genre>/<album>/...: the folds fall
    back to folders, which coincide with genres: leaky). ``ours``: that many extra files whose genre our writer
    put there (``genre_ours``). ``windows``: stored windows per file (most files; every 7th has fewer)."""
    import numpy as np

    from .library.db import connect, upsert
    from .prediction import WindowFeatures

    rng = np.random.default_rng(seed)
    names = (LEARN_GENRES + [f"Genre {i}" for i in range(len(LEARN_GENRES), genres)])[:genres]
    d_emb, d_tags = 200, 50
    centres = rng.normal(0.0, separation, (genres, d_emb + d_tags))
    mix = (np.eye(d_emb + d_tags) + rng.normal(0.0, 0.3, (d_emb + d_tags,) * 2) / np.sqrt(d_emb + d_tags))
    rare_genre = "Polka" if rare else None
    n_rare = 6 if rare else 0
    truth: dict[str, str] = {}
    wrong: list[str] = []
    none: list[str] = []
    rows = []
    con = connect(db)
    try:
        for i in range(n_files + n_rare + ours):
            artist_no = i // files_per_artist
            if i >= n_files + n_rare:  # tagged by our own writer: never a label
                g, genre_name = int(rng.integers(genres)), None
            elif i >= n_files:
                g, genre_name = int(rng.integers(genres)), rare_genre
                artist_no = 100_000 + (i - n_files) // 2
            else:
                g = artist_no % genres
                genre_name = names[g]
            artist_off = np.random.default_rng([seed, artist_no]).normal(0.0, 0.5, d_emb + d_tags)
            k = windows if i % 7 else max(1, windows // 3)
            base = centres[g] + artist_off + rng.normal(0.0, 0.5, d_emb + d_tags)
            x = (base[None, :] + rng.normal(0.0, 1.0, (k, d_emb + d_tags))) @ mix
            x[:, d_emb:] -= 3.0  # tag logits sit below zero
            folder = (f"/music/{names[g] if genre_name is None else genre_name}/album {artist_no}"
                      if not artists else f"/music/artist {artist_no}/album {artist_no % 3}")
            path = f"{folder}/{i:06d} track.mp3"
            tags: dict[str, Any] = {"genres": None, "genre_ours": False, "artist": None, "album_artist": None,
                                    "album": f"album {artist_no}", "mb_artist_id": None, "mb_album_id": None,
                                    "mb_track_id": None, "tags_error": None}
            if artists:
                tags["artist"] = f"Artist {artist_no}"
            if i >= n_files + n_rare:
                tags["genres"], tags["genre_ours"] = [names[g]], True
            elif genre_name is not None and rng.random() < untagged and i < n_files:
                none.append(path)
            else:
                assert genre_name is not None
                written = genre_name
                if i < n_files and rng.random() < mistagged:
                    written = names[(g + 1 + int(rng.integers(genres - 1))) % genres]
                    wrong.append(path)
                truth[path] = genre_name
                spell = SPELLINGS.get(written, [written])
                tags["genres"] = [spell[i % len(spell)]]
            emb = x[:, :d_emb]
            tl = x[:, d_emb:]
            feats = WindowFeatures(backbone=backbone[0], backbone_version=backbone[1], windows=k * 3,
                                   index=np.arange(k, dtype=np.int32) * 3, embedding=emb.astype(np.float16),
                                   tag_logits=tl.astype(np.float16), mean_embedding=emb.mean(0).astype(np.float16),
                                   mean_tag_logits=tl.mean(0).astype(np.float16))
            rows.append(_row(path, i, 3.0 * k * 3, feats, tags))
            if len(rows) >= 500:
                upsert(con, rows)
                con.commit()
                rows = []
        upsert(con, rows)
        con.commit()
    finally:
        con.close()
    return {"truth": truth, "mistagged": wrong, "untagged": none, "rare": rare_genre}


def synthetic_similarity_library(db: Path, n_files: int, *, genres: int = 20, files_per_artist: int = 10, seed: int = 0,
                      windows: int = 10, untagged: float = 0.05, separation: float = 0.45,
                      artist_spread: float = 0.8, noise: float = 1.0, batch: int = 1000) -> dict[str, Any]:
    """Write a library database of ``n_files`` files with stored features and tags (``bench_similar``); returns
    {"genre": {path: genre}, "artist": {path: artist}}. File i is by artist i // files_per_artist, whose genre
    is (artist number) % genres; its mean embedding is genre centre (scaled by ``separation``) + artist offset
    (``artist_spread``) + file noise (``noise``), its ``windows`` windows that mean plus window noise."""
    import numpy as np

    from .library.db import connect, upsert
    from .prediction import WindowFeatures

    rng = np.random.default_rng(seed)
    names = (SIMILAR_GENRES + [f"Genre {i}" for i in range(len(SIMILAR_GENRES), genres)])[:genres]
    d_emb, d_tags = 200, 50
    centres = rng.normal(0.0, separation, (genres, d_emb))
    tag_centres = rng.normal(-3.0, 1.0, (genres, d_tags))
    genre_of: dict[str, str] = {}
    artist_of: dict[str, str] = {}
    con = connect(db)
    try:
        for start in range(0, n_files, batch):
            ids = np.arange(start, min(n_files, start + batch))
            artist_no = ids // files_per_artist
            g = artist_no % genres
            artist_off = np.stack([np.random.default_rng([seed, int(a)]).normal(0.0, artist_spread, d_emb)
                                   for a in artist_no])
            means = centres[g] + artist_off + rng.normal(0.0, noise, (len(ids), d_emb))
            rows = []
            for j, i in enumerate(ids):
                emb = means[j][None, :] + rng.normal(0.0, 0.5, (windows, d_emb))
                tl = tag_centres[g[j]][None, :] + rng.normal(0.0, 0.5, (windows, d_tags))
                feats = WindowFeatures(backbone=BACKBONE[0], backbone_version=BACKBONE[1], windows=windows * 3,
                                       index=np.arange(windows, dtype=np.int32) * 3,
                                       embedding=emb.astype(np.float16), tag_logits=tl.astype(np.float16),
                                       mean_embedding=means[j].astype(np.float16),
                                       mean_tag_logits=tl.mean(0).astype(np.float16))
                genre = names[g[j]]
                path = f"/music/artist {artist_no[j]}/album {artist_no[j] % 3}/{i:06d} track.mp3"
                spell = SPELLINGS.get(genre, [genre])
                tagged = rng.random() >= untagged
                tags: dict[str, Any] = {"genres": [spell[i % len(spell)]] if tagged else None, "genre_ours": False,
                                        "artist": f"Artist {artist_no[j]}", "album_artist": None,
                                        "album": f"album {artist_no[j] % 3}", "mb_artist_id": None,
                                        "mb_album_id": None, "mb_track_id": None, "tags_error": None}
                genre_of[path], artist_of[path] = genre, tags["artist"]
                rows.append(_row(path, int(i), 90.0, feats, tags))
            upsert(con, rows)
            con.commit()
    finally:
        con.close()
    return {"genre": genre_of, "artist": artist_of}
