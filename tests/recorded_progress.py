"""`RecordedProgress`: a `hvm1.progress.Progress` that keeps every call, for tests of what a run reports."""

from __future__ import annotations

from hvm1.progress import Progress


class RecordedProgress(Progress):
    """Keeps each call as a tuple in `calls`: ('note', message), ('keeping', sentence), ('start', total, unit,
    label), ('advance', done, item) and ('close',)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def note(self, message: str) -> None:
        self.calls.append(("note", message))

    def keeping(self, sentence: str) -> None:
        self.calls.append(("keeping", sentence))

    def start(self, total: int | None, unit: str = "item", label: str = "") -> None:
        self.calls.append(("start", total, unit, label))

    def advance(self, done: int, item: str = "") -> None:
        self.calls.append(("advance", done, item))

    def close(self) -> None:
        self.calls.append(("close",))

    def stages(self) -> list[tuple]:
        """The calls of the stages alone (start, advance, close), without the notes."""
        return [call for call in self.calls if call[0] in ("start", "advance", "close")]
