"""Convert the MusiCNN TF1 checkpoints from the ``musicnn`` 0.1.0 wheel to safetensors in the package.

    python -m scripts.convert_musicnn            # downloads the wheel with pip (PyPI), converts all four

Runs once, by a maintainer; the outputs are committed under src/musicgenre/weights/. No TensorFlow:
the checkpoints are read by scripts/tf_bundle.py. Only the trained variables are kept (no Adam slots).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from musicgenre._io import sha256_file
from musicgenre.features import FeatureConfig
from musicgenre.modeldir import ModelCard
from musicgenre.models.musicnn import Musicnn, MusicnnVGG
from scripts.tf_bundle import read_bundle

ROOT = Path(__file__).resolve().parents[1]

MSD_TAGS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s', 'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul', 'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies', 'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop', '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal', 'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']  # noqa: E501
MTT_TAGS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano', 'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals', 'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft', 'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal', 'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']  # noqa: E501
MODELS = {"MSD_musicnn": Musicnn, "MTT_musicnn": Musicnn, "MSD_vgg": MusicnnVGG, "MTT_vgg": MusicnnVGG}


def tf_to_torch_state(tf: dict, model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a musicnn TF1 checkpoint (tensor name -> array) onto ``model``'s state dict.

    TF names layers by creation order (conv2d, conv2d_1, ..., batch_normalization_N); the port creates
    them in the same order, so the k-th TF conv/bn/dense maps to the k-th torch one.
    """
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    denses = [m for m in model.modules() if isinstance(m, nn.Linear)]
    names = {id(m): n for n, m in model.named_modules()}
    # creation order in TF: input BN first; musicnn: front convs+bns interleaved, etc. Sort by TF index.
    tf_convs = sorted({k.rsplit("/", 1)[0] for k in tf if "/kernel" in k and "Adam" not in k and "dense" not in k},
                      key=_tf_order)
    tf_bns = sorted({k.split("/")[0] for k in tf if k.startswith("batch_normalization")}, key=_tf_order)
    tf_denses = sorted({k.split("/")[0] for k in tf if k.startswith("dense")}, key=_tf_order)
    if (len(tf_convs), len(tf_bns), len(tf_denses)) != (len(convs), len(bns), len(denses)):
        raise ValueError("checkpoint does not match the model's layer counts")
    state: dict[str, torch.Tensor] = {}
    for tf_name, m in zip(tf_convs, convs):
        k = torch.from_numpy(tf[f"{tf_name}/kernel"])  # (kh, kw, in, out)
        w = k.permute(3, 2, 0, 1)  # (out, in, kh, kw)
        if isinstance(m, nn.Conv1d):  # mid-end conv spans all channels: (7, C, 1, out) -> (out, C, 7)
            w = k[:, :, 0, :].permute(2, 1, 0)
        state[f"{names[id(m)]}.weight"] = w.contiguous()
        state[f"{names[id(m)]}.bias"] = torch.from_numpy(tf[f"{tf_name}/bias"])
    for tf_name, bn in zip(tf_bns, bns):
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            state[f"{names[id(bn)]}.{ours}"] = torch.from_numpy(tf[f"{tf_name}/{theirs}"])
        state[f"{names[id(bn)]}.num_batches_tracked"] = torch.tensor(0)
    for tf_name, lin in zip(tf_denses, denses):
        state[f"{names[id(lin)]}.weight"] = torch.from_numpy(tf[f"{tf_name}/kernel"]).T.contiguous()
        state[f"{names[id(lin)]}.bias"] = torch.from_numpy(tf[f"{tf_name}/bias"])
    return state


def _tf_order(name: str) -> tuple[str, int]:
    """'conv2d_10' -> ('conv2d', 10); '3CNN' -> ('CNN', 3); unsuffixed first layer -> index 0."""
    if name[0].isdigit():
        return ("CNN", int(name[0]))
    base, _, idx = name.rpartition("_")
    return (base, int(idx)) if idx.isdigit() else (name, 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", type=Path, help="use this musicnn-0.1.0 wheel instead of downloading it")
    p.add_argument("--out", type=Path, default=ROOT / "src/musicgenre/weights/backbones")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "musicnn==0.1.0", "-d", tmp],
                           check=True)
            wheel = next(Path(tmp).glob("musicnn-0.1.0-*.whl"))
        wheel_sha = sha256_file(wheel)
        zipfile.ZipFile(wheel).extractall(tmp)
        for name, cls in MODELS.items():
            model = cls()
            state = tf_to_torch_state(read_bundle(f"{tmp}/musicnn/{name}/"), model)
            model.load_state_dict(state)  # strict: proves every tensor found its place
            card = ModelCard(
                name=name, version="0.1.0",  # musicnn's release
                architecture="musicnn" if cls is Musicnn else "musicnn_vgg",
                model_args={"n_tags": 50},
                labels=tuple(MSD_TAGS if name.startswith("MSD") else MTT_TAGS),
                features=FeatureConfig(),
                extra={
                    "licence": "ISC, (c) 2019 Music Technology Group, Universitat Pompeu Fabra; see "
                    "LICENSE-musicnn.txt",
                    "source": f"musicnn==0.1.0 wheel from PyPI (sha256 {wheel_sha}), musicnn/{name}/ TF1 checkpoint",
                    "reference": "Pons & Serra, musicnn: pre-trained convolutional neural networks for music audio "
                    "tagging, ISMIR 2019 LBD",
                },
            ).save(args.out / name, state)
            print(f"{name}: {(card.sha256 or '')[:12]}")
        (args.out / "LICENSE-musicnn.txt").write_text(
            (Path(tmp) / "musicnn-0.1.0.dist-info/LICENSE.md").read_text())


if __name__ == "__main__":
    main()
