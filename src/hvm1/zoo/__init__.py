"""The named HVM-1 models, split by job: the table of published models (`hvm1.zoo.table`), how each reads its
inputs (`hvm1.zoo.preprocessing`), and loading a name or a file into a model (`hvm1.zoo.loading`).
Everything public in them is importable from here.
"""

from __future__ import annotations

from .loading import (
    LoadedModel,
    convert,
    file_stem,
    load_for_command,
    load_for_inputs,
    load_model,
    preprocessing_for,
)
from .preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PREPROCESSING_METADATA_KEY,
    VIDEO_MEAN,
    VIDEO_STD,
    Preprocessing,
    preprocessing_from_json,
    preprocessing_to_json,
    sized_preprocessing,
)
from .table import (
    FINETUNINGS,
    HUB_REPO,
    MODELS,
    PRETRAININGS,
    PUBLISHED_DAVIS,
    PUBLISHED_TOP1,
    UnknownModelError,
    ZooEntry,
    cached_path,
    first_use_download,
    get_available_models,
    get_model_entry,
    published_file_size,
    weights_nbytes,
)

__all__ = [
    "FINETUNINGS",
    "HUB_REPO",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadedModel",
    "MODELS",
    "PREPROCESSING_METADATA_KEY",
    "PRETRAININGS",
    "PUBLISHED_DAVIS",
    "PUBLISHED_TOP1",
    "Preprocessing",
    "UnknownModelError",
    "VIDEO_MEAN",
    "VIDEO_STD",
    "ZooEntry",
    "cached_path",
    "convert",
    "file_stem",
    "first_use_download",
    "get_available_models",
    "get_model_entry",
    "load_for_command",
    "load_for_inputs",
    "load_model",
    "preprocessing_for",
    "preprocessing_from_json",
    "preprocessing_to_json",
    "published_file_size",
    "sized_preprocessing",
    "weights_nbytes",
]
