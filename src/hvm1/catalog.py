"""What the zoo and checkpoint files hold: `hvm1 list`, `hvm1 info` and `hvm1 convert`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DownloadSettings, OverrideSettings, setting

__all__ = [
    "ConvertConfig",
    "InfoConfig",
    "InfoReport",
    "ListConfig",
    "ListReport",
    "convert_model",
    "describe",
    "list_models",
]

#: The weight precisions `hvm1 convert` writes.
CONVERT_DTYPES = ("float32", "bfloat16", "float16")
#: What `hvm1 convert --model-type` builds.
MODEL_TYPES = ("vit", "mae")


@dataclass(frozen=True, kw_only=True)
class ListConfig:
    """`hvm1 list`: takes no settings."""


@dataclass
class ListReport(Report):
    """The published models, a row each: name, type, pretraining, finetuning, size, classes, cached."""

    header: tuple[str, ...] = ("name", "type", "pretraining", "finetuning", "size", "classes", "cached")
    rows: list[tuple[str, ...]] = field(default_factory=list)


def list_models(config: ListConfig, progress: Progress = SILENT) -> ListReport:
    """`hvm1 list`: the published models, and which are cached.

    Args:
        config: No settings.
        progress: Unused (nothing takes long).

    Returns:
        A row per model.
    """
    from hvm1.zoo import MODELS, cached_path

    rows: list[tuple[str, ...]] = [
        (
            e.name,
            e.model_type,
            e.pretraining,
            e.finetuning,
            f"{e.img_size}px",
            str(e.num_classes or "-"),
            "yes" if cached_path(e.name) else "no",
        )
        for e in MODELS.values()
    ]
    return ListReport(rows=rows)


@dataclass(frozen=True, kw_only=True)
class InfoConfig(OverrideSettings):
    """`hvm1 info`: one published model or checkpoint file."""

    name: str = setting(
        positional=True,
        metavar="NAME_OR_FILE",
        help="a zoo model name (see `hvm1 list`), or a checkpoint file (.pth, .safetensors)",
    )
    labels: bool = setting(
        False, help="list the head's class names, one a line with its index (tab-separated), and nothing else"
    )


@dataclass
class InfoReport(Report):
    """What a model is, as named lines ('type', 'parameters', 'input', ...) in the order they are shown, or
    with `labels` asked for, its class names alone (`class_names`, in head order)."""

    lines: dict[str, str] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None


# How many class names `hvm1 info` shows before `--labels` (all of them).
SHOWN_CLASS_NAMES = 3


def _classes_line(num_classes: int, names, where: str) -> str:
    """`hvm1 info`'s classes line: the count, the first names and where they come from, or that there are none."""
    if names is None:
        return f"{num_classes}, no names recorded in the file (give them to classify with --labels)"
    shown = ", ".join(names[:SHOWN_CLASS_NAMES]) + (", ..." if len(names) > SHOWN_CLASS_NAMES else "")
    return f"{num_classes} ({where}): {shown} (--labels lists all)"


def _class_names(names, num_classes: int) -> tuple[str, ...]:
    """The names `hvm1 info --labels` lists; an error where there are none."""
    from hvm1.labels import LabelsError

    if not num_classes:
        raise LabelsError("the model has no classification head, so no class names")
    if names is None:
        raise LabelsError(f"the file records no names for its {num_classes} classes")
    return tuple(names)


def _command_presets(pre, model_type: str) -> dict[str, str]:
    """What each command does with the inputs of a model of `model_type` and preprocessing `pre`, from the
    presets the commands use."""
    from hvm1.eval import DEFAULT_VIEWS
    from hvm1.train.finetuning import FINETUNE_CROP_SCALE
    from hvm1.train.pretraining import PRETRAIN_CROP_SCALE

    lines = {"complete, attention" if model_type == "mae" else "attention": pre.visualisation().describe()}
    if model_type == "mae":
        lines["pretrain"] = f"{pre.training(PRETRAIN_CROP_SCALE).describe()}; mask ratio {pre.mask_ratio:g}"
        return lines
    lines["embed"] = pre.evaluation().describe()
    clips, crops = DEFAULT_VIEWS
    lines["evaluate"] = (
        pre.image_evaluation().describe()
        if pre.single_image
        else pre.evaluation("uniform" if crops == 3 else "center").describe(
            start=f"{clips} clips evenly spaced over the video"
        )
    )
    finetune = pre.for_videos()
    lines["finetune"] = f"{finetune.training(FINETUNE_CROP_SCALE).describe()}; lr {finetune.blr:g} x batch / 256"
    return lines


_FORMATS = {
    "safetensors": "safetensors (weights and config, e.g. from hvm1 convert)",
    "zip": "PyTorch zip archive",
    "pickle": "PyTorch legacy pickle",
}


