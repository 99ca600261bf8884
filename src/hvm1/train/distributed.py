"""Parallelism around a plain model: DDP or FSDP2, deterministic sharding, full state.

Launch the same training command under `torchrun` and `hvm1.distributed.process_group` (the one module that
joins and leaves process groups, shared with `hvm1 embed`) reads the environment it sets, joins the group
and picks the device. `wrap_model` then wraps the model: `DistributedDataParallel`, or with `fsdp=True` FSDP2's
`fully_shard` on every transformer block and on the root. Model code never knows about any of this.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.utils.data import Sampler

from hvm1.data import sample_generator
from hvm1.distributed import DistributedContext
from hvm1.models import VideoMAE, VideoViT

logger = logging.getLogger(__name__)


def wrap_model(model: VideoViT | VideoMAE, context: DistributedContext, fsdp: bool = False) -> nn.Module:
    """The model as training calls it: DDP across processes, FSDP2 (`fully_shard` per block, then the root)
    with `fsdp`, or the model itself for one process without `fsdp`.

    FSDP2 shards parameters, gradients and optimizer state across the ranks; the module stays the same object
    (its class becomes an FSDP subclass) and its state-dict keys don't change.
    """
    if fsdp:
        if not dist.is_initialized():
            raise ValueError("--fsdp needs a process group: launch with torchrun (a single process shards nothing)")
        from torch.distributed.fsdp import fully_shard

        for block in model.transformer_blocks():
            fully_shard(block)
        fully_shard(model)
        return model
    if context.is_distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return model


def gradient_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """A context in which backward does (`sync`) or doesn't all-reduce gradients: off for all but the last
    micro-batch of an accumulated step."""
    if isinstance(model, nn.parallel.DistributedDataParallel) and not sync:
        return model.no_sync()
    set_sync = getattr(model, "set_requires_gradient_sync", None)  # FSDP2
    if set_sync is not None:
        set_sync(sync)
    return contextlib.nullcontext()


class ShardedSampler(Sampler[tuple[int, int]]):
    """Deterministic sharding of a dataset into global batches, like `DistributedSampler` with `drop_last`.

    Epoch e is a permutation of the dataset drawn from (seed, e) (or the identity without `shuffle`), cut to
    whole global batches of `batch_size * world_size`; rank r takes every world_size-th index from r, so
    micro-batch b of every rank together holds exactly the global batch b that one process would take. It
    yields `(epoch, index)` pairs, so a dataset can seed each sample's randomness by both, and `set_epoch`
    can start at any micro-batch (`start_batch`) to resume mid-epoch.
    """

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        context: DistributedContext,
        seed: int,
        shuffle: bool = True,
    ) -> None:
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.rank = context.rank
        self.world_size = context.world_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches each rank takes per epoch."""
        return self.dataset_size // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Take epoch `epoch`'s order, starting at this rank's micro-batch `start_batch`."""
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.start_batch, 0) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.dataset_size, generator=sample_generator(self.seed, self.epoch)).tolist()
        else:
            order = list(range(self.dataset_size))
        order = order[: self.batches_per_epoch * self.batch_size * self.world_size]
        mine = order[self.rank :: self.world_size]
        for index in mine[self.start_batch * self.batch_size :]:
            yield self.epoch, index


# Full (unsharded) tensors on the CPU (so a checkpoint loads anywhere); on several ranks, on rank 0 only.
FULL_ON_CPU = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module) -> dict[str, Any]:
    """The model's full state dict with the plain keys (no `module.`), on rank 0; a collective on several
    ranks (every rank must call it), empty on ranks other than 0."""
    return get_model_state_dict(model, options=FULL_ON_CPU)


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's full state in `torch.optim` format (parameters numbered in param-group order, as the
    published checkpoints store it), on rank 0; a collective like `full_model_state`."""
    state: dict[str, Any] = get_optimizer_state_dict(model, optimizer, options=FULL_ON_CPU)
    if not state:
        return {}
    names = [name for group in state["param_groups"] for name in group["params"]]
    number = {name: i for i, name in enumerate(names)}
    return {
        "state": {number[name]: value for name, value in state["state"].items()},
        "param_groups": [group | {"params": [number[n] for n in group["params"]]} for group in state["param_groups"]],
    }


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    model_state: dict[str, Any],
    optimizer_state: dict[str, Any] | None,
    parameter_names: list[list[str]],
) -> None:
    """Load full (unsharded) model and optimizer state, as `full_*_state` return them, into a plain, DDP or
    FSDP2 model on every rank. `parameter_names` names the parameters of each optimizer param group, in
    order (the numbering of `optimizer_state`)."""
    options = StateDictOptions(full_state_dict=True, strict=True)
    set_model_state_dict(model, model_state, options=options)
    if optimizer is None or optimizer_state is None:
        return
    names = [name for group in parameter_names for name in group]
    if len(names) != sum(len(group["params"]) for group in optimizer_state["param_groups"]):
        raise ValueError(
            f"the stored optimizer state has {sum(len(g['params']) for g in optimizer_state['param_groups'])} "
            f"parameters, this model's optimizer {len(names)}"
        )
    by_name: dict[str, Any] = {
        "state": {names[i]: value for i, value in optimizer_state["state"].items()},
        "param_groups": [
            group | {"params": [names[i] for i in group["params"]]} for group in optimizer_state["param_groups"]
        ],
    }
    set_optimizer_state_dict(model, optimizer, by_name, options=options)
