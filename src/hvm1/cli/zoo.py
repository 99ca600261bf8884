"""The model zoo's commands: list, info, convert."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import _add_download_arg, _add_set_arg, _parse_set, published_file_size

# Each command's one-line help, as `hvm1 -h` lists it without importing what the commands need.
COMMANDS = {
    "list": "the published models, and which are cached",
    "info": "one published model or checkpoint file: architecture, preprocessing, parameters",
    "convert": "write a model's weights and full config to one .safetensors file (no optimizer state)",
}


def _cmd_list(args: argparse.Namespace) -> int:
    from ..zoo import MODELS, cached_path

    header = ("name", "type", "pretraining", "finetuning", "size", "classes", "cached")
    rows = [
        (e.name, e.model_type, e.pretraining, e.finetuning, f"{e.img_size}px", str(e.num_classes or "-"),
         "yes" if cached_path(e.name) else "no")
        for e in MODELS.values()
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _command_presets(pre, model_type: str) -> dict[str, str]:
    """What each command does with the inputs of a model of `model_type` and preprocessing `pre`, from the
    presets the commands use."""
    from ..eval import DEFAULT_VIEWS
    from ..train import FinetuneConfig, PretrainConfig

    lines = {"complete, attention" if model_type == "mae" else "attention": pre.visualisation().describe()}
    if model_type == "mae":
        crop_scale = PretrainConfig.__dataclass_fields__["crop_scale"].default
        lines["pretrain"] = f"{pre.training(crop_scale).describe()}; mask ratio {pre.mask_ratio:g}"
        return lines
    lines["embed"] = pre.evaluation().describe()
    clips, crops = DEFAULT_VIEWS
    lines["evaluate"] = pre.image_evaluation().describe() if pre.single_image else pre.evaluation(
        "uniform" if crops == 3 else "center").describe(start=f"{clips} clips evenly spaced over the video")
    crop_scale = FinetuneConfig.__dataclass_fields__["crop_scale"].default
    finetune = pre.for_videos()
    lines["finetune"] = f"{finetune.training(crop_scale).describe()}; lr {finetune.blr:g} x batch / 256"
    return lines


def _print_lines(lines: dict[str, str]) -> None:
    width = max(map(len, lines))
    for key, value in lines.items():
        print(f"{key:<{width}}  {value}")


# How many class names `hvm1 info` shows before `--labels` (all of them).
SHOWN_CLASS_NAMES = 3


def _classes_line(num_classes: int, names, where: str) -> str:
    """`hvm1 info`'s classes line: the count, the first names and where they come from, or that there are none."""
    if names is None:
        return f"{num_classes}, no names recorded in the file (give them to classify with --labels)"
    shown = ", ".join(names[:SHOWN_CLASS_NAMES]) + (", ..." if len(names) > SHOWN_CLASS_NAMES else "")
    return f"{num_classes} ({where}): {shown} (--labels lists all)"


def _print_class_names(names, num_classes: int) -> int:
    """`hvm1 info --labels`: each class's index and name, one a line; an error where there are none."""
    from ..labels import LabelsError

    if not num_classes:
        raise LabelsError("the model has no classification head, so no class names")
    if names is None:
        raise LabelsError(f"the file records no names for its {num_classes} classes")
    for index, name in enumerate(names):
        print(f"{index}\t{name}")
    return 0


