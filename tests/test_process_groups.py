"""The one process-group module: device choice through hvm1.devices, join only when torchrun asks, leave
only a group it joined (the two-process runs are in tests/train/test_distributed.py and tests/eval)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from hvm1.devices import resolve_device
from hvm1.distributed import process_group, setup_distributed


def test_a_single_process_joins_nothing_and_picks_the_device_as_every_command_does(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = setup_distributed("auto")
    assert (context.rank, context.world_size, context.owns_group) == (0, 1, False)
    assert context.device.type == resolve_device("auto").type
    with process_group("cpu") as context:
        assert context.device == torch.device("cpu") and not dist.is_initialized()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' was asked for"):
            setup_distributed("cuda")


def test_a_group_the_caller_joined_is_used_and_left_to_the_caller(monkeypatch, tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        monkeypatch.setenv("WORLD_SIZE", "1")
        with process_group("cpu") as context:
            assert not context.owns_group
        assert dist.is_initialized()
        monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun, with the group already there
        with pytest.raises(RuntimeError, match="boom"):
            with process_group("cpu") as context:
                assert context.is_distributed and not context.owns_group
                raise RuntimeError("boom")
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()
