"""The `hvm1` command line: parse arguments, call the library, print.

One module per group of commands (`zoo`, `viz`, `eval`, `train`, `analyses`, `demo`, `segment`), each with
an `add_commands(sub)` that registers its `_cmd_*` functions; the library does the work and logs, this package
decides what the user sees. Heavy modules are imported inside the commands that need them, so `hvm1 -h` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import analyses, demo, eval, segment, train, viz, zoo

__all__ = ["main"]

# The groups in the order `hvm1 -h` lists them.
COMMAND_GROUPS = (zoo, train, viz, eval, analyses, demo, segment)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hvm1", description="The HVM-1 video models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `hvm1` command line with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    from ..devices import keep_freed_memory

    parser = _build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()  # large activations are reused, not page-faulted afresh at every forward
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as error:  # user errors: a wrong name or field, a missing or corrupt file, no network
        if args.verbose:
            raise
        print(f"hvm1 {args.command}: error: {error}", file=sys.stderr)
        return 1



