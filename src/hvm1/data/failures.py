"""The one record of an input that could not be read, and the rule that makes any exception one.

Every command that reads many inputs reads each through `read_or_skip` (or catches `Exception` around
one input's read and calls `skipped_for`): whatever reading one file raises is that file's failure, named
in the command's summary, and the other files are still read. A `VideoError` is the expected kind (a
missing, damaged or unsupported file) and keeps its reason; anything else is named by its exception type
and message and logged with its traceback, so that a bug in hvm1 is visible rather than taken for a bad file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hvm1.data.video import VideoError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Skipped:
    """An input that could not be read, and the reason (a VideoError's reason, or 'Type: message')."""

    path: str
    reason: str


def skipped_for(path: str | os.PathLike, error: Exception) -> Skipped:
    """The failure record of `path` for `error`, raised while reading it (logged as a warning).

    A `VideoError` gives its reason (with the file it names, when that is not `path` itself: one frame of
    a sequence); any other exception gives 'TypeName: message' and is logged with its traceback, being
    either damage that a decoding library reports in a way hvm1 does not yet translate, or a bug in hvm1.

    Args:
        path: the input being read.
        error: what reading it raised.

    Returns:
        The `Skipped` record: the path and the reason.
    """
    if isinstance(error, VideoError):
        named = error.path is not None and error.path != Path(path)
        reason = f"{error.path}: {error.reason}" if named else error.reason or str(error)
        logger.warning("skipping %s: %s", path, reason)
    else:
        reason = f"{type(error).__name__}: {error}"
        logger.warning("skipping %s: %s", path, reason, exc_info=error)
    return Skipped(str(path), reason)


def read_or_skip(path: str | os.PathLike, read: Callable[[], T]) -> T | Skipped:
    """Read one input, turning whatever reading it raises into its failure record.

    Args:
        path: the input being read.
        read: the call that reads it.

    Returns:
        What `read()` returned, or the `Skipped` record of `path` for any exception it raised (see
        `skipped_for`).
    """
    try:
        return read()
    except Exception as error:  # one input's failure, never the run's
        return skipped_for(path, error)
