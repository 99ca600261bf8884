"""HVM-1 model definitions: configs, the video ViT and MAE, masking."""

from __future__ import annotations

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

    With `device='meta'` nothing is allocated or initialised: load weights with `load_state_dict(assign=True)`.
    """
    with torch.device(device or "cpu"):
        return VideoMAE(config) if isinstance(config, MAEConfig) else VideoViT(config)


def create_model(name: str, device: torch.device | str | None = None, **overrides) -> VideoViT | VideoMAE:
    """Build a named architecture (`vit_huge_patch14`, `mae_vit_base_patch16`, ...) with random weights."""
    return build_model(get_config(name, **overrides), device=device)


__all__ = [
    "ARCHITECTURES", "CONFIG_CLASSES", "MASK_TYPES", "MODEL_CLASSES", "SIZES", "MAEConfig", "Masking",
    "UnknownArchitectureError", "VideoMAE", "VideoViT", "ViTConfig", "build_model", "create_model",
    "get_config", "make_masking",
]
