"""Optimization primitives that take plain numbers, shared by training (`hvm1.train.optim` builds its
recipes on them) and the attentive probe of `hvm1.eval`: the learning-rate schedule, the split of a model's
parameters into decayed and exempt groups, and those groups as a torch optimizer takes them.

A group is `{"names": [...], "weight_decay": ..., "lr_scale": ...}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["LR_SCHEDULES", "decay_split", "lr_at", "torch_param_groups"]

#: The learning-rate schedules `lr_at` knows: after warmup, constant, or a half cosine to `min_lr`.
LR_SCHEDULES = ("constant", "cosine")


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


def torch_param_groups(model: nn.Module, param_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`param_groups` (names, as `decay_split` and the recipes of `hvm1.train.optim` return them) as a torch
    optimizer takes them.

    Args:
        model: the module the names belong to.
        param_groups: groups of `{"names": [...], "weight_decay": ..., "lr_scale": ...}`.

    Returns:
        Groups of `{"params": [...], "weight_decay": ..., "lr_scale": ...}`, in the same order.
    """
    parameters = dict(model.named_parameters())
    return [
        {
            "params": [parameters[name] for name in group["names"]],
            "weight_decay": group["weight_decay"],
            "lr_scale": group["lr_scale"],
        }
        for group in param_groups
    ]


def lr_at(
    step: int, *, base_lr: float, warmup_steps: int, total_steps: int, schedule: str = "cosine", min_lr: float = 0.0
) -> float:
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
