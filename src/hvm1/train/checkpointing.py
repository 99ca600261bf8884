"""Training checkpoints: the published format plus what an exact resume needs, written so nothing is lost.

A checkpoint is `{'model', 'optimizer', 'epoch', 'scaler', 'args'}` as the published ones (`args` an
`argparse.Namespace` holding the architecture fields, so `hvm1.load_model` reads the file as it reads a
published one), plus `step` (optimizer steps done), `sampler` (the epoch, and the micro-batches per rank and files in
all done in it) and `rng`
(each rank's torch generator states). Files are written to a temporary name, fsynced, then renamed: a
process killed at any moment leaves either the old file or the new one, never a torn one. The one before
the newest is kept as `checkpoint-previous.pth`, so a newest file damaged afterwards (a bad disk, a cut
copy) still leaves one to resume from; all are read through the one loader in `hvm1.checkpoint`.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hvm1.checkpoint import CheckpointError, read_payload
from hvm1.data import sample_generator
from hvm1.files import write_atomically

logger = logging.getLogger(__name__)

LAST = "checkpoint-last.pth"
PREVIOUS = "checkpoint-previous.pth"  # the last one before the newest: kept until a newer one is complete
BEST = "checkpoint-best.pth"
# What `--resume auto` looks at, newest first when their steps tie.
RESUME_CANDIDATES = (LAST, PREVIOUS, BEST)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any], keep_previous: str | None = None) -> Path:
    """Write `payload` with `torch.save` atomically (temporary file in the same folder, fsync, rename, fsync of
    the folder); returns the path.

    With `keep_previous` (a file name in the same folder), the file at `path` is first kept under that name
    (a hard link, or a rename where the file system has none), so that a complete checkpoint is there
    whatever happens to the new one, while it is written and after.
    """
    path = Path(path)
    if keep_previous is not None and path.is_file():
        previous = path.with_name(keep_previous)
        previous.unlink(missing_ok=True)
        try:
            os.link(path, previous)
        except OSError:
            os.replace(path, previous)
    return write_atomically(path, lambda handle: torch.save(payload, handle))


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint for resuming, through the one loader (`hvm1.checkpoint.read_payload`:
    safe, memory-mapped, so each rank maps the file instead of reading all of it).

    Raises FileNotFoundError for a missing file, and `CheckpointError` (a ValueError) naming the file when
    it is truncated or corrupt, or no training checkpoint of this project (no `step`, e.g. a published
    checkpoint: start from it with `--checkpoint`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    payload = read_payload(path)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a training checkpoint")
    missing = [key for key in ("model", "optimizer", "step", "sampler", "rng") if key not in payload]
    if missing:
        raise CheckpointError(
            f"{path} cannot be resumed: it lacks {', '.join(missing)} (a published or foreign checkpoint); "
            f"start a new run from it with --checkpoint instead"
        )
    return payload


def run_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint files of a run folder that `--resume auto` considers (last, previous, best)."""
    return [path for path in (Path(out_dir) / name for name in RESUME_CANDIDATES) if path.is_file()]


def load_newest_checkpoint(out_dir: str | os.PathLike, set_aside: bool = False) -> tuple[Path, dict[str, Any]] | None:
    """The newest good checkpoint of a run folder and its payload, for `--resume auto`; None when it has none.

    Every candidate (`run_checkpoints`) is read through the one loader; the one with the most steps wins.
    A damaged one is named in a warning and passed over; with `set_aside` (one process of a run: rank 0)
    it is also renamed to `NAME.damaged`, so that the next save does not keep it as the previous
    checkpoint. Raises `CheckpointError` listing each file and why when none of them can be read.
    """
    good: list[tuple[int, int, Path, dict[str, Any]]] = []
    bad: list[str] = []
    for order, path in enumerate(run_checkpoints(out_dir)):
        try:
            payload = load_training_checkpoint(path)
        except FileNotFoundError:
            continue  # set aside by rank 0 while this rank looked
        except CheckpointError as error:
            bad.append(str(error))
            if set_aside:
                aside = path.with_name(path.name + ".damaged")
                os.replace(path, aside)
                logger.warning("cannot resume from %s (kept as %s): %s", path, aside.name, error)
            else:
                logger.warning("cannot resume from %s: %s", path, error)
            continue
        good.append((int(payload["step"]), -order, path, payload))
    if good:
        _, _, path, payload = max(good, key=lambda item: item[:2])
        if bad:
            logger.warning("resuming from %s (step %d), the newest good checkpoint", path, int(payload["step"]))
        return path, payload
    if bad:
        raise CheckpointError(f"no checkpoint in {out_dir} can be resumed from: " + "; ".join(bad))
    return None


