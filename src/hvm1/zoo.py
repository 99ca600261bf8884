"""The named HVM-1 models and `load_model`, the one entry point that turns a name or a file into a model."""

from __future__ import annotations

import os
from typing import Any

import torch

from .checkpoint import load_checkpoint


def load_model(
    name_or_path: str | os.PathLike,
    *,
    pretrained: bool = True,
    model_type: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    **config_overrides: Any,
) -> torch.nn.Module:
    """Load an HVM-1 model from a checkpoint file, in eval mode, float32 unless `dtype` says otherwise.

    The file may be a published training checkpoint (`model`, `optimizer`, `epoch`, `scaler`, `args`), a
    dict with `model_state`, a bare state dict, or a `.safetensors` file from `hvm1 convert`. It is read
    safely (no code runs on unpickling) and lazily (memory-mapped; optimizer state is never read), and the
    model is built on the meta device before the weights are assigned. `model_type='vit'` builds the
    encoder alone from an MAE checkpoint. `config_overrides` set architecture fields the file can't tell
    (e.g. `num_heads=4` for a width that matches no named size). `pretrained=False` builds the architecture
    only (randomly initialised, or empty with `device='meta'`).
    """
    return load_checkpoint(
        name_or_path, pretrained=pretrained, model_type=model_type, device=device, dtype=dtype, **config_overrides
    )
