"""Seeded draws: every random choice about a sample comes from a generator seeded by what identifies it.

`sample_generator(seed, epoch, index, ...)` seeds the draws of one training sample (clip start, short side,
crop, flip, random erasing, mask noise) and of an epoch's order; `file_generator(seed, path)` those of one
file by its name (the masks of `hvm1 complete`); `select_shots` and `select_files` draw subsets. The same
key gives the same draws in every process, whatever ran before (unlike torch's global generator or
Python's salted `hash`), so neither a resume nor the number of ranks or workers changes them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import torch

T = TypeVar("T")


def sample_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by integers, the same in every process.

    Args:
        *key: the integers (e.g. seed, epoch, index, repeat).

    Returns:
        The generator.
    """
    digest = hashlib.blake2b(repr(tuple(int(k) for k in key)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def file_generator(seed: int, path: str | os.PathLike) -> torch.Generator:
    """A CPU generator seeded from a seed and a file's name (not its folder).

    A file gets the same draws whichever other files run beside it and whichever folder it is named from.

    Args:
        seed: the run's seed.
        path: the file.

    Returns:
        The generator.
    """
    digest = hashlib.sha256(f"{seed}:{Path(path).name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def select_shots(labels: Sequence[int], shots: int, seed: int) -> list[int]:
    """Draw a number of examples per class, the same draw on every machine.

    Args:
        labels: each example's class.
        shots: examples per class.
        seed: the seed of the draw.

    Returns:
        The chosen examples' indices, in dataset order.

    Raises:
        ValueError: a class has fewer examples (named)."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    chosen = []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < shots:
            raise ValueError(f"class {label} has {len(members)} examples, fewer than --shots {shots}")
        order = torch.randperm(len(members), generator=sample_generator(seed, label)).tolist()
        chosen += [members[i] for i in order[:shots]]
    return sorted(chosen)


def select_files(files: Sequence[T], count: int | None, seed: int) -> list[T]:
    """`count` of `files` drawn at random with `seed` (all of them when `count` is None or too large), in
    their order. Raises ValueError for a `count` below 1.

    Args:
        files: what to draw from.
        count: how many (None: all).
        seed: the seed of the draw.

    Returns:
        The drawn files, in their order.
    """
    if count is not None and count < 1:
        raise ValueError(f"the number of files to draw must be >= 1, got {count}")
    if count is None or count >= len(files):
        return list(files)
    chosen = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:count]
    return [files[i] for i in sorted(chosen.tolist())]
