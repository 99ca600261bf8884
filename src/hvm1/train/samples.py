"""Training samples whose every random choice is a function of (seed, epoch, sample index).

`TrainClips` reads a file through a preset (`hvm1.data`) `repeat_aug` times, each clip with its own generator
seeded by (seed, epoch, index, repeat): the clip start, short side, crop, flip, random erasing and the MAE
mask noise all come from it. Neither a resume, nor the number of ranks or DataLoader workers, nor the order
in which samples are read changes any of them. A file that cannot be read becomes a `Skipped` marker that
`collate_train` hands on, never another file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from hvm1.data import Skipped, random_erasing, sample_generator, skipped_for


class TrainSample(NamedTuple):
    """One readable file: `video` (repeat_aug, C, T, H, W) float32, `label` (-1 when unlabelled), `noise`
    (repeat_aug, L) MAE mask noise or None, the dataset `index` and the `path`."""

    video: torch.Tensor
    label: int
    noise: torch.Tensor | None
    index: int  # type: ignore[assignment]  # the published name; shadows tuple.index, which nothing here calls
    path: str


class TrainBatch(NamedTuple):
    """A collated micro-batch: the clips of its readable samples (N * repeat_aug, C, T, H, W), their labels
    (N * repeat_aug,) and mask noise, the dataset indices (N,), and the files skipped. The tensors are None
    when every file of the micro-batch was skipped."""

    video: torch.Tensor | None
    label: torch.Tensor | None
    noise: torch.Tensor | None
    index: torch.Tensor | None  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
    skipped: list[Skipped]


def collate_train(items: Sequence[TrainSample | Skipped]) -> TrainBatch:
    """DataLoader collate function for `TrainClips`: flattens the repeats into the batch, passes markers on."""
    samples = [item for item in items if isinstance(item, TrainSample)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    if not samples:
        return TrainBatch(None, None, None, None, skipped)
    repeats = samples[0].video.shape[0]
    noise = None if samples[0].noise is None else torch.cat([sample.noise for sample in samples if sample.noise is not None])
    return TrainBatch(
        video=torch.cat([sample.video for sample in samples]),
        label=torch.tensor([sample.label for sample in samples for _ in range(repeats)], dtype=torch.long),
        noise=noise,
        index=torch.tensor([sample.index for sample in samples], dtype=torch.long),
        skipped=skipped,
    )


class TrainClips(Dataset):
    """Files read for training: item `(epoch, index)` is file `index` read `repeat_aug` times through
    `preset.load(path, generator=...)` (any `hvm1.data` preset, or an object with that method).

    `random_erasing`: the probability of erasing a random rectangle of each frame (with noise, as published
    finetuning does); `mask_tokens`: with L > 0, each clip also gets (L,) uniform MAE mask noise. A file that
    cannot be read gives a `Skipped` marker (logged), never another file.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        preset,
        labels: Sequence[int] | None = None,
        repeat_aug: int = 1,
        seed: int = 0,
        random_erasing: float = 0.0,
        mask_tokens: int = 0,
    ) -> None:
        if labels is not None and len(labels) != len(files):
            raise ValueError(f"got {len(labels)} labels for {len(files)} files")
        if repeat_aug < 1:
            raise ValueError(f"repeat_aug must be at least 1, got {repeat_aug}")
        self.files = [Path(file) for file in files]
        self.labels = [-1] * len(self.files) if labels is None else [int(label) for label in labels]
        self.preset = preset
        self.repeat_aug = repeat_aug
        self.seed = seed
        self.random_erasing = random_erasing
        self.mask_tokens = mask_tokens

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> TrainSample | Skipped:
        epoch, index = key
        path = self.files[index]
        clips, noises = [], []
        try:
            for repeat in range(self.repeat_aug):
                generator = sample_generator(self.seed, epoch, index, repeat)
                clip, _ = self.preset.load(path, generator=generator)  # (C, T, H, W)
                if self.random_erasing > 0:
                    clip = random_erasing(clip, self.random_erasing, generator)
                clips.append(clip)
                if self.mask_tokens:
                    noises.append(torch.rand(self.mask_tokens, generator=generator))
        except Exception as error:  # whatever reading one file raises is that file's failure
            return skipped_for(path, error)  # the training loop reports it, with the step
        noise = torch.stack(noises) if noises else None
        return TrainSample(torch.stack(clips), self.labels[index], noise, index, str(path))
