"""`load_model`, the one entry point that turns a zoo name or a file into a model, and the loading every
command shares (`load_for_inputs`, `load_for_command`); `convert` writes a model as one .safetensors file."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hvm1.checkpoint import (
    CheckpointContents,
    CheckpointError,
    as_dtype,
    attach_class_names,
    check_overrides,
    load_checkpoint,
    read_checkpoint,
    save_safetensors,
    shape_config,
)
from hvm1.models import MAEConfig, VideoMAE, VideoViT, ViTConfig, build_model
from hvm1.progress import SILENT, Progress
from hvm1.settings import ModelSettings

from .preprocessing import PREPROCESSING_METADATA_KEY, Preprocessing, preprocessing_from_json, preprocessing_to_json
from .table import MODELS, ZooEntry, first_use_download, get_model_entry


def preprocessing_for(
    source: str | os.PathLike | ZooEntry | ViTConfig | torch.nn.Module, model: VideoViT | VideoMAE | None = None
) -> Preprocessing:
    """The preprocessing of a zoo name or entry, a checkpoint file, a model or a config.

    A file converted from a zoo model (`hvm1 convert NAME`) or written by `hvm1 pretrain`/`finetune` records
    its model's preprocessing; any other file, model or config gets the video mean/std and the settings for
    its image size and frames. A model doesn't know how it was trained: pass its zoo name or file when it
    has one (the imagenet-2pt models expect the ImageNet mean/std and one image repeated to 16 frames).

    Args:
        source: a zoo name or entry, a checkpoint file, a model or a config.
        model: the model built from `source` (overrides included): the preprocessing is then at that
            model's size and frames.

    Returns:
        Its `Preprocessing`: size, frames, mean/std, image or video, and each command's preset.

    Raises:
        UnknownModelError: a name that is neither in the zoo nor an existing file.
    """
    pre = _preprocessing_of(source)
    if model is not None:
        pre = pre.at_size(model.config.img_size, model.config.num_frames)
    return pre


def _preprocessing_of(source: str | os.PathLike | ZooEntry | ViTConfig | torch.nn.Module) -> Preprocessing:
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        return _recorded_preprocessing(read_checkpoint(source))
    if isinstance(source, (str, os.PathLike)):
        source = get_model_entry(str(source))
    if isinstance(source, ZooEntry):
        return source.preprocessing
    config = source if isinstance(source, ViTConfig) else getattr(source, "config", None)
    if not isinstance(config, ViTConfig):
        raise TypeError(f"expected a zoo name, file, ZooEntry, ViTConfig or hvm1 model, got {type(source).__name__}")
    return Preprocessing(img_size=config.img_size, num_frames=config.num_frames)


def _recorded_preprocessing(contents: CheckpointContents) -> Preprocessing:
    recorded = contents.metadata.get(PREPROCESSING_METADATA_KEY) or contents.args.get(PREPROCESSING_METADATA_KEY)
    if recorded:
        return preprocessing_from_json(recorded)
    shapes = contents.config or shape_config(contents)
    if not {"img_size", "num_frames"} <= shapes.keys():
        raise CheckpointError(f"cannot tell the image size and frames of {contents.path} from its tensors")
    return Preprocessing(img_size=shapes["img_size"], num_frames=shapes["num_frames"])


def _entry_config(entry: ZooEntry, model_type: str | None) -> tuple[str, ViTConfig]:
    model_type = model_type or entry.model_type
    if model_type == entry.model_type:
        return model_type, entry.config
    if model_type == "vit" and isinstance(entry.config, MAEConfig):
        return model_type, entry.config.encoder_config()
    raise ValueError(
        f"model {entry.name!r} is a {entry.model_type} and cannot be loaded as model_type={model_type!r}"
        + (f"; use {entry.name.replace('vit_', 'mae_', 1)!r}" if entry.finetuning == "none" else "")
    )


def _with_overrides(config: ViTConfig, overrides: dict[str, Any]) -> ViTConfig:
    overrides = check_overrides(overrides, type(config))
    return config.replace(**overrides) if overrides else config


def load_model(
    name_or_path: str | os.PathLike,
    *,
    pretrained: bool = True,
    model_type: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    full_download: bool = False,
    rules: Collection[str] = (),
    seed: int = 0,
    report: list[str] | None = None,
    **config_overrides: Any,
) -> VideoViT | VideoMAE:
    """Load an HVM-1 model by zoo name (see `get_available_models`) or from a checkpoint file, in eval mode.

    A zoo name fetches the weights in its file from the hub once, about a third of it (`hub.fetch_weights`:
    the optimizer state is skipped), builds the entry's architecture and loads the weights, which must fit it
    exactly. A file may be a published training checkpoint, a state dict, or a `.safetensors` file from
    `hvm1 convert`. Either way the file is read safely and memory-mapped (optimizer state is never read) into
    a model built on the meta device. A ViT with a head carries the names of its outputs as
    `model.class_names`: a zoo model's published label set, or the names a file records (`hvm1 convert`,
    `hvm1 finetune`); None where the file records none.

    Args:
        name_or_path: a zoo name or a checkpoint file.
        pretrained: False builds the architecture only, without downloading (randomly initialised, or empty
            with `device='meta'`).
        model_type: 'vit' builds the encoder alone from an MAE checkpoint; 'mae' or None: what the file holds.
        device: where the weights go (default: the CPU, memory-mapped from the file).
        dtype: the weights' dtype (default float32).
        revision: the hub revision of a zoo model's file.
        cache_dir: the hub cache folder (default: the `HF_*` environment's).
        full_download: download a zoo model's whole file, verified by its SHA-256, instead of its weights alone.
        rules: opt-in key rules: 'fresh-head' with `num_classes=N` replaces a missing head, or one of another
            class count, by a new one drawn with `seed` (weight normal(0, 0.02), bias as `nn.Linear` makes it).
        seed: the seed of a fresh head.
        report: a list that gets a line per rule that applied.
        **config_overrides: architecture fields, e.g. `num_heads=4` for a file whose width matches no named
            size, or `drop_path_rate=0.1` for finetuning.

    Returns:
        The model (`VideoViT` or `VideoMAE`) in eval mode.

    Raises:
        UnknownModelError: an unknown name that is not an existing file either.
        FileNotFoundError: a path that names no file.
        DownloadError: a zoo model's file can't be fetched.
        CheckpointError: the file is no checkpoint, or its tensors don't fit the architecture.
    """
    if Path(name_or_path).is_file():
        return load_checkpoint(
            name_or_path,
            pretrained=pretrained,
            model_type=model_type,
            device=device,
            dtype=dtype,
            rules=rules,
            seed=seed,
            report=report,
            **config_overrides,
        )
    name = str(name_or_path)
    if name not in MODELS and (os.sep in name or "/" in name or Path(name).suffix in (".pth", ".pt", ".safetensors")):
        raise FileNotFoundError(f"checkpoint file not found: {name}")
    entry = get_model_entry(name)
    model_type, config = _entry_config(entry, model_type)
    config = _with_overrides(config, config_overrides)
    if not pretrained:
        return attach_class_names(build_model(config, device=device), entry.class_names).to(as_dtype(dtype)).eval()
    if torch.device(device or "cpu").type == "meta":
        raise ValueError("device='meta' builds an empty model: pass pretrained=False with it")
    from hvm1.hub import fetch_weights  # huggingface_hub (slow to import) only where the hub is asked

    path = fetch_weights(
        entry.repo_id,
        entry.filename,
        revision=revision,
        cache_dir=cache_dir,
        description=f"model {name!r}",
        load_hint=f"hvm1.load_model('/path/to/{entry.filename}', model_type={model_type!r})",
        full_download=full_download,
    )
    try:
        model = load_checkpoint(
            path,
            config=config,
            model_type=model_type,
            device=device,
            dtype=dtype,
            rules=rules,
            seed=seed,
            report=report,
        )
        return attach_class_names(model, entry.class_names)
    except CheckpointError as error:
        raise CheckpointError(f"model {name!r} ({entry.filename} from {entry.repo_id}): {error}") from None


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded for a command, with what the command needs to know about it: `source` (the zoo name,
    or the checkpoint file's resolved path), `stem` (for output file names: the zoo name or `file_stem`)
    and `preprocessing` (the entry's or the file's, at the size and frames the model was built with)."""

    model: torch.nn.Module
    source: str
    stem: str
    preprocessing: Preprocessing


def file_stem(path: str | os.PathLike) -> str:
    """The name output files give a checkpoint file: its stem, and for a training run's own checkpoints
    (`checkpoint-last.pth`, `-best`, `-previous`, the same in every run) the run folder's name before it:
    `runs/pre/checkpoint-last.pth` -> 'pre-last'.

    Args:
        path: the checkpoint file.

    Returns:
        The name.
    """
    path = Path(path)
    if path.stem.startswith("checkpoint-") and path.parent.name:
        return f"{path.parent.resolve().name}-{path.stem.removeprefix('checkpoint-')}"
    return path.stem


def load_for_inputs(
    name_or_path: str | os.PathLike,
    *,
    model_type: str | None = None,
    device: torch.device | str | None = None,
    img_size: int | None = None,
    full_download: bool = False,
    progress: Progress = SILENT,
    **config_overrides: Any,
) -> LoadedModel:
    """`load_model` for a command that reads inputs: the model with its name and its preprocessing
    (`preprocessing_for(name_or_path, model)`).

    A zoo name is first built on the meta device, so a wrong model type, override or `img_size` fails before
    anything is downloaded; `progress` is then told what is about to be fetched when its weights are not cached
    yet. `img_size`, when given, is the image size the caller requires:
    a model of another size is a ValueError naming both.

    Args:
        name_or_path: a zoo name or a checkpoint file.
        model_type: as `load_model` takes it.
        device: where the weights go.
        img_size: the image size the caller requires, if any: a model of another size is refused.
        full_download: download a zoo model's whole file.
        progress: told, before a zoo model's weights are fetched, what the download is.
        **config_overrides: architecture fields.

    Returns:
        The `LoadedModel`: the model, its name and its preprocessing.

    Raises:
        ValueError: a model of another size than `img_size` (both named), a wrong model type or override.
    """
    is_file = Path(name_or_path).is_file()
    if not is_file and str(name_or_path) in MODELS:  # anything else: load_model names the missing file or name
        entry = MODELS[str(name_or_path)]
        if img_size and img_size != entry.img_size:
            raise ValueError(f"model {entry.name!r} takes {entry.img_size} px frames, not the {img_size} px asked for")
        load_model(entry.name, pretrained=False, device="meta", model_type=model_type, **config_overrides)
        if (sentence := first_use_download(entry.name, full_download)) is not None:
            progress.note(f"{sentence}, into the Hugging Face cache")
    if is_file:  # one read of the file for its weights and its preprocessing (unpickling is not free)
        contents = read_checkpoint(name_or_path)
        model = load_checkpoint(contents, model_type=model_type, device=device, **config_overrides)
        preprocessing = _recorded_preprocessing(contents)
    else:
        model = load_model(
            name_or_path, model_type=model_type, device=device, full_download=full_download, **config_overrides
        )
        preprocessing = _preprocessing_of(name_or_path)
    if img_size and img_size != model.config.img_size:
        raise ValueError(
            f"{name_or_path} holds a model of {model.config.img_size} px frames, not the {img_size} px asked for"
        )
    source = str(Path(name_or_path).resolve()) if is_file else str(name_or_path)
    stem = file_stem(name_or_path) if is_file else str(name_or_path)
    return LoadedModel(model, source, stem, preprocessing.at_size(model.config.img_size, model.config.num_frames))


def load_for_command(
    settings: ModelSettings,
    *,
    model_type: str | None = None,
    device: torch.device | str | None = None,
    default: str | None = None,
    progress: Progress = SILENT,
) -> LoadedModel:
    """The one way a command loads its model: `load_for_inputs` with the model settings of its config.

    Args:
        settings: The command's `model` or `checkpoint` (exactly one, unless `default` names the model to take
            when neither is set), `overrides` and `full_download`.
        model_type: 'mae' or 'vit' (None: what the file holds).
        device: Where the model goes (default: the CPU).
        default: The zoo name used when the settings name no model.
        progress: Told, before a zoo model's weights are fetched, what the download is.

    Returns:
        The model with its name and preprocessing.

    Raises:
        ValueError: Both or neither of model and checkpoint are set.
    """
    if settings.model is not None and settings.checkpoint is not None:
        raise ValueError("give one of --model NAME and --checkpoint FILE, not both")
    source = settings.model_source if settings.model_source is not None else default
    if source is None:
        raise ValueError("name the model: --model NAME (see `hvm1 list`) or --checkpoint FILE")

    return load_for_inputs(
        source,
        model_type=model_type,
        device=device,
        full_download=settings.full_download,
        progress=progress,
        **settings.overrides,
    )


def convert(
    name_or_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    dtype: torch.dtype | str | None = None,
    model_type: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    full_download: bool = False,
    **config_overrides: Any,
) -> Path:
    """Write a zoo model or checkpoint file as one `.safetensors` file: weights and full config, no optimizer
    state, the zoo model's preprocessing when the source has one, and the head's class names when the model
    has them (`load_model(output).class_names` reads them back); returns the output path.

    `load_model(output)` then needs no overrides and gives the same outputs (exactly in float32); `dtype`
    'bfloat16' or 'float16' halves the file. The other arguments are `load_model`'s.

    Args:
        name_or_path: a zoo name or a checkpoint file.
        output: the `.safetensors` file to write.
        dtype: the weights' dtype in the file; 'bfloat16' or 'float16' halves it.
        model_type: as `load_model` takes it.
        revision: as `load_model` takes it.
        cache_dir: as `load_model` takes it.
        full_download: as `load_model` takes it.
        **config_overrides: architecture fields, as `load_model` takes them.

    Returns:
        The output path.
    """
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ValueError(f"the output must be a .safetensors file, got {output}")
    model = load_model(
        name_or_path,
        model_type=model_type,
        revision=revision,
        cache_dir=cache_dir,
        full_download=full_download,
        **config_overrides,
    )
    if Path(name_or_path).is_file():
        recorded = read_checkpoint(name_or_path).metadata.get(PREPROCESSING_METADATA_KEY)
    else:
        recorded = preprocessing_to_json(get_model_entry(str(name_or_path)).preprocessing)
    metadata = {PREPROCESSING_METADATA_KEY: recorded} if recorded else None
    return save_safetensors(model, output, dtype=dtype, metadata=metadata)
