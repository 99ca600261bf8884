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
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hvm1.devices import resolve_precision
from hvm1.models import VideoViT

from .config import LR_SCHEDULES, TrainConfig

logger = logging.getLogger(__name__)


def decay_split(
    model: nn.Module, weight_decay: float, *, exempt: Callable[[str, nn.Parameter], bool]
) -> list[dict[str, Any]]:
    """Two groups of `model`'s trainable parameters, in `named_parameters` order: decayed, then exempt.

    Args:
        model: the module whose parameters are split.
        weight_decay: the decayed group's weight decay.
        exempt: says, from a parameter's name and the parameter, whether it takes no weight decay.

    Returns:
        `[{"names": decayed, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"names": exempt, "weight_decay": 0.0, "lr_scale": 1.0}]`.
    """
    decay: list[str] = []
    rest: list[str] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (rest if exempt(name, parameter) else decay).append(name)
    return [
        {"names": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"names": rest, "weight_decay": 0.0, "lr_scale": 1.0},
    ]


def pretraining_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups, decayed and exempt, as published for pretraining (see the module doc)."""
    return decay_split(model, weight_decay, exempt=_one_dimensional_or_bias)


def _one_dimensional_or_bias(name: str, parameter: nn.Parameter) -> bool:
    return parameter.ndim == 1 or name.endswith(".bias")


def finetuning_param_groups(model: VideoViT, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
    """Groups per (layer, decayed or exempt) with layer-wise lr decay, as published for finetuning (see the
    module doc): the top layer (final norm and head) keeps the full lr, the embeddings get the smallest."""
    layers = model.layer_ids()
    top = max(layers.values())
    exempt_names = model.no_weight_decay()
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.ndim == 1 or name in exempt_names
        group = groups.setdefault((layers[name], exempt), {
            "names": [], "weight_decay": 0.0 if exempt else weight_decay,
            "lr_scale": layer_decay ** (top - layers[name]),
        })
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


def torch_param_groups(model: nn.Module, param_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`param_groups` (names, as the functions above return them) as a torch optimizer takes them.

    Args:
        model: the module the names belong to.
        param_groups: groups of `{"names": [...], "weight_decay": ..., "lr_scale": ...}`.

    Returns:
        Groups of `{"params": [...], "weight_decay": ..., "lr_scale": ...}`, in the same order.
    """
    parameters = dict(model.named_parameters())
    return [
        {"params": [parameters[name] for name in group["names"]], "weight_decay": group["weight_decay"],
         "lr_scale": group["lr_scale"]}
        for group in param_groups
    ]


def lr_at(step: int, *, base_lr: float, warmup_steps: int, total_steps: int, schedule: str = "cosine",
          min_lr: float = 0.0) -> float:
    """The learning rate of optimizer step `step` (from 0): linear warmup over `warmup_steps`, then constant
    or a half cosine from `base_lr` to `min_lr` at `total_steps` (and `min_lr` after it).

    Args:
        step: the optimizer step, from 0.
        base_lr: the lr after warmup (with `base_lr=1.0`, `min_lr=0.0`: the factor of a group's own lr).
        warmup_steps: how many steps rise linearly to `base_lr` (step `s < warmup_steps` gets
            `base_lr * (s + 1) / warmup_steps`).
        total_steps: the step at which the cosine reaches `min_lr`.
        schedule: one of `LR_SCHEDULES` ("constant", "cosine").
        min_lr: where the cosine ends.

    Returns:
        The learning rate.

    Raises:
        ValueError: for a schedule not in `LR_SCHEDULES`.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step `step` (from 0) under `config` (`lr`, `warmup_steps`,
    `lr_schedule`, `min_lr`), as `lr_at` gives it."""
    if config.lr is None:
        raise ValueError("the config's lr is None: the job resolves it (finetuning: from blr) before training")
    return lr_at(step, base_lr=config.lr, warmup_steps=config.warmup_steps, total_steps=total_steps,
                 schedule=config.lr_schedule, min_lr=config.min_lr)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device` (None: float32), as `hvm1.devices.resolve_precision`
    decides it: 'auto' is bf16 where the device multiplies bf16 fast (CUDA with bf16, CPUs with AMX or
    AVX512-BF16), float32 elsewhere; fp16 is for CUDA only (it needs a gradient scaler)."""
    chosen = resolve_precision(precision, device)
    if chosen.name == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs CUDA (with a gradient scaler); on CPU use fp32 or bf16")
    logger.info("training precision %s (%s)", chosen.describe(), chosen.reason)
    return None if chosen.is_float32 else chosen.dtype
