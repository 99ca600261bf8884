"""The `hvm1` command line: parse arguments, call the library, print.

Each command is a `_cmd_*` function registered in `_build_parser`; the library does the work and
logs, this module decides what the user sees.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


# ---- shared by every command that loads a model ------------------------------------------------------------

def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_set(values: list[str]) -> dict[str, Any]:
    """`--set FIELD=VALUE` items as config overrides; values that look like an int, float or bool become one."""
    overrides = {}
    for item in values or []:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise ValueError(f"--set expects FIELD=VALUE (e.g. --set num_heads=4), got {item!r}")
        overrides[field.strip()] = _parse_value(value.strip())
    return overrides


def _add_model_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add `--model NAME` / `--checkpoint FILE` (one of them) and `--set FIELD=VALUE` to a command."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--model", metavar="NAME", help="a zoo model name (see `hvm1 list`); downloaded once")
    source.add_argument("--checkpoint", metavar="FILE", type=Path,
                        help="a checkpoint file: a published .pth or a .safetensors from `hvm1 convert`")
    _add_set_arg(parser)


def _add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="set an architecture field the checkpoint can't tell (e.g. num_heads=4); repeatable")


def _model_from_args(args: argparse.Namespace, **kwargs: Any):
    """The model `--model` / `--checkpoint` and `--set` ask for, loaded with `hvm1.load_model(**kwargs)`."""
    from .zoo import load_model

    return load_model(args.checkpoint or args.model, **kwargs, **_parse_set(args.set))


# ---- the model zoo: list, info, convert --------------------------------------------------------------------

def _cmd_list(args: argparse.Namespace) -> int:
    from .zoo import MODELS, cached_path

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


def _cmd_info(args: argparse.Namespace) -> int:
    from .hub import file_url
    from .zoo import cached_path, get_model_entry, load_model

    entry = get_model_entry(args.name)
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
        "cached": str(cached) if cached else "no",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
        "input": f"{pre.num_frames} frames of {pre.img_size}x{pre.img_size}"
                 f"{' (one image repeated)' if pre.single_image else ''}, short side resized to {pre.resize_size}, "
                 f"center crop",
        "mean / std": f"{pre.mean} / {pre.std}",
    }
    if entry.top1 is not None:
        lines["published top-1"] = f"{entry.top1}% (validation, single view)"
    lines["architecture"] = " ".join(f"{k}={v}" for k, v in entry.config.to_dict().items())
    width = max(map(len, lines))
    for key, value in lines.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .zoo import convert

    path = convert(args.source, args.output, dtype=args.dtype, model_type=args.model_type, **_parse_set(args.set))
    print(f"wrote {path}: {args.dtype}, {path.stat().st_size / 1e9:.2f} GB (weights and config, no optimizer state)")
    return 0


def _add_zoo_commands(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("list", help="the published models, and which are cached")
    listing.set_defaults(func=_cmd_list)
    info = sub.add_parser("info", help="one published model: file, architecture, preprocessing")
    info.add_argument("name", help="a zoo model name (see `hvm1 list`)")
    info.set_defaults(func=_cmd_info)
    convert = sub.add_parser(
        "convert", help="write a model's weights and full config to one .safetensors file (no optimizer state)"
    )
    convert.add_argument("source", metavar="NAME_OR_PATH", help="a zoo model name or a checkpoint file")
    convert.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.safetensors")
    convert.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                         help="weight precision of the file (bfloat16 halves it; default float32)")
    convert.add_argument("--model-type", choices=("vit", "mae"),
                         help="vit: the encoder alone from an MAE checkpoint (default: what the file holds)")
    _add_set_arg(convert)
    convert.set_defaults(func=_cmd_convert)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hvm1", description="The HVM-1 video models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_zoo_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `hvm1` command line with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as error:  # user errors: a wrong name or field, a missing or corrupt file, no network
        if args.verbose:
            raise
        print(f"hvm1 {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
