"""Video completion pictures: run an MAE on a masked clip and lay out original / masked / completion.

`complete_clip` runs the model once and returns the three rows in normalised units with the mask;
`completion_grid` makes the published picture (3 rows x `pred_t_dim` frames) as a uint8 array and
`completion_frames` the side-by-side animation frames. Neither writes files; `hvm1.viz.complete_videos`
does, for many videos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from hvm1.devices import Precision, resolve_precision
from hvm1.models import VideoMAE
from hvm1.models.masking import MASK_TYPES, mask_noise

from .grid import label_grid, make_grid, to_uint8

# The rows of a completion picture, top to bottom.
ROW_NAMES = ("original", "masked", "completion")

#: The mask ratio each mask type gets unless one is given (the published visualisation's).
DEFAULT_MASK_RATIOS = {"random": 0.9, "temporal": 0.5, "center": 0.5}


@dataclass(frozen=True)
class Completion:
    """What an MAE made of masked clips, on the CPU in float32 and normalised units.

    `original`, `masked`, `completion`: (N, C, T', H, W) with T' = the model's `pred_t_dim` (the frames
    the decoder predicts); `masked` is 0 on removed patches, `completion` is the original on visible
    patches and the prediction on removed ones. `mask`: (N, L) token mask, 1 = removed; `removed`:
    (N, T', H, W) bool, the same mask per pixel of the T' frames; `loss`: the MAE loss on the batch.
    """

    original: torch.Tensor
    masked: torch.Tensor
    completion: torch.Tensor
    mask: torch.Tensor
    removed: torch.Tensor
    loss: float

    def rows(self, index: int = 0) -> torch.Tensor:
        """Clip `index`'s three rows stacked: (3, C, T', H, W), original / masked / completion.

        Args:
            index: which clip of the batch.

        Returns:
            (3, C, T', H, W): original, masked, completion.
        """
        return torch.stack([self.original[index], self.masked[index], self.completion[index]])


def default_mask_ratio(mask_type: str) -> float:
    """The mask ratio `mask_type` gets by default: 0.9 for random, 0.5 for temporal and center.

    Args:
        mask_type: 'random', 'temporal' or 'center'.

    Returns:
        The ratio.
    """
    if mask_type not in DEFAULT_MASK_RATIOS:
        raise ValueError(f"unknown mask_type {mask_type!r}; valid: {', '.join(MASK_TYPES)}")
    return DEFAULT_MASK_RATIOS[mask_type]


def complete_clip(
    model: VideoMAE,
    video: torch.Tensor,
    mask_type: str = "random",
    mask_ratio: float | None = None,
    generator: torch.Generator | None = None,
    precision: Precision | str = "fp32",
) -> Completion:
    """Mask normalised clips and let an MAE complete them.

    Random masking draws its noise from `generator` on the CPU (so a seeded generator gives the same mask on
    every device); temporal and center masking are fixed. Runs without gradients on the model's device and
    dtype.

    Args:
        model: the MAE.
        video: normalised clip(s), (C, T, H, W) or (N, C, T, H, W).
        mask_type: 'random', 'temporal' or 'center'.
        mask_ratio: the fraction of tokens removed (default `default_mask_ratio(mask_type)`).
        generator: the generator random masking draws its noise from.
        precision: the precision it runs at (see `hvm1.devices.resolve_precision`; default fp32: exactly the
            published computation).

    Returns:
        The `Completion`: original, masked and completed frames, the mask and the loss.

    Raises:
        ValueError: a clip size that does not divide into tokens, a bad mask ratio or type.
    """
    if not isinstance(model, VideoMAE):
        raise TypeError(f"complete_clip needs a VideoMAE (encoder and decoder), got {type(model).__name__}")
    if mask_ratio is None:
        mask_ratio = default_mask_ratio(mask_type)
    batch = video.unsqueeze(0) if video.dim() == 4 else video
    grid = model.token_grid(batch)  # any size the model takes, not only its configured one
    noise = None
    if mask_type == "random":
        noise = mask_noise("random", batch.shape[0], math.prod(grid), generator=generator)
    parameter = next(model.parameters())
    with torch.inference_mode(), resolve_precision(precision, parameter.device).autocast(parameter.device):
        loss, _, mask, comparison = model(
            batch.to(parameter.device, parameter.dtype),
            mask_ratio=mask_ratio,
            visualize=True,
            mask_type=mask_type,
            noise=noise,
        )
    comparison = comparison.to("cpu", torch.float32)  # (N, 3, C, T', H, W)
    mask = mask.to("cpu", torch.float32)
    return Completion(
        original=comparison[:, 0],
        masked=comparison[:, 1],
        completion=comparison[:, 2],
        mask=mask,
        removed=model.pixel_mask(mask, grid),
        loss=float(loss),
    )


def completion_tiles(
    completion: Completion,
    mean: Sequence[float],
    std: Sequence[float],
    scale_each: bool = False,
    index: int = 0,
) -> np.ndarray:
    """Clip `index`'s rows as true-colour tiles (3, T', H, W, 3) uint8 (see `hvm1.viz.grid.to_uint8`).

    Args:
        completion: what `complete_clip` returned.
        mean: the normalisation's mean, undone for true colours.
        std: the normalisation's std.
        scale_each: stretch each tile from its own min to max (the published look) instead.
        index: which clip of the batch.

    Returns:
        (3, T', H, W, 3) uint8.
    """
    return to_uint8(completion.rows(index), mean, std, scale_each)


def completion_grid(
    completion: Completion,
    mean: Sequence[float],
    std: Sequence[float],
    scale_each: bool = False,
    index: int = 0,
) -> np.ndarray:
    """The published picture of one clip: 3 rows (original, masked, completion) x T' frames, 1 px padding.

    Args:
        completion: what `complete_clip` returned.
        mean: the normalisation's mean, undone for true colours.
        std: the normalisation's std.
        scale_each: stretch each tile from its own min to max (the published look) instead of true colours.
        index: which clip of the batch.

    Returns:
        The picture, (3 * (S + 1) + 1, T' * (S + 1) + 1, 3) uint8 for S px frames.
    """
    return make_grid(completion_tiles(completion, mean, std, scale_each, index))


def completion_labels(picture: np.ndarray, tile_size: Sequence[int], fps: float | Fraction) -> np.ndarray:
    """A `completion_grid` picture with its rows named (original, masked, completion) and each frame's time
    from the clip's start (`fps`: `completion_fps`) above it.

    Args:
        picture: what `completion_grid` returned.
        tile_size: the tiles' (height, width).
        fps: the completion's frame rate (`completion_fps`).

    Returns:
        The labelled picture, uint8 (height, width, 3).
    """
    columns = (picture.shape[1] - 1) // (tile_size[1] + 1)
    times = [f"{float(column / fps):.2f} s" for column in range(columns)]
    return label_grid(picture, (tile_size[0], tile_size[1]), ROW_NAMES, times)


def completion_frames(
    completion: Completion,
    mean: Sequence[float],
    std: Sequence[float],
    scale_each: bool = False,
    index: int = 0,
) -> np.ndarray:
    """Animation frames of clip `index`: original | masked | completion side by side, (T', S + 2, 3 * (S + 1) + 1, 3).

    Args:
        completion: what `complete_clip` returned.
        mean: the normalisation's mean, undone for true colours.
        std: the normalisation's std.
        scale_each: stretch each tile from its own min to max (the published look) instead.
        index: which clip of the batch.

    Returns:
        (T', S + 2, 3 * (S + 1) + 1, 3) uint8.
    """
    tiles = completion_tiles(completion, mean, std, scale_each, index)  # (3, T', S, S, 3)
    return np.stack([make_grid(tiles[None, :, t]) for t in range(tiles.shape[1])])


def completion_fps(model: VideoMAE, sampling_rate: int, target_fps: float) -> Fraction:
    """The real-time frame rate of a completion: T' frames spread over the clip's `num_frames` instants.

    Args:
        model: the MAE.
        sampling_rate: the clip's sampling rate.
        target_fps: the frame rate the sampling rate counts in.

    Returns:
        Frames per second, exactly.
    """
    config = model.config
    seconds_per_frame = Fraction(sampling_rate) / Fraction(target_fps).limit_denominator(1001)
    return 1 / (seconds_per_frame * Fraction(config.num_frames, config.pred_t_dim))
