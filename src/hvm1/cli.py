"""The `hvm1` command line: parse arguments, call the library, print.

Each command is a `_cmd_*` function registered in `_build_parser`; the library does the work and
logs, this module decides what the user sees.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hvm1", description="The HVM-1 video models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `hvm1` command line with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
