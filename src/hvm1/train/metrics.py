"""Training metrics: one JSON line per record in the run folder, mirrored to TensorBoard when it is installed."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from hvm1.files import write_atomically

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class MetricsWriter:
    """Appends records (`{'kind': 'train' | 'epoch' | 'eval' | 'skipped', 'step': ..., ...}`) to
    `out_dir/metrics.jsonl`, flushed at
    every record so a killed run loses none, and their numbers to TensorBoard (`out_dir/tensorboard`) when
    `tensorboard` is true and the package is installed. Writes nothing when `enabled` is false (ranks > 0).

    `resumed_at`: the step of the checkpoint a resumed run continues from. The records of later steps (written
    before the run stopped, and about to be written again) are first removed from the file, and TensorBoard
    purges its own, so that each step is in the metrics once.
    """

    def __init__(
        self, out_dir: str | os.PathLike, enabled: bool = True, tensorboard: bool = True, resumed_at: int | None = None
    ) -> None:
        self.path = Path(out_dir) / METRICS_FILE
        self.enabled = enabled
        if enabled and resumed_at is not None and self.path.is_file():
            _drop_records_after(self.path, resumed_at)
        self._file = open(self.path, "a") if enabled else None
        purge = None if resumed_at is None else resumed_at + 1
        self._board = _summary_writer(Path(out_dir) / "tensorboard", purge) if enabled and tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (its numbers also to TensorBoard); nothing when disabled."""
        if self._file is None:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._board is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch") and math.isfinite(value):
                    self._board.add_scalar(f"{record.get('kind', 'train')}/{key}", value, record["step"])

    def close(self) -> None:
        """Close the file and the TensorBoard writer."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._board is not None:
            self._board.close()
            self._board = None


def _drop_records_after(path: Path, step: int) -> None:
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a run killed while writing it
        if record.get("step", 0) <= step:
            kept.append(line + "\n")
    write_atomically(path, lambda handle: handle.write("".join(kept).encode()))


def _summary_writer(folder: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.info("tensorboard is not installed: metrics go to %s only", METRICS_FILE)
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


def read_metrics(out_dir: str | os.PathLike, kind: str = "train") -> list[dict[str, Any]]:
    """The records of one kind in a run folder's metrics file, one per step.

    A file from a resumed run before `MetricsWriter(resumed_at=)` may repeat the steps after its checkpoint:
    the later record of a step wins.

    Args:
        out_dir: the run folder.
        kind: the records' `"kind"`: 'train' (a line per step), 'epoch' or 'eval'.

    Returns:
        The records (dicts as written), in step order.

    Raises:
        FileNotFoundError: the folder has no metrics file.
    """
    by_step: dict[int, dict[str, Any]] = {}
    with open(Path(out_dir) / METRICS_FILE) as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("kind") == kind:
                by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]
