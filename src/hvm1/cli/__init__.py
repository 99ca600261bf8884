"""The `hvm1` command line: parse arguments, call the library, print.

Every command is a `hvm1.cli.command.Command`: a config class (its flags are generated from the config's
fields), a library function that takes the config and returns a report, and a printer of that report. One
module per group of commands (`zoo`, `viz`, `eval`, `classes`, `train`, `analyses`, `demo`, `segment`) holds a
`COMMANDS` table of them. Only the command asked for builds its parser (the others list their name and
help), and the library is imported only by the command that runs, so `hvm1 -h` starts without torch.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import analyses, classes, demo, eval, segment, train, viz, zoo
from .command import Command, ConsoleProgress, add_flags, config_from_args, spell_flags

__all__ = ["COMMAND_GROUPS", "INTERRUPTED", "build_parser", "console", "main"]

# The groups in the order `hvm1 -h` lists them.
COMMAND_GROUPS = (zoo, train, viz, eval, classes, analyses, demo, segment)

# The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130

# One placeholder per setting, on every command that has it (where a command names none of its own).
PLACEHOLDERS = {
    "out_dir": "DIR",
    "batch_size": "B",
    "num_workers": "W",
    "sampling_rate": "R",
    "mask_ratio": "R",
    "shots": "K",
    "img_size": "N",
    "num_vids": "K",
    "seed": "S",
}


def build_parser(command: str | None = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The `hvm1` parser.

    Args:
        command: With `lazy`, the command whose options are built.
        lazy: Build only `command`'s options (the other commands by name and help, so that their modules'
            imports are not paid for).
    """
    from .. import __version__

    parser = argparse.ArgumentParser(prog="hvm1", description="The HVM-1 video models.")
    parser.add_argument("--version", action="version", version=f"hvm1 {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in COMMAND_GROUPS:
        for name, entry in group.COMMANDS.items():
            if lazy and command != name:
                sub.add_parser(name, help=entry.help, add_help=False)
                continue
            chosen = sub.add_parser(name, help=entry.help, description=entry.description or entry.help)
            add_flags(chosen, entry.config_class())
            chosen.set_defaults(command_entry=entry)
            _accept_underscores(chosen)
            _shared_placeholders(chosen)
    return parser


def _accept_underscores(parser: argparse.ArgumentParser) -> None:
    # The published scripts spell flags with underscores (--out_dir, --batch_size): every --dashed-flag also
    # takes that spelling, unlisted in -h, on every command that has the flag.
    for action in list(parser._actions):
        for option in list(action.option_strings):
            spelled = option.replace("-", "_").replace("__", "--", 1)
            if option.startswith("--") and spelled not in parser._option_string_actions:
                parser._option_string_actions[spelled] = action


def _shared_placeholders(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if action.option_strings and action.metavar is None and action.dest in PLACEHOLDERS and action.nargs != 0:
            action.metavar = PLACEHOLDERS[action.dest]


def _flag_names(parser: argparse.ArgumentParser, command: str | None) -> dict[str, str]:
    """The command's options by the config field they set (`mask_ratio` -> `--mask-ratio`), for errors."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    chosen = sub.choices.get(command) if sub is not None and command else None
    if chosen is None:
        return {}
    return {
        action.dest: max(action.option_strings, key=lambda option: option.count("-"))
        for action in chosen._actions
        if action.option_strings and "_" in action.dest
    }


def _command_of(argv: Sequence[str]) -> str | None:
    # The top-level options take no value, so the first word that is no option names the command.
    return next((word for word in argv if not word.startswith("-")), None)


# The progress of the command running now: what it says was kept is what Ctrl-C prints.
_running: list[ConsoleProgress] = []


def _run(entry: Command, args: argparse.Namespace, flags: dict[str, str]) -> int:
    """Build the command's config from the flags, run its library function, print its report."""
    from ..distributed import launch_rank

    config = config_from_args(entry.config_class(), args)
    progress = ConsoleProgress(enabled=launch_rank() == 0, every=getattr(config, "print_every", 1), flags=flags)
    _running[:] = [progress]
    try:
        report = entry.function()(config, progress=progress)
    finally:
        progress.close()
    return entry.show(report)


def _kept() -> str:
    """What the command stopped by Ctrl-C had kept, as its progress was last told (once: the next starts afresh)."""
    return _running.pop().kept if _running else "it stopped before writing anything"


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


def _error_message(error: BaseException, args: argparse.Namespace, flags: dict[str, str]) -> str:
    """The one line a user error prints: the library's message with the fields it names spelled as the
    command's flags, and for a zoo model that could not be fetched the command line's own way round it (the
    library's hint is the Python call)."""
    from ..hub import DownloadError

    text = spell_flags(str(error), flags)
    model = getattr(args, "model", None)
    takes_checkpoint = "checkpoint" in args.command_entry.config_class().__dataclass_fields__
    if isinstance(error, DownloadError) and isinstance(model, str) and takes_checkpoint:
        from ..zoo import MODELS

        if model in MODELS:
            return (
                f"{text}; on the command line: --checkpoint /path/to/{MODELS[model].filename} in place of "
                f"--model {model}"
            )
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `hvm1` command line with `argv` (default: `sys.argv[1:]`); returns the exit status.

    Ctrl-C stops any command with one line saying what was kept and how to go on, and exit status 130.

    Args:
        argv: the arguments, without the program name (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 done, 1 an error or a skipped input, 130 interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv), lazy=True)
    args = parser.parse_args(argv)
    from ..devices import keep_freed_memory

    keep_freed_memory()  # large activations are reused, not page-faulted afresh at every forward
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    _running.clear()
    flags = _flag_names(parser, args.command)
    try:
        _check_outputs(args)  # a place that cannot be written fails now, not after the work
        return _run(args.command_entry, args, flags)
    except BaseException as error:
        if not _interrupted(error):
            if args.verbose or not isinstance(error, (ValueError, OSError, ImportError)):
                raise
            # user errors: a wrong name or field, a missing or corrupt file, no network, an extra not installed
            message = _error_message(error, args, flags)
            print(f"hvm1 {args.command}: error: {message}", file=sys.stderr)
            return 1
        if args.verbose:
            raise
        print(f"hvm1 {args.command}: interrupted; {_kept()}", file=sys.stderr)
        return INTERRUPTED


def leave_quickly() -> None:
    """Prepare this process to exit fast once its command is done: freeze the objects alive now (`gc.freeze`),
    so that the interpreter's shutdown does not walk them all again in its last garbage collections.

    Objects are still freed by reference counting and `atexit` handlers still run; only the reference cycles
    alive at exit are left for the OS to reclaim. For a process about to exit (the `hvm1` command,
    `python -m hvm1.cli`), not for one that calls `main` and goes on (`benchmarks/bench_complete.py
    --breakdown` measures the exit)."""
    gc.freeze()


def console() -> int:
    """The `hvm1` command: `main()` on `sys.argv`, then `leave_quickly()`; returns the exit status."""
    status = main()
    leave_quickly()
    return status
