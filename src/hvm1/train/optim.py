"""Optimizer and precision setup: the parameter groups of the published recipes (from what the model says
about itself), AdamW over them, the learning-rate schedule, and the autocast dtype.

Pretraining (the published MAE code's `add_weight_decay`): weight decay on every parameter except the 1-D
ones (biases, norms) and those whose name ends in `.bias`; the position embeddings, `cls_token`,
`decoder_cls_token` and `mask_token` are 3-D and are decayed. Finetuning (the published `param_groups_lrd`):
1-D parameters and the model's `no_weight_decay()` (the CLS token and position embeddings) are exempt, and
each parameter's lr is scaled by `layer_decay ** (top - layer)` with the layer from the model's
`layer_ids()`. A group is `{"names": [...], "weight_decay": ..., "lr_scale": ...}`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from hvm1.devices import resolve_precision
from hvm1.models import VideoViT
from hvm1.optimization import decay_split, lr_at, torch_param_groups

from .config import TrainConfig

logger = logging.getLogger(__name__)


def pretraining_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups, decayed and exempt, as published for pretraining (see the module doc)."""
    return decay_split(model, weight_decay, exempt=_one_dimensional_or_bias)


def _one_dimensional_or_bias(name: str, parameter: nn.Parameter) -> bool:
    return parameter.ndim == 1 or name.endswith(".bias")


def finetuning_param_groups(model: VideoViT, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
    """Groups per (layer, decayed or exempt) with layer-wise lr decay, as published for finetuning (see the
    module doc): the top layer (final norm and head) keeps the full lr, the embeddings get the smallest.

    Args:
        model: the ViT being finetuned; its `layer_ids()` and `no_weight_decay()` say where each parameter is.
        weight_decay: the decayed groups' weight decay.
        layer_decay: the lr factor per layer below the top.

    Returns:
        The groups, by layer and then decayed before exempt, each name in `named_parameters` order.
    """
    layers = model.layer_ids()
    top = max(layers.values())
    exempt_names = model.no_weight_decay()
    split = decay_split(model, weight_decay, exempt=lambda name, parameter: parameter.ndim == 1 or name in exempt_names)
    groups: dict[tuple[int, int], dict[str, Any]] = {}  # (layer, 0 decayed / 1 exempt) -> group
    for kind, part in enumerate(split):
        for name in part["names"]:
            group = groups.setdefault(
                (layers[name], kind),
                {"names": [], "weight_decay": part["weight_decay"], "lr_scale": layer_decay ** (top - layers[name])},
            )
            group["names"].append(name)
    return [groups[key] for key in sorted(groups)]


def make_optimizer(model: nn.Module, param_groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with `config.betas` over `param_groups` (as the functions above return them), each group keeping
    its `lr_scale` for `learning_rate`; the lr itself is set before every step. Fused on CPU and CUDA."""
    parameters = dict(model.named_parameters())
    groups = torch_param_groups(model, param_groups)
    device = next(iter(parameters.values())).device.type if parameters else "cpu"
    # One fused kernel over all the parameters instead of a loop of per-tensor ops (benchmarks/bench_train_parts.py
    # times both; the update differs from the loop's by float32 rounding). Where torch has no fused AdamW (MPS
    # and others), the default loop.
    fused = device in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=learning_rate(config, 0, 1), betas=config.betas, fused=fused or None)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step `step` (from 0) under `config` (`lr`, `warmup_steps`,
    `lr_schedule`, `min_lr`), as `lr_at` gives it."""
    if config.lr is None:
        raise ValueError("the config's lr is None: the job resolves it (finetuning: from blr) before training")
    return lr_at(
        step,
        base_lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=total_steps,
        schedule=config.lr_schedule,
        min_lr=config.min_lr,
    )


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device` (None: float32), as `hvm1.devices.resolve_precision`
    decides it: 'auto' is bf16 where the device multiplies bf16 fast (CUDA with bf16, CPUs with AMX or
    AVX512-BF16), float32 elsewhere; fp16 is for CUDA only (it needs a gradient scaler)."""
    chosen = resolve_precision(precision, device)
    if chosen.name == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs CUDA (with a gradient scaler); on CPU use fp32 or bf16")
    logger.info("training precision %s (%s)", chosen.describe(), chosen.reason)
    return None if chosen.is_float32 else chosen.dtype
