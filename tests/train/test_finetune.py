"""Finetuning: learns a two-class set, fresh heads by rule, layer-wise lr decay, K-shot draws, images, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hvm1
from hvm1.cli import main
from hvm1.data import video_eval_preset
from hvm1.zoo import VIDEO_MEAN, VIDEO_STD
from hvm1.train import FinetuneConfig, finetune, read_metrics
from hvm1.train.finetune import _mix, finetune_model, layer_decay_groups
from hvm1.train.samples import select_shots
from train_helpers import IMAGES, MAE_CHECKPOINT, VIT_CHECKPOINT, require_shared

FIXED = video_eval_preset(56, 8, VIDEO_MEAN, VIDEO_STD, sampling_rate=8)


def tiny_config(out_dir: Path, **changes) -> FinetuneConfig:
    values = dict(out_dir=str(out_dir), model=str(VIT_CHECKPOINT), overrides={"num_heads": 4}, batch_size=2,
                  accum_iter=1, num_workers=0, tensorboard=False)
    return FinetuneConfig(**(values | changes))


def test_reaches_full_train_accuracy_on_two_classes(two_classes, tmp_path):
    config = tiny_config(tmp_path / "run", epochs=15, lr=3e-3, random_erasing=0.0, drop_path=0.0, dropout=0.0)
    result = finetune(two_classes, two_classes, config, train_preset=FIXED, val_preset=FIXED)
    assert result.last_eval["top1"] == 100.0 and result.last_eval["clips"] == 4
    assert result.best_value == 100.0
    best = hvm1.load_model(result.best_checkpoint)
    assert best.config.num_classes == 2
    with torch.no_grad():
        videos = torch.stack([FIXED.load(path)[0] for path in sorted(two_classes.rglob("*.avi"))])
        predicted = best(videos).argmax(dim=-1).tolist()
    assert predicted == [0, 0, 1, 1]  # sorted class folders: objects, people
    train_records = read_metrics(tmp_path / "run")
    assert train_records[-1]["acc"] == 1.0 and train_records[0]["lr"] == 3e-3


def test_head_is_kept_when_it_fits_and_made_fresh_by_rule_otherwise(tmp_path):
    source = hvm1.load_model(VIT_CHECKPOINT, num_heads=4)
    kept, note = finetune_model(tiny_config(tmp_path), num_classes=7)
    assert note is None and torch.equal(kept.head.weight, source.head.weight)
    assert kept.config.drop_path_rate == 0.1 and kept.config.dropout == 0.3
    other, note = finetune_model(tiny_config(tmp_path), num_classes=3)
    assert "rule 'fresh-head' dropped head.weight (7, 64), head.bias (7,) and made head.bias (3,)" in note
    assert other.head.weight.shape == (3, 64) and torch.equal(other.norm.weight, source.norm.weight)
    from_mae, note = finetune_model(tiny_config(tmp_path, model=str(MAE_CHECKPOINT),
                                                overrides={"num_heads": 4, "decoder_num_heads": 4}), 2)
    assert "rule 'fresh-head' made head.bias (2,), head.weight (2, 64)" in note and "dropped" not in note


def test_layer_wise_lr_decay_and_weight_decay_groups():
    model = hvm1.load_model(VIT_CHECKPOINT, num_heads=4)  # depth 2: layers 0 (embeddings), 1, 2, 3 (norm, head)
    groups = layer_decay_groups(model, 1e-4, 0.8)
    scale = {name: group["lr_scale"] for group in groups for name in group["names"]}
    decay = {name: group["weight_decay"] for group in groups for name in group["names"]}
    assert scale["head.weight"] == 1.0 and scale["norm.weight"] == 1.0
    assert scale["blocks.1.mlp.fc1.weight"] == pytest.approx(0.8)
    assert scale["blocks.0.mlp.fc1.weight"] == pytest.approx(0.8**2)
    assert scale["pos_embed_spatial"] == scale["patch_embed.proj.weight"] == pytest.approx(0.8**3)
    assert decay["head.weight"] == 1e-4 and decay["head.bias"] == decay["cls_token"] == decay["norm.weight"] == 0
    assert scale.keys() == {name for name, _ in model.named_parameters()}


def test_shots_draw_k_per_class_reproducibly():
    labels = [0] * 6 + [1] * 4 + [2] * 5
    chosen = select_shots(labels, 3, seed=0)
    assert [labels[i] for i in chosen] == [0] * 3 + [1] * 3 + [2] * 3
    assert chosen == select_shots(labels, 3, seed=0) and chosen != select_shots(labels, 3, seed=1)
    with pytest.raises(ValueError, match="class 1 has 4 examples, fewer than --shots 5"):
        select_shots(labels, 5, seed=0)


def test_cli_finetunes_on_images_with_shots(tmp_path):
    require_shared(IMAGES, VIT_CHECKPOINT)
    data = tmp_path / "images"
    for label, names in (("animals", ("baboon.jpg", "butterfly.jpg")), ("food", ("fruits.jpg", "orange.jpg"))):
        (data / label).mkdir(parents=True)
        for name in names:
            (data / label / name).symlink_to(IMAGES / name)
    out = tmp_path / "run"
    status = main(["finetune", str(data), "--val", str(data), "--checkpoint", str(VIT_CHECKPOINT),
                   "--set", "num_heads=4", "--images", "--shots", "1", "--seed", "5", "--batch-size", "2",
                   "--accum-iter", "1", "--epochs", "1", "--num-workers", "0", "--select", "top5",
                   "--out-dir", str(out)])
    assert status == 0
    (evaluation,) = read_metrics(out, kind="eval")
    assert evaluation["clips"] == 4 and evaluation["top5"] == 100.0  # two classes: top-5 is certain
    (train,) = read_metrics(out)
    assert train["lr"] == pytest.approx(1.2e-3 * 2 / 256)  # blr x total batch / 256
    assert (out / "checkpoint-best.pth").is_file()


def test_resume_continues_exactly_with_dropout_and_drop_path(two_classes, tmp_path):
    whole = finetune(two_classes, two_classes, tiny_config(tmp_path / "whole", epochs=2, lr=1e-3))
    first = finetune(two_classes, two_classes, tiny_config(tmp_path / "split", epochs=2, max_steps=3, lr=1e-3))
    rest = finetune(two_classes, two_classes,
                    tiny_config(tmp_path / "split", epochs=2, lr=1e-3, resume="auto"))
    assert whole.steps == rest.steps == 4 and len(rest.losses) == 1
    assert first.losses + rest.losses == whole.losses


def test_mixup_and_cutmix_mix_clips_and_targets_reproducibly():
    config = tiny_config(Path("-"), mixup=0.8, cutmix=1.0)
    video = torch.stack([torch.full((3, 2, 8, 8), float(i)) for i in range(4)])
    target = torch.eye(4)
    index = torch.tensor([5, 1, 7, 2])
    mixed, soft = _mix(video, target, config, index)
    again, soft_again = _mix(video, target, config, index)
    assert torch.equal(mixed, again) and torch.equal(soft, soft_again)
    assert torch.allclose(soft.sum(dim=-1), torch.ones(4))
    assert not torch.equal(mixed, video) and (soft.diagonal() < 1).all()


def test_every_config_field_has_a_flag():
    import dataclasses

    from hvm1.cli import _build_parser
    from hvm1.train import PretrainConfig

    commands = _build_parser()._subparsers._group_actions[0].choices
    for name, cls, library_only in (("pretrain", PretrainConfig, {"model", "overrides"}),
                                    ("finetune", FinetuneConfig, {"model", "overrides", "arch"})):
        flags = {action.dest for action in commands[name]._actions}
        missing = {f.name for f in dataclasses.fields(cls)} - flags - library_only
        assert not missing, f"hvm1 {name} lacks flags for {sorted(missing)}"
