"""The one way library code tells its caller how far it has got: a `Progress` object.

Library functions take `progress: Progress = SILENT` and call it; they never print. The command line passes
one that draws a bar on a terminal and plain lines elsewhere (`hvm1.cli.console`); a notebook or a service
passes its own. `note` is for a sentence the user should see now (a download starting, the precision chosen),
`keeping` for what an interruption at this point would keep (a command says it on Ctrl-C).
"""

from __future__ import annotations

__all__ = ["Progress", "SILENT"]


class Progress:
    """Receives a run's progress; this base class ignores everything (subclass what you show)."""

    def note(self, message: str) -> None:
        """A sentence for the user, now (e.g. 'fetching 2.58 GB of weights from eminorhan/hvm-1 once').

        Args:
            message: the sentence.
        """

    def keeping(self, sentence: str) -> None:
        """What stopping the run from now on would keep, as a sentence (the CLI says it on Ctrl-C).

        Args:
            sentence: what would be kept, and how to go on.
        """

    def start(self, total: int | None, unit: str = "item", label: str = "") -> None:
        """A stage of `total` units (None: unknown) begins; `label` names it (a command, a sequence).

        Args:
            total: the units of the stage, or None when unknown.
            unit: what a unit is ('video', 'clip', 'frame', 'byte').
            label: what the stage is (a command, a sequence).
        """

    def advance(self, done: int, item: str = "") -> None:
        """`done` units of the current stage are finished, the last one being `item` (a file name).

        Args:
            done: units of the stage finished so far.
            item: the last one finished (a file name).
        """

    def close(self) -> None:
        """The current stage is over."""


#: Progress that shows nothing: the default of every library function.
SILENT = Progress()
