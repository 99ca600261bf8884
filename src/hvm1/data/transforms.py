"""Preprocessing as plain functions on tensors, and the presets that chain them for a model.

Spatial functions take any tensor whose last two dimensions are (H, W): a frame (C, H, W), a clip
(C, T, H, W), a batch. `normalize` takes channels first. A clip the model takes is (C, T, H, W) float32.
Presets take the model's facts as plain numbers (image size, frames, mean/std) so they do not depend on
model code; the model zoo passes them in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from hvm1.data.video import Start, read_clip, read_clips, read_image, short_side_size

CROP_POSITIONS = ("left", "center", "right")
CROPS = ("center", "uniform", "random_resized", "full")


def resize(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize the last two dimensions to `size` (H, W), antialiased; uint8 in gives uint8 out (rounded)."""
    *leading, height, width = x.shape
    if (height, width) == tuple(size):
        return x
    flat = x.reshape(-1, 1, height, width)  # (N, 1, H, W): every channel and frame alike
    out = F.interpolate(flat.float(), size=tuple(size), mode=interpolation, align_corners=False, antialias=True)
    if x.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out.reshape(*leading, *size)


def resize_short_side(x: torch.Tensor, size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Resize so that the shorter of the last two dimensions is `size`, keeping the aspect ratio."""
    return resize(x, short_side_size(x.shape[-2], x.shape[-1], size), interpolation)


def _crop_size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def _check_fits(x: torch.Tensor, height: int, width: int) -> None:
    if height > x.shape[-2] or width > x.shape[-1]:
        raise ValueError(f"cannot crop {height}x{width} from a {x.shape[-2]}x{x.shape[-1]} image")


def center_crop(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The central `size` (an int for a square, or (H, W)) of the last two dimensions."""
    return uniform_crop(x, size, "center")


def uniform_crop(x: torch.Tensor, size: int | tuple[int, int], position: str) -> torch.Tensor:
    """A crop centred on the short side and at `position` ("left", "center", "right") along the long side.

    For a portrait frame "left" is the top and "right" the bottom; the three positions are the three
    spatial views of multi-view video evaluation. Odd margins put the extra pixel before the crop, as the
    published `uniform_crop` does.
    """
    if position not in CROP_POSITIONS:
        raise ValueError(f"position must be one of {CROP_POSITIONS}, got {position!r}")
    height, width = _crop_size(size)
    _check_fits(x, height, width)
    room_y, room_x = x.shape[-2] - height, x.shape[-1] - width
    along = {"left": 0.0, "center": 0.5, "right": 1.0}[position]
    if x.shape[-2] > x.shape[-1]:
        top, left = math.ceil(room_y * along), math.ceil(room_x / 2)
    else:
        top, left = math.ceil(room_y / 2), math.ceil(room_x * along)
    return x[..., top : top + height, left : left + width]


def random_resized_crop(
    x: torch.Tensor,
    size: int | tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """Crop a random area (a `scale` fraction of the image, aspect in `ratio`) and resize it to `size`.

    The same crop applies to every frame of a clip. Draws like torchvision's RandomResizedCrop: ten tries
    for a crop that fits, else the largest central crop with the aspect ratio clamped into `ratio`.
    """
    height, width = x.shape[-2], x.shape[-1]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        draws = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        target_area = area * (scale[0] + draws[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_ratio[0] + draws[1] * (log_ratio[1] - log_ratio[0]))
        crop_w = round(math.sqrt(target_area * aspect))
        crop_h = round(math.sqrt(target_area / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
            left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
            break
    else:
        in_ratio = width / height
        if in_ratio < ratio[0]:
            crop_w, crop_h = width, round(width / ratio[0])
        elif in_ratio > ratio[1]:
            crop_w, crop_h = round(height * ratio[1]), height
        else:
            crop_w, crop_h = width, height
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return resize(x[..., top : top + crop_h, left : left + crop_w], _crop_size(size), interpolation)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror the last dimension (left-right)."""
    return x.flip(-1)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Channels-first `x` (uint8 0-255 or float 0-1) to float32 `(x - mean) / std` per channel."""
    if len(mean) != x.shape[0] or len(std) != x.shape[0]:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {x.shape[0]} channels")
    shape = (-1,) + (1,) * (x.dim() - 1)  # broadcast over (T,) H, W
    std_t = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (std_t * (255.0 if x.dtype == torch.uint8 else 1.0))).float().view(shape)
    shift = (torch.tensor(mean, dtype=torch.float64) / std_t).float().view(shape)
    # (x / range - mean) / std in one pass that reads x (uint8 or float) and writes a fresh contiguous tensor.
    return torch.addcmul(-shift, x, scale, out=torch.empty(x.shape, dtype=torch.float32))


def to_cthw(frames: torch.Tensor) -> torch.Tensor:
    """Frames as decoded, (T, H, W, C), to the clip layout models take, (C, T, H, W)."""
    if frames.dim() != 4:
        raise ValueError(f"expected frames of shape (T, H, W, C), got {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2)


def image_to_clip(image: torch.Tensor, num_frames: int) -> torch.Tensor:
    """A still image (C, H, W) repeated into a static clip (C, T, H, W) of `num_frames` frames."""
    if image.dim() != 3:
        raise ValueError(f"expected an image of shape (C, H, W), got {tuple(image.shape)}")
    return image.unsqueeze(1).repeat(1, num_frames, 1, 1)


def _every(n: int) -> str:
    if n == 1:
        return "every frame"
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"every {n}{suffix} frame"


@dataclass(frozen=True)
class VideoPreset:
    """How a model's clips are read and preprocessed: decode parameters plus the tensor pipeline.

    `short_side` is the decode-time resize, fixed or a (low, high) range drawn per clip; `crop` is
    "center", "uniform" (the left, center and right views, stacked first), "random_resized" (with
    `crop_scale` and `crop_ratio`) or "full" (no crop: the whole frame at its aspect ratio, both sides
    rounded to the nearest multiple of `multiple`, see `whole_frame_preset`); `flip` mirrors half of the
    clips; `autorotate` applies the video's display rotation as players do (False: the frames as stored,
    see `hvm1.data.read_clip`). Build one with the functions below.
    """

    img_size: int
    num_frames: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sampling_rate: int
    short_side: int | tuple[int, int]
    target_fps: float = 30.0
    crop: str = "center"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = False
    start: Start = "center"
    multiple: int = 1
    autorotate: bool = True

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(map(repr, CROPS))}, got {self.crop!r}")
        if self.multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {self.multiple}")

    def describe(self, start: str | None = None) -> str:
        """What the preset does, in words and its own numbers (what `hvm1 info` prints); `start` words the
        clip's start when a caller places clips itself.

        Args:
            start: the clip's start in words (default: the preset's own start's).

        Returns:
            The description.
        """
        short = self.short_side if isinstance(self.short_side, int) else f"drawn in {list(self.short_side)}"
        start = start or {"center": "the middle of the video", "random": "a random start"}.get(
            str(self.start), str(self.start)
        )
        crop = {
            "center": f"center crop {self.img_size}",
            "uniform": f"left, center and right crops {self.img_size}",
            "random_resized": f"random resized crop to {self.img_size} (area {self.crop_scale[0]:g}-"
            f"{self.crop_scale[1]:g}, aspect {self.crop_ratio[0]:.2f}-{self.crop_ratio[1]:.2f})",
        }[self.crop]
        return (
            f"{self.num_frames} frames, {_every(self.sampling_rate)} at {self.target_fps:g} fps from {start}, "
            f"short side {short}, {crop}{', flip half' if self.flip else ''}"
        )

    def load(
        self, path: str | os.PathLike, start: Start | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """Read the clip at `start` (the preset's own when None) and preprocess it.

        Args:
            path: the video file.
            start: as `read_clip` takes it (default: the preset's own).
            generator: the generator random choices are drawn from (a random start, short side, crop, flip).

        Returns:
            `(clip, padded)`: the model input, (C, T, H, W) float32 or (3, C, T, H, W) for uniform crops, and
            how many of its frames were padded past the end of the video.

        Raises:
            VideoError: the file cannot be read.
        """
        short_side = self.short_side
        if not isinstance(short_side, int):
            short_side = int(torch.randint(short_side[0], short_side[1] + 1, (), generator=generator))
        clip = read_clip(
            path,
            num_frames=self.num_frames,
            sampling_rate=self.sampling_rate,
            target_fps=self.target_fps,
            start=self.start if start is None else start,
            short_side=short_side,
            generator=generator,
            autorotate=self.autorotate,
        )
        return self(clip.frames, generator), clip.padded

    def load_clips(
        self, path: str | os.PathLike, generators: Sequence[torch.Generator | None], start: Start | None = None
    ) -> list[tuple[torch.Tensor, int]]:
        """`[self.load(path, start, g) for g in generators]`, the same clips, with the file opened once
        (`read_clips`): each clip draws its short side, start, crop and flip from its own generator.

        Args:
            path: the video file.
            generators: one generator per clip.
            start: as `read_clip` takes it (default: the preset's own).

        Returns:
            One `(clip, padded)` per generator, as `load` gives them.

        Raises:
            VideoError: the file cannot be read.
        """
        short_sides = [
            self.short_side
            if isinstance(self.short_side, int)
            else int(torch.randint(self.short_side[0], self.short_side[1] + 1, (), generator=generator))
            for generator in generators
        ]
        clips = read_clips(
            path,
            [self.start if start is None else start] * len(generators),
            num_frames=self.num_frames,
            sampling_rate=self.sampling_rate,
            target_fps=self.target_fps,
            short_side=short_sides,
            generator=list(generators),
            autorotate=self.autorotate,
        )
        return [(self(clip.frames, generator), clip.padded) for clip, generator in zip(clips, generators)]

    def __call__(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoded frames (T, H, W, 3) uint8 to the model input; `load` decodes them at the preset's short
        side, frames read otherwise are resized to it here (to the nearest end of a short-side range)."""
        x = to_cthw(frames)
        low, high = (self.short_side, self.short_side) if isinstance(self.short_side, int) else self.short_side
        short = min(x.shape[-2:])
        if not low <= short <= high:
            x = resize_short_side(x, min(max(short, low), high))
        if self.crop == "full":
            x = resize(x, whole_frame_size(x.shape[-2], x.shape[-1], self.multiple))
        elif self.crop == "random_resized":
            x = random_resized_crop(x, self.img_size, self.crop_scale, self.crop_ratio, generator)
        elif self.crop == "uniform":
            return torch.stack(
                [normalize(uniform_crop(x, self.img_size, where), self.mean, self.std) for where in CROP_POSITIONS]
            )
        else:
            x = center_crop(x, self.img_size)
        if self.flip and torch.rand((), generator=generator).item() < 0.5:
            x = hflip(x)
        return normalize(x, self.mean, self.std)


@dataclass(frozen=True)
class ImagePreset:
    """How a model reads a still image: resize the short side (bicubic), center crop, normalise, repeat.

    `autorotate` applies the image's EXIF orientation as viewers do (False: the pixels as stored)."""

    img_size: int
    num_frames: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_to: int
    autorotate: bool = True

    def load(
        self, path: str | os.PathLike, start: Start | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """Read the image at `path` as a static clip (C, T, H, W) float32; the padded count is always 0.

        `start` and `generator` are accepted so that datasets can treat image and video presets alike.

        Args:
            path: the image file.
            start: ignored.
            generator: ignored.

        Returns:
            `(clip, 0)`: the clip (C, T, H, W) float32, and no padded frames.

        Raises:
            VideoError: the image cannot be read.
        """
        return self(read_image(Path(path), autorotate=self.autorotate)), 0

    def describe(self) -> str:
        """What the preset does, in words and its own numbers (what `hvm1 info` prints)."""
        return (
            f"one image, short side {self.resize_to} (bicubic), center crop {self.img_size}, repeated to "
            f"{self.num_frames} frames"
        )

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """An image (3, H, W) uint8 to the static clip the model takes."""
        x = center_crop(resize_short_side(image, self.resize_to, "bicubic"), self.img_size)
        return image_to_clip(normalize(x, self.mean, self.std), self.num_frames)


@dataclass(frozen=True)
class ImageTrainPreset:
    """Training reads of a still image: random resized crop (`crop_scale`, aspect 3/4-4/3) to `img_size`, a
    flip half of the time, normalisation, repeated to a static clip of `num_frames` frames; `autorotate`
    applies the EXIF orientation."""

    img_size: int
    num_frames: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_scale: tuple[float, float] = (0.08, 1.0)
    autorotate: bool = True

    def load(
        self, path: str | os.PathLike, start: Start | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """The image at `path` as an augmented static clip (C, T, H, W) float32, and 0 padded frames.

        `start` is accepted so that datasets can treat image and video presets alike.

        Args:
            path: the image file.
            start: ignored.
            generator: the generator the crop and flip are drawn from.

        Returns:
            `(clip, 0)`: the clip (C, T, H, W) float32, and no padded frames.

        Raises:
            VideoError: the image cannot be read.
        """
        image = read_image(Path(path), autorotate=self.autorotate)
        image = random_resized_crop(image, self.img_size, self.crop_scale, generator=generator)
        if torch.rand((), generator=generator).item() < 0.5:
            image = hflip(image)
        return image_to_clip(normalize(image, self.mean, self.std), self.num_frames), 0

    def describe(self) -> str:
        """What the preset does, in words and its own numbers."""
        return (
            f"one image, random resized crop to {self.img_size} (area {self.crop_scale[0]:g}-"
            f"{self.crop_scale[1]:g}, aspect 0.75-1.33), flip half, repeated to {self.num_frames} frames"
        )


def random_erasing(
    clip: torch.Tensor,
    probability: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 1 / 3),
    aspect: tuple[float, float] = (0.3, 1 / 0.3),
) -> torch.Tensor:
    """Random erasing of a normalised clip (C, T, H, W), frame by frame as the published loader applies it:
    with `probability`, a rectangle of `area` (fraction) and `aspect` is replaced by standard normal noise.

    Args:
        clip: the normalised clip (C, T, H, W).
        probability: the chance that a frame gets a rectangle.
        generator: the generator the draws come from.
        area: the rectangle's area range, as fractions of the frame's.
        aspect: the rectangle's aspect ratio range.

    Returns:
        The clip with the rectangles erased.
    """
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


def whole_frame_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """(height, width) each rounded to the nearest multiple of `multiple` (at least one multiple)."""
    return max(multiple, round(height / multiple) * multiple), max(multiple, round(width / multiple) * multiple)


def whole_frame_preset(preset: VideoPreset, multiple: int) -> VideoPreset:
    """`preset` reading whole frames instead of a square crop: the short side resized to `img_size`, the long
    side in proportion, then both rounded to the nearest multiple of `multiple` (the model's patch), so a
    640 x 480 video at 224 px becomes 294 x 224 (16 x 21 patches of 14 px).

    Args:
        preset: the preset to change.
        multiple: the model's patch size.

    Returns:
        The new preset.
    """
    return replace(preset, crop="full", short_side=preset.img_size, multiple=multiple)


def visualisation_preset(img_size: int, num_frames: int, mean: Sequence[float], std: Sequence[float]) -> VideoPreset:
    """The published visualisation: the model's frames at sampling rate 4, short side img_size + 32, center crop.

    Args:
        img_size: the model's image size (the crop's side).
        num_frames: the model's frame count.
        mean: the normalisation's mean, per channel.
        std: the normalisation's std, per channel.

    Returns:
        The preset.
    """
    return VideoPreset(img_size, num_frames, tuple(mean), tuple(std), sampling_rate=4, short_side=img_size + 32)


def video_eval_preset(
    img_size: int,
    num_frames: int,
    mean: Sequence[float],
    std: Sequence[float],
    sampling_rate: int = 8,
    crop: str = "center",
) -> VideoPreset:
    """Video evaluation: short side img_size * 256 / 224, then a center crop or the three uniform crops.

    Args:
        img_size: the model's image size (the crop's side).
        num_frames: the model's frame count.
        mean: the normalisation's mean, per channel.
        std: the normalisation's std, per channel.
        sampling_rate: take every `sampling_rate`-th frame at 30 fps.
        crop: 'center', or 'uniform' for the left, center and right crops.

    Returns:
        The preset.
    """
    return VideoPreset(
        img_size, num_frames, tuple(mean), tuple(std), sampling_rate, short_side=round(img_size * 256 / 224), crop=crop
    )


def video_train_preset(
    img_size: int,
    num_frames: int,
    mean: Sequence[float],
    std: Sequence[float],
    short_side: int | tuple[int, int],
    crop_scale: tuple[float, float],
    sampling_rate: int = 8,
) -> VideoPreset:
    """Training: a random start, short side `short_side` (or drawn from its range), random resized crop, flip.

    Published: short side in [256, 320] at 224 px and 448 at 448 px; crop scale (0.5, 1.0) for pretraining,
    (0.08, 1.0) for finetuning; aspect 0.75-1.33.

    Args:
        img_size: the model's image size (the crop's side).
        num_frames: the model's frame count.
        mean: the normalisation's mean, per channel.
        std: the normalisation's std, per channel.
        short_side: the short side before cropping, or a range drawn per clip.
        crop_scale: the range of the crop's area, as fractions of the frame's.
        sampling_rate: take every `sampling_rate`-th frame at 30 fps.

    Returns:
        The preset.
    """
    return VideoPreset(
        img_size,
        num_frames,
        tuple(mean),
        tuple(std),
        sampling_rate,
        short_side=short_side,
        crop="random_resized",
        crop_scale=crop_scale,
        crop_ratio=(3 / 4, 4 / 3),
        flip=True,
        start="random",
    )


def image_eval_preset(img_size: int, num_frames: int, mean: Sequence[float], std: Sequence[float]) -> ImagePreset:
    """The published image evaluation: short side img_size + 32 (bicubic), center crop, repeated to num_frames.

    Args:
        img_size: the model's image size (the crop's side).
        num_frames: the model's frame count.
        mean: the normalisation's mean, per channel.
        std: the normalisation's std, per channel.

    Returns:
        The preset.
    """
    return ImagePreset(img_size, num_frames, tuple(mean), tuple(std), resize_to=img_size + 32)
