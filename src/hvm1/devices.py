"""Choosing the device a command runs on, and the precision it computes in there."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .settings import DEVICE_CHOICES, PRECISION_CHOICES

__all__ = [
    "CPUINFO",
    "DEVICE_CHOICES",
    "PRECISION_CHOICES",
    "Precision",
    "cpu_bf16_units",
    "fast_bf16",
    "keep_freed_memory",
    "resolve_device",
    "resolve_precision",
]


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device a name means.

    Args:
        name: 'auto' (or None) picks cuda, then mps, then cpu; 'cpu', 'cuda', 'cuda:1', 'mps' or a device.

    Returns:
        The device.

    Raises:
        ValueError: the device asked for is not available here (named in the message).
    """
    if isinstance(name, torch.device):
        return name
    name = name or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but this PyTorch build sees no CUDA GPU")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for, but MPS is not available here")
    return device


# --- Precision: which floating-point format a command computes in -------------------------------------

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# The /proc/cpuinfo flags of the x86 units that multiply bf16 at several times the float32 rate.
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: Where `cpu_bf16_units` reads the CPU's flags (its `flags` line) when PyTorch cannot say; no such file: no flags.
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: `name` ('fp32', 'bf16' or 'fp16'), its `dtype`, and `reason`, a sentence
    saying why it was chosen (what a command prints). Non-float32 precisions run as autocast: the weights stay
    float32 and matrix products (linear layers, attention) compute in `dtype`, while LayerNorm, softmax, the
    residual stream and losses stay float32. `autocast(device)` is the context to run the model in; under
    fp32 it changes nothing, so float32 results are bit for bit those without it. A model that runs only for
    inference at this precision is prepared for it once by `hvm1.inference.prepare_for_inference`."""

    name: str
    dtype: torch.dtype
    reason: str

    @property
    def is_float32(self) -> bool:
        """True when nothing is computed in a lower precision."""
        return self.dtype == torch.float32

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager:
        """The context that runs a model at this precision.

        Args:
            device: the device the model runs on.

        Returns:
            `torch.autocast` at this precision's dtype, or a context that does nothing under fp32.
        """
        if self.is_float32:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=self.dtype)

    def describe(self) -> str:
        """'fp32', or e.g. 'bf16 autocast': how embedding files and summaries record it."""
        return self.name if self.is_float32 else f"{self.name} autocast"


def _cpuinfo_flags() -> set[str]:
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_bf16_units() -> list[str]:
    """The CPU's bf16 matrix units: 'amx' (or the flag 'amx_bf16') and/or 'avx512_bf16'; empty: none.

    Asked of PyTorch's own CPU feature query (`torch.cpu._is_amx_tile_supported`,
    `torch.cpu._is_avx512_bf16_supported`, from the cpuinfo library, any OS) when this build has it, else
    read from the Linux `/proc/cpuinfo` flags. Where these units exist oneDNN multiplies bf16 several times
    faster than float32 (`benchmarks/bench_models.py` prints both rooflines); elsewhere bf16 is emulated and
    far slower."""
    queries = {"amx": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    if all(hasattr(torch.cpu, query) for query in queries.values()):
        return [flag for flag, query in queries.items() if getattr(torch.cpu, query)()]
    flags = _cpuinfo_flags()
    return [flag for flag in _BF16_CPU_FLAGS if flag in flags]


def fast_bf16(device: torch.device | str) -> tuple[bool, str]:
    """Whether a device computes bf16 matrix products faster than float32.

    CUDA: a GPU with native bf16 (compute capability 8.0 and up, `torch.cuda.is_bf16_supported` without
    emulation). CPU: AMX-BF16 or AVX512-BF16 units (`cpu_bf16_units`). MPS and anything else: no.

    Args:
        device: the device.

    Returns:
        `(fast, reason)`: whether it is fast, and why, in words.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(device)} computes bf16 natively"
        return False, f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type == "cpu":
        units = cpu_bf16_units()
        if units:
            return True, f"this CPU has bf16 matrix units ({', '.join(units)})"
        return False, "this CPU has no bf16 matrix units (no amx_bf16 or avx512_bf16)"
    return False, f"bf16 is not known to be faster than float32 on {device.type}"


def resolve_precision(name: str | Precision | None, device: torch.device | str) -> Precision:
    """The precision a name means on a device: the one place every command and training job decides it.

    'auto' is bf16 where `fast_bf16(device)` says the device computes it fast, float32 elsewhere; a named
    precision is taken as asked (its reason warns when bf16 or fp16 will be slow there).

    Args:
        name: 'auto', 'fp32', 'bf16' or 'fp16' (None means 'auto'), or a `Precision` (returned as it is).
        device: the device the model runs on.

    Returns:
        The `Precision`: its name, dtype and the reason it was chosen.

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(name, Precision):
        return name
    name = name or "auto"
    if name not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {name!r}")
    device = torch.device(device)
    fast, why = fast_bf16(device)
    if name == "auto":
        chosen = "bf16" if fast else "fp32"
        return Precision(chosen, _DTYPES[chosen], f"auto: {why}")
    reason = f"asked for on {device.type}"
    if name == "bf16" and not fast:
        reason += f"; {why}, so it may be much slower than fp32"
    if name == "fp16" and device.type == "cpu":
        reason += "; CPUs compute fp16 slower than bf16"
    return Precision(name, _DTYPES[name], reason)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of handing it back to the OS; True when set.

    glibc serves each allocation above its mmap threshold (at most 32 MB, dynamically) with fresh pages from
    the kernel and unmaps them on free, so every large activation of a forward pass (a ViT-H block makes
    about 200 MB of them at 2048 tokens) is page-faulted and zeroed again on each call: ~40,000 page faults per
    block. Raising the mmap and trim thresholds (`mallopt`) keeps freed blocks in the heap for the next
    call, at the cost of the process keeping its peak heap until it exits. A process-wide choice, so the
    `hvm1` command makes it and the library never does; False (nothing changed) where the C library is not
    glibc.

    It also asks PyTorch to put its allocations of 2 MB and more on transparent huge pages
    (`THP_MEM_ALLOC_ENABLE=1`, unless the environment already says), which PyTorch reads at its first CPU
    allocation, so this takes effect only in a process that has not allocated a tensor yet: memory touched for
    the first time (the packed weights of `hvm1.inference`, the first forward's activations) then costs one
    page fault per 2 MB instead of per 4 KB."""
    import ctypes
    import ctypes.util
    import os
    import platform

    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # 1 GB: below it every block is reused; larger ones (a 448 px attention matrix) still come from mmap.
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))
