"""A wall-clock timer around a model class's `forward`, shared by the benchmarks that time a command's forward
passes from inside the command's own run (bench_complete.py, bench_demo.py)."""

from __future__ import annotations

import time

import torch


def time_forwards(model_class: type[torch.nn.Module]) -> list[float]:
    """Wrap `model_class.forward` so every call appends its seconds (CUDA synchronised, for tensors on a GPU) to
    the returned list, which the caller reads as the run goes; for the rest of the process."""
    seconds: list[float] = []
    forward = model_class.forward

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        result = forward(self, *args, **kwargs)
        if result[0].device.type == "cuda":
            torch.cuda.synchronize(result[0].device)
        seconds.append(time.perf_counter() - start)
        return result

    model_class.forward = timed  # type: ignore[method-assign]
    return seconds
