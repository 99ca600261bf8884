"""hvm1: the HVM-1 video models (spatiotemporal MAE and ViT-H/14), as a library and a command-line tool."""

from .checkpoint import CheckpointError, save_safetensors
from .hub import DownloadError
from .models import MAEConfig, VideoMAE, VideoViT, ViTConfig, build_model, create_model
from .zoo import UnknownModelError, get_available_models, load_model, preprocessing_for

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "DownloadError", "MAEConfig", "UnknownModelError", "VideoMAE", "VideoViT", "ViTConfig",
    "build_model", "create_model", "get_available_models", "load_model", "preprocessing_for", "save_safetensors",
]
