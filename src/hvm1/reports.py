"""What a command's library function returns: a `Report` of what it wrote and what it skipped, plus figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hvm1.data.failures import Skipped

__all__ = ["Report"]


@dataclass
class Report:
    """What a command did.

    Attributes:
        written: The files written, in the order they were written.
        skipped: The inputs that could not be read, each with its reason (the run went on without them).
    """

    written: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing was skipped."""
        return not self.skipped
