"""The model a training run starts from: a zoo name or checkpoint file, or a named size from scratch."""

from __future__ import annotations

import os
from typing import Any

import torch

from hvm1.models import VideoMAE, VideoViT, build_model, get_config


def load_source_model(
    model: str | os.PathLike | None,
    arch: str | None,
    overrides: dict[str, Any],
    model_type: str,
    seed: int,
) -> VideoViT | VideoMAE:
    """The model a run starts from: `model` (zoo name or checkpoint, through `hvm1.load_model`) or `arch`
    (a named size, randomly initialised with `seed` so every rank builds the same weights). Exactly one of
    the two; raises ValueError otherwise."""
    from hvm1 import load_model

    if arch is not None and model is None:
        torch.manual_seed(seed)
        return build_model(get_config(arch, **overrides))
    if model is not None and arch is None:
        return load_model(model, model_type=model_type, **overrides)
    raise ValueError("give exactly one of a model (zoo name or checkpoint file) and an architecture name")
