"""hvm1: the HVM-1 video models (spatiotemporal MAE and ViT-H/14), as a library and a command-line tool.

The names below are imported on first use (PEP 562), so that `import hvm1.cli` and `hvm1 -h` do not pay for
importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the module that defines it.
_EXPORTS = {
    "CheckpointError": "checkpoint",
    "save_safetensors": "checkpoint",
    "DownloadError": "hub",
    "MAEConfig": "models",
    "VideoMAE": "models",
    "VideoViT": "models",
    "ViTConfig": "models",
    "build_model": "models",
    "create_model": "models",
    "UnknownModelError": "zoo",
    "get_available_models": "zoo",
    "load_model": "zoo",
    "preprocessing_for": "zoo",
}

__all__ = [
    "CheckpointError",
    "DownloadError",
    "MAEConfig",
    "UnknownModelError",
    "VideoMAE",
    "VideoViT",
    "ViTConfig",
    "build_model",
    "create_model",
    "get_available_models",
    "load_model",
    "preprocessing_for",
    "save_safetensors",
]

if TYPE_CHECKING:
    from .checkpoint import CheckpointError, save_safetensors
    from .hub import DownloadError
    from .models import MAEConfig, VideoMAE, VideoViT, ViTConfig, build_model, create_model
    from .zoo import UnknownModelError, get_available_models, load_model, preprocessing_for


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hvm1' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
