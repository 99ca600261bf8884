"""Finetune a video ViT for recognition with few labelled examples, with the published recipe by default.

Published (few-shot video, 224 px): lr = blr x total batch / 256 with blr 1.2e-3 (6e-4 at 448 px), layer-wise
lr decay 0.8, AdamW weight decay 1e-4 (not on 1-D parameters, the CLS token and position embeddings; see
`hvm1.train.optim`), drop path 0.1, head dropout 0.3, label smoothing 0.1, gradient clipping 5; augmentation:
short side drawn in [256, 320] (at 224 px), random resized crop (area 0.08-1, aspect 0.75-1.33) and horizontal
flip, and no random erasing and no RandAugment (the published loader erases only on its RandAugment branch,
which the published finetuning runs never enabled; `random_erasing` > 0 opts in); no mixup or cutmix, 1 GPU x
16 x 2 accumulation; the checkpoint kept was the best by validation top-5. `shots` draws K examples per class.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from hvm1.checkpoint import FRESH_HEAD
from hvm1.data import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ClipDataset,
    TrainBatch,
    TrainClips,
    collate,
    labelled_files,
    sample_generator,
    select_shots,
)
from hvm1.distributed import DistributedContext, all_reduce_sum, process_group
from hvm1.eval.predictions import ClassificationTally
from hvm1.labels import CLASS_NAMES_METADATA_KEY, class_names_to_json
from hvm1.models import VideoViT, ViTConfig
from hvm1.zoo import (
    PREPROCESSING_METADATA_KEY,
    load_model,
    preprocessing_for,
    preprocessing_to_json,
)

from .config import TrainConfig, config_args, setting
from .loop import Task, TrainResult, run_task, worker_options
from .optim import finetuning_param_groups
from .source import load_source_model

logger = logging.getLogger(__name__)

SELECT_METRICS = ("top1", "top5")
#: The published finetuning's random resized crop: area fraction 0.08-1.0.
FINETUNE_CROP_SCALE = (0.08, 1.0)


@dataclass(kw_only=True)
class FinetuneConfig(TrainConfig):
    """Finetuning: the shared `TrainConfig` plus the model, the classes and the recipe.

    `model` is a zoo name (e.g. `vit_hvm1_none`) or a checkpoint file (MAE, headless ViT, or a ViT with a head
    of any class count: a head that doesn't fit `num_classes` is replaced by a fresh one, rule 'fresh-head'),
    or `arch` a named size from scratch. `num_classes` None takes the training data's class count. `lr` None
    is `blr` x (batch_size x accum_iter x ranks) / 256, and `blr` None the model's `Preprocessing.blr` (published:
    1.2e-3, 6e-4 at 448 px).
    `shots` K keeps K examples per class, drawn with `seed`. `images`: the data are still images (each one a
    static clip, ImageNet mean/std). `select`: the validation metric that picks `checkpoint-best.pth`.
    """

    model: str | None = setting(None, flag=False, help="a zoo name or checkpoint file (--model, --checkpoint)")
    arch: str | None = setting(None, flag=False, help="a named size from scratch (library only)")
    overrides: dict[str, Any] = setting(default_factory=dict, flag=False, help="architecture fields (--set)")
    num_classes: int | None = setting(
        None, aliases=("--nb_classes",), help="classes of the head (default: the class count of TRAIN)"
    )
    lr: float | None = setting(None, help="learning rate (default: --blr x total batch / 256)")
    blr: float | None = setting(
        None, help="base lr: lr = blr x total batch / 256 (default: the model's, 1.2e-3; 6e-4 at 448 px)"
    )
    layer_decay: float = setting(0.8, help="layer-wise lr decay: block i of depth d gets decay ** (d - i)")
    weight_decay: float = setting(
        1e-4, help="AdamW weight decay, not on 1-D parameters, the CLS token and the position embeddings (as published)"
    )
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = 5.0
    drop_path: float = setting(0.1, help="stochastic depth rate (of the last block)")
    dropout: float = setting(0.3, help="dropout before the head")
    smoothing: float = setting(0.1, help="label smoothing")
    random_erasing: float = setting(
        0.0,
        aliases=("--reprob",),
        help="probability of erasing a random rectangle per frame (0: off, as the published runs)",
    )
    mixup: float = setting(0.0, help="mixup alpha (0: off)")
    cutmix: float = setting(0.0, help="cutmix alpha (0: off)")
    shots: int | None = setting(None, help="K examples per class, drawn with --seed (default: all)")
    select: str = setting("top1", choices=SELECT_METRICS, help="the validation metric of checkpoint-best.pth")
    images: bool = setting(False, help="the data are images (each one a static clip)")
    batch_size: int = 16
    accum_iter: int = 2
    repeat_aug: int = setting(1, help="clips drawn from each file per step")
    short_side: int | tuple[int, int] | None = setting(
        None,
        metavar="N|LOW,HIGH",
        help="decode short side, or a range drawn per clip (default: the model's training short side)",
    )
    crop_scale: tuple[float, float] = setting(
        FINETUNE_CROP_SCALE, metavar=("LOW", "HIGH"), help="area fraction of the random resized crop"
    )
    eval_batch_size: int = setting(8, help="validation clips per batch")


def finetune_model(config: FinetuneConfig, num_classes: int) -> tuple[VideoViT, str | None]:
    """The model to finetune, with `num_classes` outputs, drop path and head dropout as configured; and the
    loader's line when its rule 'fresh-head' replaced the source's head (none, or another class count)."""
    overrides = {
        "drop_path_rate": config.drop_path,
        "dropout": config.dropout,
        **config.overrides,
        "num_classes": num_classes,
    }
    if config.model is None or config.arch is not None:
        model = load_source_model(config.model, config.arch, overrides, "vit", config.seed)
        if not isinstance(model, VideoViT):
            raise ValueError(f"finetuning needs a ViT; {config.arch} is an MAE")
        return model, None
    report: list[str] = []
    model = load_model(
        config.model, model_type="vit", rules=(FRESH_HEAD,), seed=config.seed, report=report, **overrides
    )
    if not isinstance(model, VideoViT):
        raise ValueError(f"finetuning needs a ViT; {config.model} loaded as {type(model).__name__}")
    note = next((line for line in report if f"'{FRESH_HEAD}'" in line), None)
    if note is not None:
        logger.warning("%s", note)
    return model, note


def finetune(
    train: str | os.PathLike,
    val: str | os.PathLike,
    config: FinetuneConfig,
    *,
    train_preset=None,
    val_preset=None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Finetune for classification on `train`, validating on `val` after every epoch.

    Each is a folder of class subfolders (label = sorted subfolder index) or a `path,label` CSV; videos, or
    images with `config.images`. Writes `checkpoint-last.pth` and `checkpoint-best.pth` (by `config.select`)
    on rank 0, both loadable with `hvm1.load_model`. Works under torchrun like `pretrain`.

    Args:
        train: the training set: a folder of class subfolders or a `path,label` CSV.
        val: the validation set, in the same form.
        config: the run's settings (the published recipe by default).
        train_preset: replaces the published training clip reading.
        val_preset: replaces the published validation clip reading.
        on_record: called with each record as it is written to `metrics.jsonl`.

    Returns:
        What the run did, with `best_value` and `last_eval`.

    Raises:
        ValueError: an unknown `config.select`, a model that is no ViT, or unusable data.
        TrainingError: the run had to stop (see `run_task`).
    """
    if config.select not in SELECT_METRICS:
        raise ValueError(f"select must be one of {', '.join(SELECT_METRICS)}, got {config.select!r}")
    with process_group(config.device) as context:
        task, config = finetune_task(train, val, config, context, train_preset, val_preset)
        return run_task(task, config, context, on_record)


