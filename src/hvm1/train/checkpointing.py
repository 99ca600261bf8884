"""Training checkpoints: the published format plus what an exact resume needs, written so nothing is lost.

A checkpoint is `{'model', 'optimizer', 'epoch', 'scaler', 'args'}` as the published ones (`args` an
`argparse.Namespace` holding the architecture fields, so `hvm1.load_model` reads the file as it reads a
published one), plus `step` (optimizer steps done), `sampler` (the epoch, and the micro-batches per rank and files in all done in it) and `rng`
(each rank's torch generator states). Files are written to a temporary name, fsynced, then renamed: a
process killed at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import torch

from hvm1.files import write_atomically

logger = logging.getLogger(__name__)

LAST = "checkpoint-last.pth"
BEST = "checkpoint-best.pth"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write `payload` with `torch.save` atomically (temporary file in the same folder, fsync, rename, fsync of
    the folder); returns the path."""
    return write_atomically(path, lambda handle: torch.save(payload, handle))


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint for resuming (safely: tensors, plain containers and `argparse.Namespace`).

    Raises FileNotFoundError for a missing file and ValueError naming the file when it is no training
    checkpoint of this project (no `step`, e.g. a published checkpoint: start from it with `--checkpoint`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    with torch.serialization.safe_globals([argparse.Namespace]):
        payload = torch.load(path, map_location="cpu", weights_only=True)
    missing = [key for key in ("model", "optimizer", "step", "sampler", "rng") if key not in payload]
    if missing:
        raise ValueError(
            f"{path} cannot be resumed: it lacks {', '.join(missing)} (a published or foreign checkpoint); "
            f"start a new run from it with --checkpoint instead"
        )
    return payload


def find_resume_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint of a run folder (`checkpoint-last.pth`, rewritten at every save), or None."""
    path = Path(out_dir) / LAST
    return path if path.is_file() else None


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