def rng_state() -> dict[str, Any]:
    """This process's torch generator states (CPU, and CUDA when available)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states from `rng_state`."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class RunPosition:
    """Where a run stands: optimizer `step`s done in all, the `epoch`, the micro-batches per rank done in it
    (`batches`), the best validation value so far, and the epoch's step losses so far as [sum, count] (so
    that a resumed run writes the epoch-mean loss an uninterrupted one would)."""

    step: int = 0
    epoch: int = 0
    batches: int = 0
    best_value: float | None = None
    epoch_loss: list[float] = field(default_factory=lambda: [0.0, 0])


def training_payload(
    model_state: dict[str, Any],
    optimizer_state: dict[str, Any],
    scaler_state: dict[str, Any],
    args: dict[str, Any],
    position: RunPosition,
    batch_size: int,
    world_size: int,
    rng_states: list[dict[str, Any]],
) -> dict[str, Any]:
    """The checkpoint of a run at `position` (see the module doc): the published keys, `args` as an
    `argparse.Namespace`, plus the step, the sampler position in files and every rank's generator states."""
    return {
        "model": model_state,
        "optimizer": optimizer_state,
        "epoch": position.epoch,
        "scaler": scaler_state,
        "args": argparse.Namespace(**{key: _plain(value) for key, value in args.items()}),
        "step": position.step,
        "sampler": {
            "epoch": position.epoch,
            "batches": position.batches,
            "samples": position.batches * batch_size * world_size,
        },
        "rng": {"world_size": world_size, "states": rng_states},
        "best_value": position.best_value,
        "epoch_loss": position.epoch_loss,
    }


def resume_position(payload: dict[str, Any], path: Path, batch_size: int, world_size: int) -> RunPosition:
    """Where the run of `payload` (read from `path`) stopped, in this run's micro-batches of `batch_size` files
    per rank on `world_size` ranks. Raises ValueError when the files done are not a whole number of them."""
    # The position is stored in files, so a run may resume with another rank count or batch size as long as
    # the files done so far are a whole number of its micro-batches; it then reads the same files.
    sampler = payload["sampler"]
    per_batch = batch_size * world_size
    if sampler["samples"] % per_batch:
        raise ValueError(
            f"{path} stopped {sampler['samples']} files into epoch {sampler['epoch']}, not a whole number of "
            f"this run's micro-batches of {batch_size} files x {world_size} ranks: resume with a batch size "
            f"that divides it"
        )
    return RunPosition(
        int(payload["step"]),
        int(sampler["epoch"]),
        sampler["samples"] // per_batch,
        payload.get("best_value"),
        list(payload.get("epoch_loss", [0.0, 0])),
    )


def restore_rng(payload: dict[str, Any], path: Path, seed: int, rank: int, world_size: int) -> None:
    """Restore this rank's generator states from `payload`; when it was written by another number of ranks,
    reseed from (seed, step, rank) instead, with a warning."""
    states = payload["rng"]
    if states["world_size"] == world_size:
        set_rng_state(states["states"][rank])
        return
    logger.warning(
        "%s was written by %d ranks, this run has %d: generator states reseeded",
        path.name,
        states["world_size"],
        world_size,
    )
    torch.manual_seed(sample_generator(seed, int(payload["step"]), rank).initial_seed())


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value
