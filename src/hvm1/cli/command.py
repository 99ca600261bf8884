"""How a command is defined: its config class, its library function and the printer of its report.

Every command is a `Command`. Its flags are generated from the fields of its config class (`add_flags`:
`hvm1.settings.setting` metadata, so each default, help and choice is written once, in the library); the
command line builds the config from the flags given (`config_from_args`; a flag not given keeps the library's
default), calls the library function with it and a `ConsoleProgress`, and prints the report with `show`.
Modules are named as strings and imported only when their command runs, so `hvm1 -h` imports no torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..progress import Progress
from ..settings import parse_overrides, setting_info

__all__ = ["Command", "ConsoleProgress", "add_flags", "config_from_args", "plural", "print_skipped"]


def _import(dotted: str) -> Any:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Command:
    """One `hvm1` command.

    Attributes:
        help: The one line `hvm1 -h` lists.
        config: `'module:Class'`, the command's frozen settings dataclass.
        run: `'module:function'`, the library function: `function(config, progress=...)` returns a report.
        show: Prints the report and returns the exit status (0, or 1 when inputs were skipped).
        description: What `hvm1 COMMAND -h` says above the flags (default: `help`).
    """

    help: str
    config: str
    run: str
    show: Callable[[Any], int]
    description: str | None = None

    def config_class(self) -> type:
        """The config class (imports its module)."""
        return _import(self.config)

    def function(self) -> Callable[..., Any]:
        """The library function (imports its module)."""
        return _import(self.run)


def _int_or_pair(text: str) -> int | tuple[int, int]:
    low, sep, high = text.partition(",")
    return (int(low), int(high)) if sep else int(low)


def _flag_kind(hint: Any, repeat: bool) -> dict[str, Any]:
    """argparse settings for a config field of type `hint` (None in a union only means 'not given')."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] if union else [hint]
    if len(kinds) == 1 and typing.get_origin(kinds[0]) is tuple:
        items = typing.get_args(kinds[0])
        if len(items) == 2 and items[1] is Ellipsis:
            return {"type": items[0], "action": "append"} if repeat else {"type": items[0], "nargs": "+"}
        return {"type": items[0], "nargs": len(items)}
    if len(kinds) == 2 and int in kinds and typing.get_origin(kinds[1 - kinds.index(int)]) is tuple:
        return {"type": _int_or_pair}
    if len(kinds) == 1 and kinds[0] in (int, float, str, Path):
        return {"type": kinds[0]}
    if len(kinds) == 1 and typing.get_origin(kinds[0]) is dict:  # FIELD=VALUE items, parsed by config_from_args
        return {"type": str, "action": "append"}
    raise TypeError(f"no command-line flag for a config field of type {hint}")


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def add_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """A flag per field of `config_class`: `--name-with-dashes`, plus the field's aliases.

    The help is the field's, with its default; booleans are switches (`--no-NAME` for one that defaults to
    on). Every flag's argparse default is `SUPPRESS`: a flag not given keeps the library default.
    """
    hints = typing.get_type_hints(config_class)
    for field in _own_fields_first(config_class):
        info = setting_info(config_class, field.name)
        if not info["flag"]:
            continue
        help_text, hint = info["help"], hints[field.name]
        dashed = info["option"] or f"--{field.name.replace('_', '-')}"
        if hint is bool:
            prefix = "--no-" if field.default else "--"
            parser.add_argument(
                f"{prefix}{dashed.removeprefix('--')}",
                *info["aliases"],
                dest=field.name,
                action="store_false" if field.default else "store_true",
                default=argparse.SUPPRESS,
                help=f"do not {help_text}" if field.default else help_text,
            )
            continue
        kind = _flag_kind(hint, info["repeat"])
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        default = field.default if field.default is not dataclasses.MISSING else None
        if default not in (None, ()) and info["positional"] is False:
            help_text += f" (default {_shown(default)})"
        if info["positional"]:
            if kind.get("nargs") == "+":
                kind["nargs"] = "*" if has_default else "+"
            elif has_default:
                kind["nargs"] = "?"
            parser.add_argument(
                field.name,
                metavar=info["metavar"],
                choices=info["choices"],
                help=help_text,
                default=argparse.SUPPRESS,
                **kind,
            )
            continue
        parser.add_argument(
            dashed,
            *info["aliases"],
            dest=field.name,
            required=not has_default,
            metavar=info["metavar"],
            choices=info["choices"],
            help=help_text,
            default=argparse.SUPPRESS,
            **kind,
        )