def _file_info(path: Path, overrides: dict, labels: bool) -> InfoReport:
    from hvm1.checkpoint import checkpoint_format, read_checkpoint
    from hvm1.models import VideoMAE
    from hvm1.zoo import PREPROCESSING_METADATA_KEY, load_model, preprocessing_for

    contents = read_checkpoint(path)
    model = load_model(path, **overrides)
    model_type = "mae" if isinstance(model, VideoMAE) else "vit"
    config = model.config
    parts = "encoder and decoder" if model_type == "mae" else "encoder"
    head = f" + {config.num_classes}-class head" if config.num_classes else ""
    pre = preprocessing_for(path, model)
    recorded = PREPROCESSING_METADATA_KEY in contents.metadata or PREPROCESSING_METADATA_KEY in contents.args
    names = getattr(model, "class_names", None)
    if labels:
        return InfoReport(class_names=_class_names(names, config.num_classes))
    kind = checkpoint_format(path)
    dtypes = sorted({str(tensor.dtype).removeprefix("torch.") for tensor in contents.state_dict.values()})
    return InfoReport(
        lines={
            "file": f"{path} ({path.stat().st_size / 1e6:,.1f} MB)",
            "format": _FORMATS.get(kind, kind) + (", with training args" if contents.args else ""),
            "type": f"{model_type} (ViT, width {config.embed_dim}, depth {config.depth}, patch {config.patch_size}, "
            f"{config.num_heads} heads: {parts}{head})",
            "parameters": f"{sum(p.numel() for p in model.parameters()):,} ({len(contents.state_dict)} tensors stored, "
            f"{', '.join(dtypes)})",
            "input": f"{pre.num_frames} frames of {pre.img_size}x{pre.img_size}"
            f"{' (one image repeated)' if pre.single_image else ''}",
            "mean / std": f"{pre.mean} / {pre.std}",
            "preprocessing": "recorded in the file"
            if recorded
            else "not recorded in the file: the video mean/std and the published settings for its size",
            **(
                {"classes": _classes_line(config.num_classes, names, "recorded in the file")}
                if config.num_classes
                else {}
            ),
            **_command_presets(pre, model_type),
            "architecture": " ".join(f"{k}={v}" for k, v in config.to_dict().items()),
        }
    )


def _zoo_info(name: str, overrides: dict, labels: bool) -> InfoReport:
    from hvm1.hub import file_url, is_weights_only
    from hvm1.zoo import cached_path, get_model_entry, load_model, published_file_size, weights_nbytes

    entry = get_model_entry(name)
    if labels:
        return InfoReport(class_names=_class_names(entry.class_names, entry.num_classes))
    pre = entry.preprocessing
    model = load_model(entry.name, pretrained=False, device="meta", **overrides)
    parts = "MAE: encoder and decoder" if entry.model_type == "mae" else "encoder"
    head = f" + {entry.num_classes}-class head" if entry.num_classes else ""
    cached = cached_path(entry.name)
    lines = {
        "name": entry.name,
        "type": f"{entry.model_type} (ViT-H/14 {parts}{head})",
        "pretraining": entry.pretraining,
        "finetuning": entry.finetuning,
        "file": f"{entry.filename} in the hub repo {entry.repo_id}",
        "url": file_url(entry.repo_id, entry.filename),
        "cached": "no"
        if cached is None
        else f"{cached} ({'weights only' if is_weights_only(cached) else 'whole file'})",
        "first use": "downloads nothing (cached)"
        if cached
        else f"downloads {weights_nbytes(entry.name) / 1e9:.2f} GB, the weights (the whole file, "
        f"{published_file_size(entry.name)}, with --full-download)",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
        "input": f"{pre.num_frames} frames of {pre.img_size}x{pre.img_size}"
        f"{' (one image repeated)' if pre.single_image else ''}",
        "mean / std": f"{pre.mean} / {pre.std}",
        **(
            {"classes": _classes_line(entry.num_classes, entry.class_names, f"label set {entry.labels}")}
            if entry.num_classes
            else {}
        ),
        **_command_presets(pre, entry.model_type),
    }
    if entry.top1 is not None:
        lines["published top-1"] = f"{entry.top1}% (validation, single view)"
    lines["architecture"] = " ".join(f"{k}={v}" for k, v in model.config.to_dict().items())
    return InfoReport(lines=lines)


def describe(config: InfoConfig, progress: Progress = SILENT) -> InfoReport:
    """`hvm1 info`: what a zoo model or a checkpoint file is (read through the one loader; a zoo model is built
    on the meta device, so nothing is downloaded).

    Args:
        config: The name or file, and architecture overrides.
        progress: Unused.

    Returns:
        The model's description.

    Raises:
        UnknownModelError: Neither a zoo name nor a file.
        LabelsError: `labels` asked for, and the model has no class names.
    """
    from hvm1.zoo import MODELS

    overrides = config.overrides
    if config.name not in MODELS and Path(config.name).is_file():
        return _file_info(Path(config.name), overrides, config.labels)
    return _zoo_info(config.name, overrides, config.labels)


@dataclass(frozen=True, kw_only=True)
class ConvertConfig(OverrideSettings, DownloadSettings):
    """`hvm1 convert`: a model's weights and full config as one .safetensors file (no optimizer state)."""

    source: str = setting(positional=True, metavar="NAME_OR_PATH", help="a zoo model name or a checkpoint file")
    output: Path = setting(
        option="-o",
        aliases=("--output",),
        metavar="FILE.safetensors",
        help="the file to write (replaced atomically if it exists)",
    )
    dtype: str = setting("float32", choices=CONVERT_DTYPES, help="weight precision of the file (bfloat16 halves it)")
    model_type: str | None = setting(
        None, choices=MODEL_TYPES, help="vit: the encoder alone from an MAE checkpoint (default: what the file holds)"
    )


@dataclass
class ConvertReport(Report):
    """The file written (`written[0]`) and its weight precision."""

    dtype: str = "float32"


def convert_model(config: ConvertConfig, progress: Progress = SILENT) -> ConvertReport:
    """`hvm1 convert`: `hvm1.zoo.convert` with the config's settings.

    Args:
        config: The source, the output file and its precision.
        progress: Unused.

    Returns:
        The file written.
    """
    from hvm1.zoo import convert

    path = convert(
        config.source,
        config.output,
        dtype=config.dtype,
        model_type=config.model_type,
        full_download=config.full_download,
        **config.overrides,
    )
    return ConvertReport(written=[path], dtype=config.dtype)
