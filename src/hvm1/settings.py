"""Command settings: each command's options are one frozen dataclass of `setting` fields.

A field is defined once, with its default, its help, its choices (from the library's own constants) and any
further spelling (a published script's `--video_dir`), and the command line is generated from the fields
(`hvm1.cli.flags`), as torchtitan's job config does. The mixins below hold the settings many commands share;
a command's config lists them as bases and adds its own fields. This module imports neither torch nor
anything heavy, so that building a parser costs nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEVICE_CHOICES",
    "DeviceSettings",
    "DownloadSettings",
    "ModelSettings",
    "OutputSettings",
    "OverrideSettings",
    "PRECISION_CHOICES",
    "SizeSettings",
    "VideoSelection",
    "parse_overrides",
    "setting",
    "setting_info",
]

#: `--device`: auto picks cuda, then mps, then cpu (`hvm1.devices.resolve_device`).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
#: `--precision` (`hvm1.devices.resolve_precision`).
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Any = dataclasses.MISSING,
    metavar: str | tuple[str, ...] | None = None,
    choices: tuple[str, ...] | None = None,
    aliases: tuple[str, ...] = (),
    option: str | None = None,
    positional: bool = False,
    repeat: bool = False,
    flag: bool = True,
) -> Any:
    """A config field with what its command-line flag needs.

    Args:
        default: The library's default (none: the setting is required).
        help: One line for `-h`; the default is appended to it.
        default_factory: As `dataclasses.field`'s.
        metavar: The placeholder `-h` shows.
        choices: The allowed values (the library's own constant).
        aliases: Further spellings of the flag, e.g. a published script's `--video_dir`.
        option: The flag's main spelling when it is not the field's name (`--set` for `overrides`).
        positional: An argument without a flag (`PATH ...`).
        repeat: A tuple field given once per value (`--model A --model B`) instead of all after one flag (a
            dict field is always given so: `--set FIELD=VALUE`, one item each).
        flag: False for a library-only field (the command line sets it some other way, or not at all).

    Returns:
        A `dataclasses.field` whose metadata carries the above.
    """
    metadata = {
        "help": help,
        "metavar": metavar,
        "choices": choices,
        "aliases": aliases,
        "option": option,
        "positional": positional,
        "repeat": repeat,
        "flag": flag,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def setting_info(cls: type, name: str) -> dict[str, Any]:
    """The `setting` metadata of field `name` of config class `cls`.

    The nearest class in the MRO that declares the field with a help wins, so a subclass may redeclare a field
    only to change its default.

    Raises:
        ValueError: The field was not declared with `setting`.

    Args:
        cls: the config class.
        name: the field.

    Returns:
        The field's metadata: default, help, metavar, choices, aliases.
    """
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and "help" in declared.metadata:
            return dict(declared.metadata)
    raise ValueError(f"{cls.__name__}.{name} has no help: declare it with hvm1.settings.setting")


def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`FIELD=VALUE` items (`--set`) as architecture overrides; an int, float or bool value becomes one.

    Raises:
        ValueError: An item is not `FIELD=VALUE`.

    Args:
        items: the `FIELD=VALUE` items.

    Returns:
        The overrides, by field.
    """
    overrides = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise ValueError(f"--set expects FIELD=VALUE (e.g. --set num_heads=4), got {item!r}")
        overrides[field.strip()] = _parse_value(value.strip())
    return overrides


@dataclass(frozen=True, kw_only=True)
class OverrideSettings:
    """Architecture fields a checkpoint can't tell (`--set FIELD=VALUE`)."""

    overrides: dict[str, Any] = setting(
        default_factory=dict,
        option="--set",
        metavar="FIELD=VALUE",
        help="set an architecture field the checkpoint can't tell (e.g. num_heads=4); repeatable",
    )


@dataclass(frozen=True, kw_only=True)
class DownloadSettings:
    """How much of a zoo model's published file is downloaded."""

    full_download: bool = setting(
        False,
        help="a zoo model: download its whole file (with the published optimizer "
        "state, ~3x the bytes, verified by its SHA-256) instead of the weights",
    )


@dataclass(frozen=True, kw_only=True)
class ModelSettings(OverrideSettings, DownloadSettings):
    """Which model a command runs: a zoo name or a checkpoint file (one of them), with architecture overrides."""

    model: str | None = setting(
        None, metavar="NAME", help="a zoo model name (see `hvm1 list`); its weights are fetched once"
    )
    checkpoint: Path | None = setting(
        None, metavar="FILE", help="a checkpoint file: a published .pth or a .safetensors from `hvm1 convert`"
    )

    @property
    def model_source(self) -> str | Path | None:
        """The checkpoint file, else the zoo name (None when neither is set)."""
        return self.checkpoint if self.checkpoint is not None else self.model


@dataclass(frozen=True, kw_only=True)
class DeviceSettings:
    """Where and in which precision a command computes."""

    device: str = setting("auto", choices=DEVICE_CHOICES, help="auto picks cuda, then mps, then cpu")
    precision: str = setting(
        "auto",
        choices=PRECISION_CHOICES,
        help="auto: bf16 autocast where the device multiplies bf16 fast (CUDA with bf16, CPUs "
        "with AMX or AVX512-BF16), else fp32; fp32 is exactly the published computation",
    )


@dataclass(frozen=True, kw_only=True)
class OutputSettings:
    """Where a command writes: `out_dir`, or (the one rule of every command) a new folder in the temp folder."""

    out_dir: Path | None = setting(
        None,
        metavar="DIR",
        help="where the files go (default: a new folder "
        "hvm1-COMMAND-DATE-* in the temp folder; never the current folder)",
    )


@dataclass(frozen=True, kw_only=True)
class VideoSelection:
    """Videos named by files and folders (searched recursively), optionally a seeded draw of some of them."""

    paths: tuple[Path, ...] = setting(
        (), positional=True, metavar="PATH", help="video files or folders (searched recursively)"
    )
    num_vids: int | None = setting(
        None,
        metavar="K",
        aliases=("--num_vids",),
        help="draw K of the videos at random with --seed (default: all of them)",
    )
    seed: int = setting(0, metavar="S", help="seeds every random choice: the draw of videos, random masks")


@dataclass(frozen=True, kw_only=True)
class SizeSettings:
    """Running a model at another size than its own (position embeddings interpolated), and whether inputs are
    turned upright as players show them."""

    img_size: int | None = setting(
        None, metavar="N", help="frames of N x N px (any multiple of the patch size; default: the model's own)"
    )
    num_frames: int | None = setting(
        None, metavar="T", help="clips of T frames (any multiple of the tubelet; default: the model's own)"
    )
    full_frame: bool = setting(
        False,
        help="keep the whole frame at its aspect ratio instead of a square center "
        "crop: the short side becomes N, the long side follows, both rounded to the nearest "
        "patch multiple",
    )
    autorotate: bool = setting(
        True,
        help="turn videos and images upright as players show them (display matrix, "
        "EXIF orientation); off: read them as stored",
    )
