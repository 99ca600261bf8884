"""A wall-clock timer around a model class's `forward`, shared by the benchmarks that time a command's forward
passes from inside the command's own run (bench_complete.py, bench_demo.py)."""

from __future__ import annotations

import time

import torch


def time_forwards(model_class: type[torch.nn.Module], method: str = "forward") -> list[float]:
    """Wrap `model_class.forward` (or another `method` returning tensors) so every call appends its seconds (CUDA
    synchronised, for tensors on a GPU) to the returned list, which the caller reads as the run goes; for the rest
    of the process."""
    seconds: list[float] = []
    forward = getattr(model_class, method)

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        result = forward(self, *args, **kwargs)
        first = result if isinstance(result, torch.Tensor) else result[0]
        if first.device.type == "cuda":
            torch.cuda.synchronize(first.device)
        seconds.append(time.perf_counter() - start)
        return result

    setattr(model_class, method, timed)
    return seconds
