"""The training defaults against facts of the published training code and scripts (issue 10, part 3).

Published finetuning (the mae_st Kinetics loader in mode "finetune", as the published finetuning scripts
run it): train_jitter_scales (256, 320) for the short side at 224 px, jitter_scales_relative (0.08, 1.0)
and jitter_aspect_relative (0.75, 1.3333) for the random resized crop, a horizontal flip; no RandAugment
(rand_aug off) and so no random erasing, which that loader applies only on its rand_aug branch. The
published logs' line per epoch holds the epoch-mean training loss.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from hvm1.data import sample_generator
from hvm1.data.transforms import random_resized_crop
from hvm1.distributed import DistributedContext
from hvm1.train import FinetuneConfig, pretrain
from hvm1.train.finetuning import finetune_task
from hvm1.train.metrics import read_metrics
from hvm1.zoo import preprocessing_for
from reference_data import VIT_CHECKPOINT
from train_helpers import tiny_pretrain_config

PUBLISHED_SHORT_SIDE_224 = (256, 320)
PUBLISHED_CROP_AREA = (0.08, 1.0)
PUBLISHED_CROP_ASPECT = (0.75, 1.3333)


def test_finetuning_augmentation_defaults(two_classes, tmp_path):
    config = FinetuneConfig(
        out_dir=str(tmp_path / "run"),
        model=str(VIT_CHECKPOINT),
        overrides={"num_heads": 4},
        num_workers=0,
        tensorboard=False,
    )
    assert config.random_erasing == 0.0
    task, _ = finetune_task(two_classes, two_classes, config, DistributedContext())
    dataset = task.dataset
    preset = dataset.preset
    img_size = preset.img_size  # the tiny model: 56 px, so the published sizes scale by 56 / 224
    assert preset.short_side == tuple(round(side * img_size / 224) for side in PUBLISHED_SHORT_SIDE_224)
    assert preset.crop == "random_resized" and preset.crop_scale == PUBLISHED_CROP_AREA
    assert preset.crop_ratio == pytest.approx(PUBLISHED_CROP_ASPECT, abs=1e-4)
    assert preset.flip and preset.start == "random"
    assert dataset.random_erasing == 0.0
    # Nothing else touches a training clip: it is exactly the preset's random read with the sample's generator.
    item = dataset[(0, 1)]
    expected, _ = preset.load(dataset.files[1], generator=sample_generator(config.seed, 0, 1, 0))
    assert torch.equal(item.video[0], expected)


def test_published_model_trains_with_the_published_short_side():
    preset = preprocessing_for("vit_hvm1_none").training(PUBLISHED_CROP_AREA)
    assert preset.short_side == PUBLISHED_SHORT_SIDE_224 and preset.img_size == 224


def test_random_erasing_stays_available(two_classes, tmp_path):
    config = FinetuneConfig(
        out_dir=str(tmp_path / "run"),
        model=str(VIT_CHECKPOINT),
        overrides={"num_heads": 4},
        num_workers=0,
        tensorboard=False,
        random_erasing=1.0,
    )
    task, _ = finetune_task(two_classes, two_classes, config, DistributedContext())
    item = task.dataset[(0, 1)]
    plain, _ = task.dataset.preset.load(task.dataset.files[1], generator=sample_generator(config.seed, 0, 1, 0))
    assert not torch.equal(item.video[0], plain)  # every frame has a rectangle of noise


def test_random_resized_crop_draws_within_the_published_area_and_aspect():
    # An image whose pixels hold their own (row, column): a crop, upsampled, shows its box in its extremes.
    height = width = 120
    rows = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float64)[None, :].expand(height, width)
    image = torch.stack([rows, cols])  # (2, H, W)
    generator = torch.Generator().manual_seed(0)
    areas, aspects = [], []
    for _ in range(300):
        crop = random_resized_crop(image, 2 * height, PUBLISHED_CROP_AREA, PUBLISHED_CROP_ASPECT, generator)
        crop_h = float(crop[0].max() - crop[0].min()) + 1
        crop_w = float(crop[1].max() - crop[1].min()) + 1
        areas.append(crop_h * crop_w / (height * width))
        aspects.append(crop_w / crop_h)
    # Within a pixel of the box (rounding of its sides), the draws cover the published ranges and stay in them.
    assert PUBLISHED_CROP_AREA[0] * 0.9 <= min(areas) < 0.15 and 0.85 < max(areas) <= 1.0
    assert (
        PUBLISHED_CROP_ASPECT[0] * 0.95 <= min(aspects) < 0.85 and 1.2 < max(aspects) <= PUBLISHED_CROP_ASPECT[1] / 0.95
    )


@pytest.mark.slow
def test_epoch_mean_loss_line(small_videos, tmp_path):
    config = tiny_pretrain_config(tmp_path / "whole", epochs=2, precision="fp32", save_every=1)
    result = pretrain(small_videos, config)
    steps = read_metrics(tmp_path / "whole")
    epochs = read_metrics(tmp_path / "whole", kind="epoch")
    assert [line["epoch"] for line in epochs] == [0, 1] and len(steps) == len(result.losses) == 4
    for line in epochs:
        losses = [record["loss"] for record in steps if record["epoch"] == line["epoch"]]
        assert line["steps"] == len(losses) == 2
        assert line["loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-12)
        assert math.isfinite(line["loss"])
    # A run stopped inside epoch 0 and resumed writes the epoch lines the uninterrupted one wrote.
    split = tmp_path / "split"
    pretrain(small_videos, dataclasses.replace(config, out_dir=str(split), max_steps=1))
    pretrain(small_videos, dataclasses.replace(config, out_dir=str(split), resume="auto"))
    resumed = read_metrics(split, kind="epoch")
    assert [line["steps"] for line in resumed] == [2, 2]
    assert [line["loss"] for line in resumed] == pytest.approx([line["loss"] for line in epochs], rel=1e-6)
