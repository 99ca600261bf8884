"""Pieces every command shares: model arguments, `--set` overrides."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..settings import parse_overrides as _parse_set

# What the running command has kept so far, as the sentence Ctrl-C prints (set by the command as it learns it).
_interrupt_note: list[Callable[[], str]] = []


def _say_on_interrupt(note: str | Callable[[], str]) -> None:
    """Set what a Ctrl-C from now on says was kept and how to go on (a sentence, or a function giving one)."""
    _interrupt_note[:] = [note if callable(note) else (lambda: note)]


def _kept_on_interrupt(args: argparse.Namespace) -> str:
    """The sentence of `_say_on_interrupt`, once: the next command starts without one."""
    note = _interrupt_note.pop() if _interrupt_note else None
    return note() if note is not None else "it stopped before writing anything"


def _interrupted(error: BaseException) -> bool:
    """Whether `error` is Ctrl-C, or an error raised while Ctrl-C unwound (torch.save's zip writer, cut off
    mid-file, raises its own RuntimeError from the KeyboardInterrupt: the file is a temporary one)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _check_outputs(args: argparse.Namespace) -> None:
    """Before a command does any work: its `--out-dir` and the folder of its `-o` file can be written."""
    from ..files import check_writable

    if getattr(args, "out_dir", None):
        check_writable(args.out_dir)
    if getattr(args, "output", None):
        check_writable(Path(args.output).parent)


def _out_dir(args: argparse.Namespace, command: str) -> Path:
    """Where a command's files go: `--out-dir`, else (the one rule of every command) a new folder
    `hvm1-COMMAND-DATE-*` in the temp folder, never the current one."""
    import tempfile
    import time

    if getattr(args, "out_dir", None):
        return Path(args.out_dir)
    return Path(tempfile.mkdtemp(prefix=f"hvm1-{command}-{time.strftime('%Y%m%d-%H%M%S')}-"))


def _note_fewer(num_vids: int | None, found: int) -> None:
    """Say on stderr when `--num-vids` asked for more videos than were found (all of them are used)."""
    import sys

    if num_vids is not None and num_vids > found:
        print(f"--num-vids {num_vids} asks for more videos than the {found} found: using all {found}",
              file=sys.stderr)




def _add_model_args(
    parser: argparse.ArgumentParser, *, required: bool = True, model_aliases: Sequence[str] = ()
) -> None:
    """Add `--model NAME` / `--checkpoint FILE` (one of them) and `--set FIELD=VALUE` to a command.

    `model_aliases` are further spellings of `--model` (a published script's, e.g. `--model_name`).
    """
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--model", *model_aliases, dest="model", metavar="NAME",
                        help="a zoo model name (see `hvm1 list`); its weights are fetched once")
    source.add_argument("--checkpoint", metavar="FILE", type=Path,
                        help="a checkpoint file: a published .pth or a .safetensors from `hvm1 convert`")
    _add_set_arg(parser)


def _add_device_arg(parser: argparse.ArgumentParser, *, note: str = "", **kwargs: Any) -> None:
    """Add `--device` with the one set of choices (`hvm1.devices.DEVICE_CHOICES`); `note` ends its help."""
    from ..devices import DEVICE_CHOICES

    kwargs.setdefault("default", "auto")
    parser.add_argument("--device", choices=DEVICE_CHOICES, **kwargs,
                        help=f"auto (default) picks cuda, then mps, then cpu{note}")


def _add_download_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full-download", action="store_true",
                        help="a zoo model: download its whole file (with the published optimizer state, ~3x the "
                             "bytes, verified by its SHA-256) instead of the weights alone")


def _add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="set an architecture field the checkpoint can't tell (e.g. num_heads=4); repeatable")


def _model_from_args(args: argparse.Namespace, **kwargs: Any):
    """The model `--model` / `--checkpoint`, `--set` and `--full-download` (where the command has it) ask for,
    loaded with `hvm1.load_model(**kwargs)`."""
    from ..zoo import load_model

    full_download = getattr(args, "full_download", False)
    return load_model(args.checkpoint or args.model, full_download=full_download, **kwargs, **_parse_set(args.set))


def _error_message(error: BaseException, args: argparse.Namespace, flags: dict[str, str] | None = None) -> str:
    """The one line a user error prints: the library's message with the fields it names spelled as the
    command's flags (`flags`: field -> flag, `mask_ratio` -> `--mask-ratio`), and for a zoo model that could
    not be fetched the command line's own way round it (the library's hint is the Python call)."""
    from .command import spell_flags

    return _download_hint(error, args, spell_flags(str(error), flags or {}))


