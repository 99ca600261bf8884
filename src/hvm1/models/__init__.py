"""HVM-1 model definitions: configs, the video ViT and MAE, masking."""

from __future__ import annotations

from typing import Any

import torch

from .configs import (
    ARCHITECTURES,
    CONFIG_CLASSES,
    SIZES,
    MAEConfig,
    UnknownArchitectureError,
    ViTConfig,
    get_config,
)
from .mae import VideoMAE
from .masking import MASK_TYPES, Masking, make_masking
from .vit import VideoViT

MODEL_CLASSES: dict[str, type[torch.nn.Module]] = {"vit": VideoViT, "mae": VideoMAE}


def build_model(config: ViTConfig, device: torch.device | str | None = None) -> VideoViT | VideoMAE:
    """Build the model a config describes (`MAEConfig` -> `VideoMAE`, `ViTConfig` -> `VideoViT`).

    Args:
        config: the architecture.
        device: where to build it (default the CPU); with 'meta' nothing is allocated or initialised: load
            weights with `load_state_dict(assign=True)`.

    Returns:
        The model, randomly initialised as published (empty on the meta device).
    """
    with torch.device(device or "cpu"):
        return VideoMAE(config) if isinstance(config, MAEConfig) else VideoViT(config)


def create_model(name: str, device: torch.device | str | None = None, **overrides: Any) -> VideoViT | VideoMAE:
    """Build a named architecture with random weights.

    Args:
        name: a named size: `vit_{tiny,small,base,large,huge}_patch{14,16}` or `mae_vit_..._patch{14,16}`.
        device: where to build it (see `build_model`).
        **overrides: config fields to change (`img_size=112`, `num_classes=174`, ...).

    Returns:
        The model (`VideoViT` or `VideoMAE`).

    Raises:
        UnknownArchitectureError: `name` is no named size; the message lists the valid names.
    """
    return build_model(get_config(name, **overrides), device=device)


__all__ = [
    "ARCHITECTURES",
    "CONFIG_CLASSES",
    "MASK_TYPES",
    "MODEL_CLASSES",
    "SIZES",
    "MAEConfig",
    "Masking",
    "UnknownArchitectureError",
    "VideoMAE",
    "VideoViT",
    "ViTConfig",
    "build_model",
    "create_model",
    "get_config",
    "make_masking",
]
