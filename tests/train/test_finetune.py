"""Finetuning: learns a two-class set, fresh heads by rule, layer-wise lr decay, K-shot draws, images, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hvm1
from hvm1.cli import main
from hvm1.data import ClipDataset, VideoError, select_shots, video_eval_preset
from hvm1.models import ViTConfig
from hvm1.train import FinetuneConfig, finetune, read_metrics
from hvm1.train.distributed import DistributedContext
from hvm1.train.finetuning import finetune_model, mix_batch, validation_evaluator
from hvm1.train.optim import finetuning_param_groups
from hvm1.zoo import IMAGENET_MEAN, IMAGENET_STD, VIDEO_MEAN, VIDEO_STD, preprocessing_for
from reference_data import MAE_CHECKPOINT, VIT_CHECKPOINT, fixture, image

FIXED = video_eval_preset(56, 8, VIDEO_MEAN, VIDEO_STD, sampling_rate=8)


def tiny_config(out_dir: Path, **changes) -> FinetuneConfig:
    values = dict(
        out_dir=str(out_dir),
        model=str(VIT_CHECKPOINT),
        overrides={"num_heads": 4},
        batch_size=2,
        accum_iter=1,
        num_workers=0,
        tensorboard=False,
    )
    return FinetuneConfig(**(values | changes))


@pytest.mark.slow
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
    assert best.class_names == ("objects", "people")  # the checkpoint records the class folders' names
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
    from_mae, note = finetune_model(
        tiny_config(tmp_path, model=str(MAE_CHECKPOINT), overrides={"num_heads": 4, "decoder_num_heads": 4}), 2
    )
    assert "rule 'fresh-head' made head.bias (2,), head.weight (2, 64)" in note and "dropped" not in note


def test_finetuning_groups_are_the_published_layer_decay_groups():
    # Published (param_groups_lrd): 1-D parameters and the ViT's no_weight_decay list (CLS token, position
    # embeddings) take no weight decay; layer k's lr is scaled by layer_decay ** (depth + 1 - k), with layer 0
    # the embeddings, block i layer i + 1, and the final norm and head layer depth + 1.
    model = hvm1.load_model(VIT_CHECKPOINT, num_heads=4)  # depth 2: layers 0 (embeddings), 1, 2, 3 (norm, head)
    groups = finetuning_param_groups(model, 1e-4, 0.8)
    scale = {name: group["lr_scale"] for group in groups for name in group["names"]}
    decay = {name: group["weight_decay"] for group in groups for name in group["names"]}
    parameters = dict(model.named_parameters())
    assert scale.keys() == parameters.keys() and sum(len(group["names"]) for group in groups) == len(parameters)
    tokens = {"cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class"}
    assert {n for n, wd in decay.items() if wd == 0} == tokens | {n for n, p in parameters.items() if p.ndim == 1}
    assert {wd for n, wd in decay.items() if n not in tokens and parameters[n].ndim > 1} == {1e-4}
    assert scale["head.weight"] == scale["head.bias"] == scale["norm.weight"] == 1.0
    assert scale["blocks.1.mlp.fc1.weight"] == scale["blocks.1.norm1.bias"] == pytest.approx(0.8)
    assert scale["blocks.0.attn.q.weight"] == pytest.approx(0.8**2)
    assert all(scale[n] == pytest.approx(0.8**3) for n in (*tokens, "patch_embed.proj.weight", "patch_embed.proj.bias"))


def test_finetuning_groups_leave_out_frozen_parameters_and_keep_one_group_per_layer_and_decay():
    model = hvm1.load_model(VIT_CHECKPOINT, num_heads=4)
    model.blocks[0].requires_grad_(False)
    model.cls_token.requires_grad_(False)
    groups = finetuning_param_groups(model, 1e-4, 0.8)
    order = [name for name, _ in model.named_parameters()]
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert sorted(name for group in groups for name in group["names"]) == sorted(trainable)
    assert all(group["names"] == sorted(group["names"], key=order.index) for group in groups)
    # from the embeddings (smallest lr) up to the head, each layer's decayed group before its exempt one
    keys = [(group["lr_scale"], group["weight_decay"] == 0.0) for group in groups]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 2 * 3  # layers 0, 2, 3: block 0 is frozen


class _IndexPreset:
    """Reads nothing: the clip of file `k` is filled with k (so a stub model tells the clips apart); `bad`
    is unreadable."""

    def load(self, path, start=None, generator=None):
        if Path(path).stem == "bad":
            raise VideoError(path, "not a video")
        return torch.full((3, 2, 28, 28), float(Path(path).stem)), 0


class _TableModel(torch.nn.Module):
    """Answers clip k with row k of a fixed logits table."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.logits[video[:, 0, 0, 0, 0].long()]


def test_validation_counts_top1_top5_and_loss_over_every_readable_clip():
    # 7 classes; clip k's label is class k, ranked 1st, 3rd, 6th, 2nd, 5th and 7th by the logits: top-1 is
    # 1 of 6, top-5 4 of 6. Batches of 4 leave a partial last batch; one file is unreadable.
    ranks = [1, 3, 6, 2, 5, 7]
    labels = torch.arange(len(ranks))
    logits = torch.zeros(len(ranks), 7)
    for clip, rank in enumerate(ranks):
        others = [c for c in range(7) if c != clip]
        order = others[: rank - 1] + [clip] + others[rank - 1 :]  # classes from best to worst
        logits[clip, order] = torch.linspace(3.0, -3.0, 7)
    files = [f"{k}.mp4" for k in range(len(ranks))] + ["bad.mp4"]
    val_set = ClipDataset(files, _IndexPreset(), labels=[*labels.tolist(), 0], skip_bad=True)
    cfg = ViTConfig(
        img_size=28, patch_size=14, num_frames=2, t_patch_size=2, embed_dim=32, depth=1, num_heads=2, num_classes=7
    )
    evaluate = validation_evaluator(val_set, cfg, tiny_config(Path("-"), eval_batch_size=4), DistributedContext())
    result = evaluate(_TableModel(logits))
    assert result["clips"] == 6 and result["skipped"] == 1
    assert result["top1"] == pytest.approx(100 * 1 / 6) and result["top5"] == pytest.approx(100 * 4 / 6)
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())


