"""Training samples whose every random choice is a function of (seed, epoch, sample index).

`TrainClips` reads a file through a preset (`hvm1.data`) `repeat_aug` times, each clip with its own generator
seeded by (seed, epoch, index, repeat): the clip start, short side, crop, flip, random erasing and the MAE
mask noise all come from it. Neither a resume, nor the number of ranks or DataLoader workers, nor the order
in which samples are read changes any of them. A file that cannot be read becomes a `Skipped` marker that
`collate_train` hands on, never another file.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from hvm1.data import Skipped, read_image, skipped_for
from hvm1.data.transforms import hflip, image_to_clip, normalize, random_resized_crop


def sample_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by the integers `key` (e.g. seed, epoch, index, repeat), the same in every
    process (unlike Python's salted `hash`)."""
    digest = hashlib.blake2b(repr(tuple(int(k) for k in key)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


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


class ImageTrainPreset:
    """Training reads of a still image: random resized crop (`crop_scale`, aspect 3/4-4/3) to `img_size`,
    a flip half of the time, normalisation, repeated to a static clip of `num_frames` frames.

    Has the `load(path, start=None, generator=None)` method of the `hvm1.data` presets.
    """

    def __init__(
        self,
        img_size: int,
        num_frames: int,
        mean: Sequence[float],
        std: Sequence[float],
        crop_scale: tuple[float, float] = (0.08, 1.0),
    ) -> None:
        self.img_size = img_size
        self.num_frames = num_frames
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.crop_scale = crop_scale

    def load(self, path: str | os.PathLike, start=None, generator: torch.Generator | None = None):
        """The image at `path` as an augmented static clip (C, T, H, W) float32, and 0 padded frames."""
        image = random_resized_crop(read_image(Path(path)), self.img_size, self.crop_scale, generator=generator)
        if torch.rand((), generator=generator).item() < 0.5:
            image = hflip(image)
        return image_to_clip(normalize(image, self.mean, self.std), self.num_frames), 0


def random_erasing(
    clip: torch.Tensor,
    probability: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 1 / 3),
    aspect: tuple[float, float] = (0.3, 1 / 0.3),
) -> torch.Tensor:
    """Random erasing of a normalised clip (C, T, H, W), frame by frame as the published loader applies it:
    with `probability`, a rectangle of `area` (fraction) and `aspect` is replaced by standard normal noise."""
    channels, frames, height, width = clip.shape
    clip = clip.clone()
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    for t in range(frames):
        if torch.rand((), generator=generator).item() >= probability:
            continue
        for _ in range(10):
            draws = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            target = height * width * (area[0] + draws[0] * (area[1] - area[0]))
            ratio = math.exp(log_aspect[0] + draws[1] * (log_aspect[1] - log_aspect[0]))
            h, w = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < h < height and 0 < w < width:
                top = int(torch.randint(0, height - h + 1, (), generator=generator))
                left = int(torch.randint(0, width - w + 1, (), generator=generator))
                clip[:, t, top : top + h, left : left + w] = torch.randn(channels, h, w, generator=generator)
                break
    return clip


def select_shots(labels: Sequence[int], shots: int, seed: int) -> list[int]:
    """The indices of `shots` examples per class, drawn with `seed` (the same draw on every machine), in
    dataset order. Raises ValueError naming a class with fewer examples."""
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
