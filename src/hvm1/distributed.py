"""Process groups: the one place that joins, uses and leaves the group `torchrun` describes.

Launch a command under `torchrun` and `process_group` reads the environment it sets (`RANK`, `WORLD_SIZE`,
`LOCAL_RANK`), picks this rank's device (`hvm1.devices.resolve_device`, then the local rank's GPU on CUDA),
joins the group (NCCL on CUDA, gloo otherwise) and leaves it at the end: after a barrier when the body
finished, at once when it raised. Training (`hvm1.train`) and embedding (`hvm1.eval.embed_videos`) both use
it; outside torchrun it is a single process and touches no process group.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .devices import resolve_device

logger = logging.getLogger(__name__)

#: How long a collective waits for the slowest rank: training steps are short, but ranks that embed uneven
#: shards of long videos wait for each other at the end of theirs.
TRAINING_TIMEOUT = datetime.timedelta(minutes=30)
EMBEDDING_TIMEOUT = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs: its rank among `world_size` processes, its local rank and device, and
    whether it joined the process group itself (`owns_group`: then it also leaves it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files."""
        return self.rank == 0


def setup_distributed(
    device: str | torch.device | None = None, timeout: datetime.timedelta = TRAINING_TIMEOUT
) -> DistributedContext:
    """Join the process group `torchrun` describes in the environment, or run as a single process.

    `device` is resolved by `hvm1.devices.resolve_device` ('auto' or None: cuda, then mps, then cpu); on
    CUDA without an index each rank takes the GPU of its local rank. The backend is NCCL on CUDA, gloo
    otherwise; `timeout` bounds every collective. A group already joined (by the caller) is used as it is.

    Args:
        device: the device ('auto' or None: cuda, then mps, then cpu).
        timeout: the longest any collective may take.

    Returns:
        The `DistributedContext`: rank, world size, local rank, device, and whether this call joined the group.

    Raises:
        ValueError: the device asked for is not available.
    """
    target = resolve_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if target.type == "cuda":
        if target.index is None:
            target = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(target)
    owns = world_size > 1 and not dist.is_initialized()
    if owns:
        backend = "nccl" if target.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timeout, device_id=target if target.type == "cuda" else None)
        logger.info("rank %d of %d joined the %s process group on %s", rank, world_size, backend, target)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=target, owns_group=owns)


def teardown_distributed(context: DistributedContext, *, clean: bool = True) -> None:
    """Leave the process group `setup_distributed` joined (nothing to do for a single process, or for a
    group the caller had joined).

    Objects that still hold collective work (a DDP reducer in a reference cycle) are collected first, while
    the interpreter is fully alive: gloo aborts the process when they are destroyed at interpreter exit.
    After a `clean` run every rank also waits for the others, so none leaves while a peer still talks to it;
    after a failure it leaves at once (a barrier would wait for ranks that may never arrive).

    Args:
        context: what `setup_distributed` returned.
        clean: whether the run ended without an error (then every rank waits for the others).
    """
    if context.owns_group and dist.is_initialized():
        gc.collect()
        if clean:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(
    device: str | torch.device | None = None, timeout: datetime.timedelta = TRAINING_TIMEOUT
) -> Iterator[DistributedContext]:
    """`setup_distributed` for the body of a `with` block, then `teardown_distributed`: clean when the body
    finished, at once when it raised.

    Args:
        device: as `setup_distributed` takes it.
        timeout: as `setup_distributed` takes it.

    Yields:
        The `DistributedContext`.
    """
    context = setup_distributed(device, timeout)
    try:
        yield context
    except BaseException:
        teardown_distributed(context, clean=False)
        raise
    teardown_distributed(context)


def barrier(context: DistributedContext) -> None:
    """Wait until every rank got here (nothing for one process).

    Args:
        context: what `setup_distributed` returned.
    """
    if context.is_distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The sum of `values` over all ranks (the tensor itself for one process).

    Args:
        values: this rank's tensor.
        context: what `setup_distributed` returned.

    Returns:
        The sum.
    """
    if context.is_distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def all_gather_objects(obj: Any, context: DistributedContext) -> list[Any]:
    """Every rank's `obj`, in rank order (picklable objects; `[obj]` for one process).

    Args:
        obj: this rank's object.
        context: what `setup_distributed` returned.

    Returns:
        One object per rank.
    """
    if not context.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def launch_rank() -> int:
    """This process's rank as `torchrun` set it in the environment (`RANK`), 0 outside torchrun.

    For what must be decided before any process group exists (a command line that prints only on rank 0).
    """
    return int(os.environ.get("RANK", "0"))
