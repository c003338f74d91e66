"""Distilling the backbone (train.distill) at tiny scale on synthetic audio: a step lowers the loss, a resumed run
continues from its checkpoint bit for bit, the same seed gives the same weights; the recipe's [backbone] section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from musicgenre.data.corpus import Clip  # noqa: E402
from musicgenre.errors import ParameterError  # noqa: E402
from musicgenre.features import FeatureConfig  # noqa: E402
from musicgenre.train import distill as D  # noqa: E402
from tests.conftest import tone, write_audio  # noqa: E402

CFG = FeatureConfig(level_db=-5.0)
LABELS = ("blues", "jazz")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[D.DistillData, Path]:
    """Three 6.5-s clips (two windows each; one without a label), a phone and a 6-dB copy of each."""
    root = tmp_path_factory.mktemp("distill")
    rng = np.random.default_rng(0)
    (root / "audio").mkdir()
    clips = []
    for i, (freq, label) in enumerate([(220.0, "blues"), (660.0, "jazz"), (330.0, "")]):
        y = tone(6.5, sr=16000, freq=freq) + 0.05 * rng.standard_normal(int(6.5 * 16000)).astype(np.float32)
        path = write_audio(root / "audio" / f"c{i}.wav", y, 16000)
        clips.append(Clip(str(path), "gtzan", label, "train", f"c{i}"))
    bank = D.MelBank(root / "mels", CFG)
    data = D.assemble(bank, clips, D.copy_labels(("phone", "quiet_6db")), LABELS, D.pruned_backbone("MSD_musicnn"))
    return data, root


def _cfg(**kw: object) -> D.DistillConfig:
    base: dict[str, object] = {"steps": 4, "batch": 4, "lr": 1e-3, "warmup": 1, "copies": ("phone", "quiet_6db"),
                               "save_every": 2, "genre_weight": 1.0}
    return D.DistillConfig(**{**base, **kw})  # type: ignore[arg-type]


def _head(data: D.DistillData) -> torch.nn.Module:
    from musicgenre.models.genre import make_head

    torch.manual_seed(0)
    return make_head(data.emb.shape[1] + data.tags.shape[1], len(LABELS), hidden=8, dropout=0.3)


def _run(data: D.DistillData, folder: Path, cfg: D.DistillConfig, **kw: object) -> dict[str, object]:
    head = kw.pop("head", None) or _head(data)
    return D.distill(cfg, data, teacher="MSD_musicnn", folder=folder, features=CFG, head=head,  # type: ignore[arg-type]
                     class_weight=None, **kw)  # type: ignore[arg-type]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "student.safetensors")


def test_bank_keeps_loud_windows_copies_and_labels(tiny: tuple[D.DistillData, Path]) -> None:
    data, root = tiny
    assert data.mels.shape[:2] == (3, 6) and data.mels.shape[2:] == (187, 96)
    assert data.label.tolist() == [0, 0, 1, 1, -1, -1]
    assert data.pool.shape == (6, 1506) and data.emb.shape == (6, 200) and data.tags.shape == (6, 50)
    # the levelled front end: 6 dB quieter is the same window, the phone copy is not
    assert np.allclose(data.mels[2], data.mels[0], atol=2e-4)
    assert not np.allclose(data.mels[1], data.mels[0], atol=1e-2)
    # built once: the files are there, a second bank reads them (no decoding: the audio may be gone)
    assert sorted(p.name for p in (root / "mels" / "level-5dB").iterdir()) == ["clean", "phone", "quiet_6db"]


def test_copy_labels_seed_repeats_apart() -> None:
    assert D.copy_labels(("room", "room", "phone", "room")) == ["room", "room#2", "phone", "room#3"]


def test_a_step_lowers_the_loss(tiny: tuple[D.DistillData, Path], tmp_path: Path) -> None:
    data, _ = tiny
    cfg = _cfg(steps=1, warmup=0, lr=1e-5)
    scales = (torch.from_numpy(data.pool.std(0).clip(D.FEATURE_STD_FLOOR)),
              torch.from_numpy(data.emb.std(0).clip(D.FEATURE_STD_FLOOR)))
    head = _head(data).eval()
    parts = ("embedding", "tags")
    before = D.batch_loss(cfg, D.make_student("MSD_musicnn"), head, data, 0, scales, parts, None)
    assert set(before.parts) == {"features", "tags", "genre"} and before.parts["features"] > 0
    _run(data, tmp_path, cfg, head=head)
    after = D.batch_loss(cfg, D.load_student(tmp_path), head, data, 0, scales, parts, None)
    assert float(after.total.detach()) < float(before.total.detach())
    assert after.parts["features"] < before.parts["features"]


def test_resume_continues_bit_for_bit(tiny: tuple[D.DistillData, Path], tmp_path: Path) -> None:
    data, _ = tiny
    cfg = _cfg()
    _run(data, tmp_path / "whole", cfg)
    stopped = _run(data, tmp_path / "resumed", cfg, stop_after=2)  # killed after step 2
    assert stopped["step"] == 2 and not (tmp_path / "resumed" / "student.json").exists()
    card = _run(data, tmp_path / "resumed", cfg)  # resumes at step 2
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert card["final_loss"]["step"] == 4  # type: ignore[index]
    ck = torch.load(tmp_path / "resumed" / D.CHECKPOINT, weights_only=False)
    assert ck["step"] == 4 and [h["step"] for h in ck["history"]] == [1, 2, 3, 4]
    # a checkpoint of other settings is refused, naming what differs
    with pytest.raises(ParameterError, match="lr"):
        _run(data, tmp_path / "resumed", dataclasses.replace(cfg, lr=5e-4))


def test_same_seed_same_weights_other_seed_other(tiny: tuple[D.DistillData, Path], tmp_path: Path) -> None:
    data, _ = tiny
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        _run(data, tmp_path / name, _cfg(steps=2, seed=seed))
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    teacher = D.make_student("MSD_musicnn").state_dict()
    assert not torch.equal(a["mid.0.conv.weight"], teacher["mid.0.conv.weight"])  # the student did move


def test_frozen_layers_stay(tiny: tuple[D.DistillData, Path], tmp_path: Path) -> None:
    data, _ = tiny
    _run(data, tmp_path, _cfg(steps=1, layers=("mid",)))
    w, teacher = _weights(tmp_path), D.make_student("MSD_musicnn").state_dict()
    assert torch.equal(w["frontend.0.conv.weight"], teacher["frontend.0.conv.weight"])
    assert torch.equal(w["dense.weight"], teacher["dense.weight"])
    assert not torch.equal(w["mid.1.conv.weight"], teacher["mid.1.conv.weight"])


def test_batches_hear_copies_and_clean(tiny: tuple[D.DistillData, Path]) -> None:
    data, _ = tiny
    rows, copy = D.batch_plan(_cfg(batch=6, clean_share=0.0), data, 0)
    assert sorted(rows.tolist()) == list(range(6)) and (copy > 0).all()
    _, copy = D.batch_plan(_cfg(batch=6, clean_share=1.0), data, 0)
    assert (copy == 0).all()


def test_config_checks_its_keys() -> None:
    cfg = D.DistillConfig.from_section({"train": "distill", "steps": 10, "copies": ["room", "phone"]})
    assert cfg.steps == 10 and cfg.copies == ("room", "phone")
    with pytest.raises(ParameterError, match="unknown .backbone. keys stpes"):
        D.DistillConfig.from_section({"stpes": 10})
    with pytest.raises(ParameterError, match="layers"):
        D.DistillConfig(layers=("head",))
    with pytest.raises(ParameterError, match="copies"):
        D.DistillConfig(copies=("rooom",))


def test_recipe_backbone_section(tmp_path: Path) -> None:
    from musicgenre.train.recipe import Recipe

    text = ('name = "x"\nlabels = ["blues", "jazz"]\n[model]\nbackbone = "MSD_musicnn"\n'
            '[backbone]\ntrain = "{how}"\nsteps = 5\n')
    (tmp_path / "r.toml").write_text(text.format(how="distill"))
    recipe = Recipe.load(tmp_path / "r.toml")
    assert recipe.backbone == "MSD_musicnn" and recipe.distill == {"train": "distill", "steps": 5}
    assert recipe.feature_backbone == "MSD_musicnn"
    (tmp_path / "r.toml").write_text(text.format(how="frozen"))
    assert Recipe.load(tmp_path / "r.toml").distill == {}
    (tmp_path / "r.toml").write_text(text.format(how="finetune"))
    with pytest.raises(ParameterError, match="train = 'finetune'"):
        Recipe.load(tmp_path / "r.toml")


def test_student_features_go_through_the_recipe(tiny: tuple[D.DistillData, Path], tmp_path: Path) -> None:
    """A recipe with ``student`` caches and serves the student's features under the student's own name."""
    from musicgenre.train.recipe import Recipe, features_of

    data, root = tiny
    _run(data, tmp_path / "s", _cfg(steps=1))
    recipe = Recipe(name="x", labels=LABELS, level_db=-5.0, student=str(tmp_path / "s"),
                    cache=str(root / "features"))
    clip = Clip(str(root / "audio" / "c0.wav"), "gtzan", "blues", "train", "c0")
    feats = features_of(recipe, [clip], "phone")[clip.key]
    assert recipe.feature_backbone.startswith("MSD_musicnn~student-")
    from musicgenre.train.embed import cache_path

    assert cache_path(root / "features", recipe.feature_backbone, "phone", clip, 0.0, recipe.feature_config).is_file()
    student = D.load_student(tmp_path / "s")
    mels, _ = D.MelBank(root / "mels", CFG).windows(clip, "phone")  # read from the bank, not decoded
    with torch.inference_mode():
        _, emb, _ = D.outputs(student, torch.from_numpy(mels))
    assert np.allclose(feats.emb, emb.numpy(), atol=1e-4)


def test_frozen_front_reads_its_stored_outputs(tiny: tuple[D.DistillData, Path]) -> None:
    """With the front end frozen, the loss from its stored outputs is the loss through the whole student."""
    data, _ = tiny
    net = D.make_student("MSD_musicnn", ("mid", "back"))
    scales = (torch.ones(1506), torch.ones(200))
    cfg = _cfg(layers=("mid", "back"), genre_weight=0.0)
    stored = D.batch_loss(cfg, net, None, dataclasses.replace(data, front=D.front_outputs(net, data.mels)), 1,
                          scales, (), None)
    whole = D.batch_loss(cfg, net, None, data, 1, scales, (), None)
    assert abs(float(stored.total.detach()) - float(whole.total.detach())) < 1e-4 * float(whole.total.detach())


def test_bank_fills_in_worker_processes(tiny: tuple[D.DistillData, Path], tmp_path: Path) -> None:
    _, root = tiny
    clips = [Clip(str(root / "audio" / f"c{i}.wav"), "gtzan", "", "train", f"c{i}") for i in range(3)]
    clips.append(Clip(str(root / "audio" / "missing.wav"), "gtzan", "", "train", "m"))
    bank = D.MelBank(tmp_path, CFG)
    assert bank.fill(clips, ["clean", "quiet_6db"], workers=2) == clips[:3]  # the missing file is left out
    ref = D.MelBank(root / "mels", CFG)
    assert np.array_equal(bank.read(clips[1], "quiet_6db")[0], ref.read(clips[1], "quiet_6db")[0])  # type: ignore[index]