def _download_hint(error: BaseException, args: argparse.Namespace, text: str) -> str:
    from ..hub import DownloadError

    model = getattr(args, "model", None)
    entry = getattr(args, "command_entry", None)
    takes_checkpoint = hasattr(args, "checkpoint") or (
        entry is not None and "checkpoint" in entry.config_class().__dataclass_fields__)
    if isinstance(error, DownloadError) and isinstance(model, str) and takes_checkpoint:
        from ..zoo import MODELS

        if model in MODELS:
            return (f"{text}; on the command line: --checkpoint /path/to/{MODELS[model].filename} in place of "
                    f"--model {model}")
    return text




_DTYPE_SPELLINGS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def _add_precision_arg(parser: argparse.ArgumentParser, *, deprecated_dtype: bool = False, **kwargs: Any) -> None:
    """Add `--precision auto|fp32|bf16|fp16` (`hvm1.devices.resolve_precision`); with `deprecated_dtype`, also
    the old `--dtype float32|bfloat16|float16` spelling of the same choice."""
    from ..devices import PRECISION_CHOICES

    kwargs.setdefault("default", "auto")
    shown = "" if kwargs["default"] == argparse.SUPPRESS else f" (default {kwargs['default']})"
    parser.add_argument("--precision", choices=PRECISION_CHOICES, **kwargs,
                        help="auto: bf16 autocast where the device multiplies bf16 fast (CUDA with bf16, CPUs with "
                             f"AMX or AVX512-BF16), else fp32; fp32 is exactly the published computation{shown}")
    if deprecated_dtype:
        parser.add_argument("--dtype", dest="precision", choices=PRECISION_CHOICES,
                            type=lambda text: _DTYPE_SPELLINGS.get(text, text), help=argparse.SUPPRESS)


def _precision_for(args: argparse.Namespace, device, name: str | None = None, say: bool = True, model=None,
                   models=()):
    """Resolve the command's `--precision` on `device` and (with `say`) say on stderr what was chosen and why.

    With `model` (or `models`), models the command runs only at this precision for inference, their linear
    weights are prepared here (`hvm1.inference.prepare_for_inference`) rather than cast by autocast at every call."""
    import sys

    from ..devices import resolve_precision
    from ..inference import prepare_for_inference

    precision = resolve_precision(name or getattr(args, "precision", None), device)
    if say:
        print(f"precision {precision.describe()} ({precision.reason})", file=sys.stderr)
    for each in (model, *models):
        if each is not None:
            prepare_for_inference(each, precision)
    return precision


def _add_autorotate_arg(parser: argparse.ArgumentParser, what: str = "videos and images") -> None:
    """Add `--no-autorotate` (dest `autorotate`): read the inputs as stored instead of turned as players show
    them (`hvm1.data.read_clip`, `read_image`)."""
    parser.add_argument("--no-autorotate", dest="autorotate", action="store_false",
                        help=f"read {what} as stored: without the display rotation a phone video carries or an "
                             f"image's EXIF orientation (default: turned upright, as players show them)")


def _add_size_args(parser: argparse.ArgumentParser, *, published_spelling: bool = False) -> None:
    """Add `--img-size N`, `--num-frames T` and `--full-frame`: run a model at another size than its own
    (the position embeddings are interpolated, see `hvm1.models.positions`); and `--no-autorotate`."""
    names = ("--img-size", "--img_size") if published_spelling else ("--img-size",)
    parser.add_argument(*names, dest="img_size", type=int, metavar="N",
                        help="frames of N x N px (any multiple of the patch size; default: the model's own)")
    parser.add_argument("--num-frames", type=int, metavar="T",
                        help="clips of T frames (any multiple of the tubelet; default: the model's own)")
    parser.add_argument("--full-frame", action="store_true",
                        help="keep the whole frame at its aspect ratio instead of a square center crop: the short "
                             "side becomes N, the long side follows, both rounded to the nearest patch multiple")
    _add_autorotate_arg(parser)


def _sized_preprocessing(args: argparse.Namespace, preprocessing, model):
    """`preprocessing` at `--img-size` and `--num-frames` where given, checked against what `model` divides
    into tokens (a ValueError naming both otherwise), reading files as `--no-autorotate` says."""
    cfg = model.config
    if args.img_size and args.img_size % cfg.patch_size:
        raise ValueError(f"--img-size {args.img_size} is not a multiple of the model's patch size {cfg.patch_size}")
    if args.num_frames and args.num_frames % cfg.t_patch_size:
        raise ValueError(f"--num-frames {args.num_frames} is not a multiple of the model's tubelet {cfg.t_patch_size}")
    sized = preprocessing.at_size(args.img_size or preprocessing.img_size, args.num_frames or preprocessing.num_frames)
    return dataclasses.replace(sized, autorotate=getattr(args, "autorotate", True))