def _own_fields_first(config_class: type) -> list[dataclasses.Field]:
    """The config's fields, those its own class declares first, then its bases' (so `-h` lists a command's own
    flags before the shared ones)."""
    mro = config_class.__mro__

    def declared_by(field: dataclasses.Field) -> int:
        return next(i for i, klass in enumerate(mro) if field.name in getattr(klass, "__annotations__", {}))

    return sorted(dataclasses.fields(config_class), key=declared_by)


def config_from_args(config_class: type, args: argparse.Namespace, **values: Any) -> Any:
    """`config_class` from the flags given (the others keep the library defaults) and `values`."""
    hints = typing.get_type_hints(config_class)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if hasattr(args, f.name)}
    for name, value in given.items():
        if isinstance(value, list):
            kinds = [hints[name], *typing.get_args(hints[name])]
            is_mapping = any(typing.get_origin(kind) is dict for kind in kinds)
            given[name] = parse_overrides(value) if is_mapping else tuple(value)
    return config_class(**(given | values))


def spell_flags(text: str, flags: dict[str, str]) -> str:
    """`text` (a library message) with the config fields it names spelled as the command's flags (`flags`:
    field -> flag, `mask_ratio` -> `--mask-ratio`): a field named alone, not inside a path, a --flag or a
    FIELD=VALUE."""
    for field, flag in flags.items():
        text = re.sub(rf"(?<![\w/.=-]){re.escape(field)}(?![\w/.=-])", flag, text)
    return text


def plural(count: int, word: str) -> str:
    """'1 step', '2 steps'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def print_skipped(skipped) -> bool:
    """Name each input that could not be read (`hvm1.data.Skipped`) on stderr; whether there were any.

    Every command that reads many inputs ends with this, and exits 1 when it says so.
    """
    if skipped:
        print(
            f"{plural(len(skipped), 'input')} could not be read and {'was' if len(skipped) == 1 else 'were'} skipped:",
            file=sys.stderr,
        )
        for item in skipped:
            print(f"  {item.path}: {item.reason}", file=sys.stderr)
    return bool(skipped)


class ConsoleProgress(Progress):
    """Progress on stderr: a bar on a terminal, a plain line per unit elsewhere (batch jobs, logs).

    `enabled=False` (ranks other than 0 under torchrun) shows nothing; `every`: plain lines only every N
    units (and the first and last); `flags`: notes name the command's flags, not the config fields. What `keeping` was
    last told is what a Ctrl-C says was kept.
    """

    def __init__(self, enabled: bool = True, every: int = 1, stream=None, flags: dict[str, str] | None = None) -> None:
        self.enabled = enabled
        self.flags = flags or {}
        self.every = max(1, every)
        self.stream = stream or sys.stderr
        self.kept = "it stopped before writing anything"
        self._bar: Any = None
        self._stage: tuple[int | None, str, str] = (None, "item", "")

    def note(self, message: str) -> None:
        if self.enabled:
            self._write(spell_flags(message, self.flags))

    def keeping(self, sentence: str) -> None:
        self.kept = sentence

    def start(self, total: int | None, unit: str = "item", label: str = "") -> None:
        self.close()
        self._stage = (total, unit, label)
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label or None, unit=unit, dynamic_ncols=True, file=self.stream)

    def advance(self, done: int, item: str = "") -> None:
        if not self.enabled:
            return
        total, unit, label = self._stage
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            if item:
                self._bar.set_postfix_str(item[-60:], refresh=False)
        elif done == 1 or done % self.every == 0 or done == total:
            of = f"/{total}" if total is not None else ""
            self._write(f"{label + ' ' if label else ''}{done}{of} {item}".rstrip())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
