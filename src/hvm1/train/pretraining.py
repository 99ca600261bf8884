"""Continue (or start) spatiotemporal MAE pretraining on your own videos, with the published recipe by default.

Published (hvm1 at 224 px): AdamW betas (0.9, 0.95), weight decay 0.05 on all but 1-D parameters and biases
(position embeddings and tokens are decayed; see `hvm1.train.optim`), constant lr 1e-4, gradient clipping 0.1, mask
ratio 0.9 (0.95 at 448 px), 16 frames at sampling
rate 8 and 30 fps, 4 videos per GPU x repeat_aug 16 clips each, random resized crop (scale 0.5-1) and flip,
pixel loss without per-patch normalisation. Frame count, tubelet and image size follow the model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hvm1.data import TrainBatch, TrainClips, find_videos
from hvm1.distributed import process_group
from hvm1.models import MAEConfig, VideoMAE
from hvm1.zoo import PREPROCESSING_METADATA_KEY, preprocessing_for, preprocessing_to_json

from .config import TrainConfig, config_args, setting
from .loop import Task, TrainResult, run_task
from .optim import pretraining_param_groups
from .source import load_source_model

#: The published pretraining's random resized crop: area fraction 0.5-1.0.
PRETRAIN_CROP_SCALE = (0.5, 1.0)

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class PretrainConfig(TrainConfig):
    """MAE pretraining: the shared `TrainConfig` plus the model to train and the clip recipe.

    The model is `model` (a zoo name such as `mae_hvm1_none`, or a checkpoint file) or `arch` (a named size
    such as `mae_vit_base_patch16`, randomly initialised from `seed`), with `overrides` of architecture fields
    (e.g. `num_heads`, `img_size`, `num_frames`, `norm_pix_loss`). `mask_ratio` and `short_side` None take
    the model's `Preprocessing` (`hvm1.preprocessing_for`): published 0.9 and a [256, 320] jitter at 224 px,
    0.95 and 448 at 448 px.
    """

    model: str | None = setting(None, flag=False, help="a zoo name or checkpoint file (--model, --checkpoint)")
    arch: str | None = setting(None, help="start from scratch with a named size, e.g. mae_vit_base_patch16")
    overrides: dict[str, Any] = setting(default_factory=dict, flag=False, help="architecture fields (--set)")
    weight_decay: float = setting(
        0.05,
        help="AdamW weight decay, on all but 1-D parameters and biases (position "
        "embeddings and tokens are decayed, as published)",
    )
    mask_ratio: float | None = setting(
        None, help="the fraction of tokens masked (default: the model's, 0.9; 0.95 at 448 px)"
    )
    repeat_aug: int = setting(16, help="clips drawn from each video per step")
    short_side: int | tuple[int, int] | None = setting(
        None,
        metavar="N|LOW,HIGH",
        help="decode short side, or a range drawn per clip (default: the model's, "
        "256,320 at 224 px; the image size from 448 px up)",
    )
    crop_scale: tuple[float, float] = setting(
        PRETRAIN_CROP_SCALE, metavar=("LOW", "HIGH"), help="area fraction of the random resized crop"
    )


def _source_args(model: str | os.PathLike | None, arch: str | None, built: VideoMAE) -> dict[str, Any]:
    # The architecture fields first (so hvm1.load_model reads the checkpoint), `model` as published (a name).
    return {**built.config.to_dict(), "model": arch if arch is not None else str(model)}


def pretrain(
    data: str | os.PathLike | Iterable[str | os.PathLike],
    config: PretrainConfig,
    *,
    preset=None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """MAE-pretrain on the videos in `data` (files, or folders searched recursively) as `config` says.

    Run it plainly for one process, or under `torchrun` for DDP (FSDP2 with `config.fsdp`); only rank 0
    writes the run folder: `config.json`, `metrics.jsonl`, `checkpoint-last.pth` (loadable with
    `hvm1.load_model`).

    Args:
        data: video files, or folders searched recursively.
        config: the run's settings (the published recipe by default).
        preset: replaces the published clip reading (any object with the `load(path, generator=...)` method
            of the `hvm1.data` presets).
        on_record: called with each record as it is written to `metrics.jsonl`.

    Returns:
        What the run did: its steps and losses, the checkpoints kept, the files skipped, what ended it.

    Raises:
        ValueError: no video in `data`, or a model that is no MAE.
        TrainingError: the run had to stop (a NaN loss, no checkpoint to resume from; see `run_task`).
    """
    files = find_videos(data)
    if not files:
        raise ValueError(f"no video files found in {data}")
    with process_group(config.device) as context:
        model = load_source_model(config.model, config.arch, config.overrides, "mae", config.seed)
        if not isinstance(model, VideoMAE):
            raise ValueError(f"pretraining needs an MAE (with a decoder); {config.model or config.arch} is a ViT")
        task = pretrain_task(model, files, config, preset)
        return run_task(task, config, context, on_record)


def pretrain_task(model: VideoMAE, files: Sequence[str | os.PathLike], config: PretrainConfig, preset=None) -> Task:
    """The `Task` of MAE pretraining `model` on `files` (see `pretrain`)."""
    cfg: MAEConfig = model.config
    pre = dataclasses.replace(
        preprocessing_for(model if config.model is None else config.model, model), autorotate=config.autorotate
    )
    mask_ratio = config.mask_ratio if config.mask_ratio is not None else pre.mask_ratio
    if preset is None:
        preset = dataclasses.replace(
            pre.training(config.crop_scale, config.sampling_rate, config.short_side), target_fps=config.target_fps
        )
    dataset = TrainClips(files, preset, repeat_aug=config.repeat_aug, seed=config.seed, mask_tokens=cfg.num_patches)
    logger.info(
        "pretraining %s on %d videos: mask ratio %.2f, %d clips per video",
        type(model).__name__,
        len(files),
        mask_ratio,
        config.repeat_aug,
    )

    def loss(wrapped: torch.nn.Module, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        value, _, _ = wrapped(batch.video, mask_ratio=mask_ratio, noise=batch.noise)
        return value, {}

    def empty_batch() -> TrainBatch:
        clips = config.repeat_aug
        video = torch.zeros(clips, cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size)
        return TrainBatch(
            video,
            torch.zeros(clips, dtype=torch.long),
            torch.rand(clips, cfg.num_patches),
            torch.zeros(1, dtype=torch.long),
            [],
        )

    args = {
        **config_args(config),
        **_source_args(config.model, config.arch, model),
        "mask_ratio": mask_ratio,
        PREPROCESSING_METADATA_KEY: preprocessing_to_json(pre),
        "job": "pretrain",
    }
    return Task(
        model=model.train(),
        dataset=dataset,
        param_groups=pretraining_param_groups(model, config.weight_decay),
        loss=loss,
        empty_batch=empty_batch,
        args=args,
    )