def finetune_task(
    train: str | os.PathLike,
    val: str | os.PathLike,
    config: FinetuneConfig,
    context: DistributedContext,
    train_preset=None,
    val_preset=None,
) -> tuple[Task, FinetuneConfig]:
    """The `Task` of `finetune`, and the config with the learning rate resolved."""
    # The listing's preset only decides which file extensions count; nothing is read here.
    extensions = IMAGE_EXTENSIONS if config.images else VIDEO_EXTENSIONS
    listing = labelled_files(train, extensions)
    files, labels = listing.files, listing.labels
    if not files:
        raise ValueError(f"no training files found in {train}")
    num_classes = config.num_classes or (len(listing.classes) if listing.classes else max(labels) + 1)
    if max(labels) >= num_classes or min(labels) < 0:
        raise ValueError(f"{train}: labels run from {min(labels)} to {max(labels)}, outside 0..{num_classes - 1}")
    if config.shots is not None:
        chosen = select_shots(labels, config.shots, config.seed)
        files, labels = [files[i] for i in chosen], [labels[i] for i in chosen]
        logger.info("%d-shot: %d training examples with seed %d", config.shots, len(files), config.seed)
    model, head_note = finetune_model(config, num_classes)
    cfg = model.config
    pre = replace(
        preprocessing_for(model if config.model is None else config.model, model), autorotate=config.autorotate
    )
    pre = pre.for_images() if config.images else pre.for_videos()
    blr = config.blr if config.blr is not None else pre.blr
    assert blr is not None  # Preprocessing fills blr for every size
    global_batch = config.batch_size * config.accum_iter * context.world_size
    config = replace(config, lr=config.lr if config.lr is not None else blr * global_batch / 256)
    if train_preset is None:
        if config.images:
            train_preset = pre.image_training(config.crop_scale)
        else:
            train_preset = replace(
                pre.training(config.crop_scale, config.sampling_rate, config.short_side), target_fps=config.target_fps
            )
    if val_preset is None:
        val_preset = (
            pre.image_evaluation()
            if config.images
            else replace(pre.evaluation(sampling_rate=config.sampling_rate), target_fps=config.target_fps)
        )
    dataset = TrainClips(
        files,
        train_preset,
        labels=labels,
        repeat_aug=config.repeat_aug,
        seed=config.seed,
        random_erasing=config.random_erasing,
    )
    val_set = ClipDataset.from_listing(labelled_files(val, extensions), val_preset, skip_bad=True)
    if listing.classes and val_set.classes and listing.classes != val_set.classes:
        raise ValueError(f"{train} and {val} have different class folders: {listing.classes} vs {val_set.classes}")
    loss = _loss_function(config, num_classes)
    args = {
        **config_args(config),
        **cfg.to_dict(),
        "model": config.arch if config.arch is not None else str(config.model),
        "nb_classes": num_classes,
        "fresh_head": head_note,
        PREPROCESSING_METADATA_KEY: preprocessing_to_json(pre),
        "job": "finetune",
    }
    # The head's names: the class folders trained on, else those of the model it started from (same head).
    names = listing.classes if listing.classes and len(listing.classes) == num_classes else model.class_names
    if names is not None:
        args[CLASS_NAMES_METADATA_KEY] = class_names_to_json(names)

    def empty_batch() -> TrainBatch:
        video = torch.zeros(config.repeat_aug, cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size)
        return TrainBatch(
            video, torch.zeros(config.repeat_aug, dtype=torch.long), None, torch.zeros(1, dtype=torch.long), []
        )

    task = Task(
        model=model.train(),
        dataset=dataset,
        param_groups=finetuning_param_groups(model, config.weight_decay, config.layer_decay),
        loss=loss,
        empty_batch=empty_batch,
        args=args,
        evaluate=validation_evaluator(val_set, cfg, config, context),
        select=config.select,
    )
    return task, config