def test_shots_draw_k_per_class_reproducibly():
    labels = [0] * 6 + [1] * 4 + [2] * 5
    chosen = select_shots(labels, 3, seed=0)
    assert [labels[i] for i in chosen] == [0] * 3 + [1] * 3 + [2] * 3
    assert chosen == select_shots(labels, 3, seed=0) and chosen != select_shots(labels, 3, seed=1)
    with pytest.raises(ValueError, match="class 1 has 4 examples, fewer than --shots 5"):
        select_shots(labels, 5, seed=0)


def test_cli_finetunes_on_images_with_shots(tmp_path):
    fixture(VIT_CHECKPOINT)
    data = tmp_path / "images"
    for label, names in (("animals", ("baboon.jpg", "butterfly.jpg")), ("food", ("fruits.jpg", "orange.jpg"))):
        (data / label).mkdir(parents=True)
        for name in names:
            (data / label / name).symlink_to(image(name))
    out = tmp_path / "run"
    status = main(
        [
            "finetune",
            str(data),
            "--val",
            str(data),
            "--checkpoint",
            str(VIT_CHECKPOINT),
            "--set",
            "num_heads=4",
            "--images",
            "--shots",
            "1",
            "--seed",
            "5",
            "--batch-size",
            "2",
            "--accum-iter",
            "1",
            "--epochs",
            "1",
            "--num-workers",
            "0",
            "--select",
            "top5",
            "--out-dir",
            str(out),
        ]
    )
    assert status == 0
    (evaluation,) = read_metrics(out, kind="eval")
    assert evaluation["clips"] == 4
    best = torch.load(out / "checkpoint-best.pth", weights_only=False)
    assert best["best_value"] == evaluation["top5"] and best["args"].select == "top5"
    (train,) = read_metrics(out)
    assert train["lr"] == pytest.approx(1.2e-3 * 2 / 256)  # blr x total batch / 256
    # The checkpoint records how its inputs were prepared, so evaluate reads images as finetune did.
    recorded = preprocessing_for(out / "checkpoint-best.pth")
    assert (recorded.mean, recorded.std, recorded.single_image) == (IMAGENET_MEAN, IMAGENET_STD, True)


def test_resume_continues_exactly_with_dropout_and_drop_path(two_classes, tmp_path):
    whole = finetune(two_classes, two_classes, tiny_config(tmp_path / "whole", epochs=2, lr=1e-3))
    first = finetune(two_classes, two_classes, tiny_config(tmp_path / "split", epochs=2, max_steps=3, lr=1e-3))
    rest = finetune(two_classes, two_classes, tiny_config(tmp_path / "split", epochs=2, lr=1e-3, resume="auto"))
    assert whole.steps == rest.steps == 4 and len(rest.losses) == 1
    assert first.losses + rest.losses == whole.losses


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0)])
def test_mixed_targets_hold_each_clip_in_the_share_its_pixels_have(mixup, cutmix):
    # Clip i is all value i and its partner (the reversed batch) is clip 3 - i, so the mixed pixels tell how
    # much of each clip is in the mix: the target must give each class exactly that share.
    config = tiny_config(Path("-"), mixup=mixup, cutmix=cutmix)
    video = torch.stack([torch.full((3, 2, 32, 32), float(i)) for i in range(4)])
    index = torch.tensor([5, 1, 7, 2])
    mixed, soft = mix_batch(video, torch.eye(4), config, index)
    again, soft_again = mix_batch(video, torch.eye(4), config, index)
    assert torch.equal(mixed, again) and torch.equal(soft, soft_again)
    for i in range(4):
        own, partner = float(i), float(3 - i)
        if cutmix:
            share = (mixed[i] == own).float().mean().item()  # the pasted box holds the partner's pixels
            assert ((mixed[i] == own) | (mixed[i] == partner)).all()
        else:
            share = ((mixed[i] - partner) / (own - partner)).mean().item()  # lam * own + (1 - lam) * partner
        assert 0 < share < 1, f"clip {i} was not mixed"
        assert soft[i, i].item() == pytest.approx(share, abs=1e-6)
        assert soft[i, 3 - i].item() == pytest.approx(1 - share, abs=1e-6)


def test_data_workers_give_the_in_process_run(two_classes, tmp_path):
    # Training and validation loaders with a spawned, persistent worker: the same losses and validation as
    # reading in this process, epoch after epoch.
    runs = {}
    for workers in (0, 1):
        config = tiny_config(tmp_path / f"run{workers}", epochs=2, num_workers=workers, precision="fp32")
        result = finetune(two_classes, two_classes, config, train_preset=FIXED, val_preset=FIXED)
        evals = read_metrics(tmp_path / f"run{workers}", kind="eval")
        runs[workers] = (result.losses, [(r["loss"], r["top1"], r["clips"]) for r in evals])
    assert len(runs[0][0]) == 4 and len(runs[0][1]) == 2
    assert runs[1] == runs[0]