def _file_info(path: Path, args: argparse.Namespace) -> int:
    """`hvm1 info FILE`: what a checkpoint file holds, read through the one loader."""
    from ..checkpoint import checkpoint_format, read_checkpoint
    from ..models import VideoMAE
    from ..zoo import PREPROCESSING_METADATA_KEY, load_model, preprocessing_for

    contents = read_checkpoint(path)
    model = load_model(path, **_parse_set(args.set))
    model_type = "mae" if isinstance(model, VideoMAE) else "vit"
    config = model.config
    parts = "encoder and decoder" if model_type == "mae" else "encoder"
    head = f" + {config.num_classes}-class head" if config.num_classes else ""
    pre = preprocessing_for(path, model)
    recorded = PREPROCESSING_METADATA_KEY in contents.metadata or PREPROCESSING_METADATA_KEY in contents.args
    names = getattr(model, "class_names", None)
    if args.labels:
        return _print_class_names(names, config.num_classes)
    kind = {"safetensors": "safetensors (weights and config, e.g. from hvm1 convert)",
            "zip": "PyTorch zip archive", "legacy": "PyTorch legacy pickle"}.get(checkpoint_format(path))
    dtypes = sorted({str(tensor.dtype).removeprefix("torch.") for tensor in contents.state_dict.values()})
    lines = {
        "file": f"{path} ({path.stat().st_size / 1e6:,.1f} MB)",
        "format": (kind or checkpoint_format(path)) + (", with training args" if contents.args else ""),
        "type": f"{model_type} (ViT, width {config.embed_dim}, depth {config.depth}, patch {config.patch_size}, "
                f"{config.num_heads} heads: {parts}{head})",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,} ({len(contents.state_dict)} tensors stored, "
                      f"{', '.join(dtypes)})",
        "input": f"{pre.num_frames} frames of {pre.img_size}x{pre.img_size}"
                 f"{' (one image repeated)' if pre.single_image else ''}",
        "mean / std": f"{pre.mean} / {pre.std}",
        "preprocessing": "recorded in the file" if recorded else
                         "not recorded in the file: the video mean/std and the published settings for its size",
        **({"classes": _classes_line(config.num_classes, names, "recorded in the file")} if config.num_classes else {}),
        **_command_presets(pre, model_type),
        "architecture": " ".join(f"{k}={v}" for k, v in config.to_dict().items()),
    }
    _print_lines(lines)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ..hub import file_url, is_weights_only
    from ..zoo import MODELS, cached_path, get_model_entry, load_model, weights_nbytes

    if args.name not in MODELS and Path(args.name).is_file():
        return _file_info(Path(args.name), args)
    entry = get_model_entry(args.name)
    if args.labels:
        return _print_class_names(entry.class_names, entry.num_classes)
    pre = entry.preprocessing
    model = load_model(entry.name, pretrained=False, device="meta")
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
        "cached": "no" if cached is None else f"{cached} ({'weights only' if is_weights_only(cached) else 'whole file'})",
        "first use": "downloads nothing (cached)" if cached else
                     f"downloads {weights_nbytes(entry.name) / 1e9:.2f} GB, the weights (the whole file, "
                     f"{published_file_size(entry.name)}, with --full-download)",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
        "input": f"{pre.num_frames} frames of {pre.img_size}x{pre.img_size}"
                 f"{' (one image repeated)' if pre.single_image else ''}",
        "mean / std": f"{pre.mean} / {pre.std}",
        **({"classes": _classes_line(entry.num_classes, entry.class_names, f"label set {entry.labels}")}
           if entry.num_classes else {}),
        **_command_presets(pre, entry.model_type),
    }
    if entry.top1 is not None:
        lines["published top-1"] = f"{entry.top1}% (validation, single view)"
    lines["architecture"] = " ".join(f"{k}={v}" for k, v in entry.config.to_dict().items())
    _print_lines(lines)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ..zoo import convert

    path = convert(args.source, args.output, dtype=args.dtype, model_type=args.model_type,
                   full_download=args.full_download, **_parse_set(args.set))
    print(f"wrote {path}: {args.dtype}, {path.stat().st_size / 1e9:.2f} GB (weights and config, no optimizer state)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("list", help=COMMANDS["list"])
    listing.set_defaults(func=_cmd_list)
    info = sub.add_parser("info", help=COMMANDS["info"])
    info.add_argument("name", metavar="NAME_OR_FILE",
                      help="a zoo model name (see `hvm1 list`), or a checkpoint file (.pth, .safetensors)")
    info.add_argument("--labels", action="store_true",
                      help="list the head's class names, one a line with its index (tab-separated), and nothing else")
    _add_set_arg(info)
    info.set_defaults(func=_cmd_info)
    convert = sub.add_parser(
        "convert", help=COMMANDS["convert"]
    )
    convert.add_argument("source", metavar="NAME_OR_PATH", help="a zoo model name or a checkpoint file")
    convert.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.safetensors",
                         help="the file to write (replaced atomically if it exists)")
    convert.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                         help="weight precision of the file (bfloat16 halves it; default float32)")
    convert.add_argument("--model-type", choices=("vit", "mae"),
                         help="vit: the encoder alone from an MAE checkpoint (default: what the file holds)")
    _add_set_arg(convert)
    _add_download_arg(convert)
    convert.set_defaults(func=_cmd_convert)