def _loss_function(config: FinetuneConfig, num_classes: int):
    mixing = config.mixup > 0 or config.cutmix > 0

    def loss(model: nn.Module, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        video, label, index = batch.video, batch.label, batch.index
        assert video is not None and label is not None and index is not None  # run_task passes full batches
        target = F.one_hot(label, num_classes).float()
        target = target * (1 - config.smoothing) + config.smoothing / num_classes
        if mixing:
            video, target = mix_batch(video, target, config, index)
        logits = model(video)
        value = torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        correct = (logits.argmax(dim=-1) == label).sum().item()
        return value, {} if mixing else {"acc": float(correct)}

    return loss


def mix_batch(video: torch.Tensor, target: torch.Tensor, config: FinetuneConfig, index: torch.Tensor):
    """Mixup or CutMix (half of the time when both are on) of each clip with the batch's reversed order; the
    mixing is drawn from the batch's sample indices, so it is the same after a resume."""
    rng = np.random.default_rng(sample_generator(config.seed, *index.tolist()).initial_seed())
    use_cutmix = config.cutmix > 0 and (config.mixup == 0 or rng.random() < 0.5)
    alpha = config.cutmix if use_cutmix else config.mixup
    lam = float(rng.beta(alpha, alpha))
    flipped = video.flip(0)
    if use_cutmix:
        height, width = video.shape[-2:]
        cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        video = video.clone()
        video[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (height * width)
    else:
        video = video * lam + flipped * (1 - lam)
    return video, target * lam + target.flip(0) * (1 - lam)


class _Shard(Dataset):
    """This rank's share of the validation set, padded to the same length on every rank (FSDP needs every
    rank to run the same forwards); padding items are marked and not counted."""

    def __init__(self, dataset: ClipDataset, context: DistributedContext) -> None:
        self.dataset = dataset
        mine = list(range(context.rank, len(dataset), context.world_size))
        size = math.ceil(len(dataset) / context.world_size)
        self.items = [(i, True) for i in mine] + [(0, False)] * (size - len(mine))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        index, counted = self.items[position]
        return self.dataset[index], counted


def _collate_counted(items):
    return collate([item for item, counted in items if counted])


def validation_evaluator(val_set: ClipDataset, cfg: ViTConfig, config: FinetuneConfig, context: DistributedContext):
    """The function that validates a model on `val_set` after an epoch: top-1, top-5 and loss over this rank's
    shard, summed over the ranks, with the count of files skipped."""
    loader = DataLoader(
        _Shard(val_set, context),
        batch_size=config.eval_batch_size,
        collate_fn=_collate_counted,
        **worker_options(config.num_workers, context.device),
    )

    def evaluate(model: nn.Module) -> dict[str, float]:
        tally, skipped = ClassificationTally(), 0
        for batch in loader:
            skipped += len(batch.skipped)
            video = batch.video
            if video is None:  # every rank runs the model in step, with a stand-in
                video = torch.zeros(1, cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size)
            logits = model(video.to(context.device)).float()
            if batch.video is not None:
                tally.add(logits, batch.label.to(context.device))
        sums = torch.cat([tally.as_tensor(), torch.tensor([float(skipped)], dtype=torch.float64)])
        sums = all_reduce_sum(sums.to(context.device), context).cpu()
        total = ClassificationTally.from_tensor(sums[:4])
        return {
            "loss": total.loss,
            "top1": total.top1,
            "top5": total.top5,
            "clips": total.count,
            "skipped": int(sums[4]),
        }

    return evaluate
