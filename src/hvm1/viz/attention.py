"""Attention pictures: the last block's CLS attention over a clip's patches, drawn as heat maps on the frames.

`attention_maps` asks a ViT for `cls_attention` (never the L x L matrix) and lays it out on the token grid;
`attention_grid` makes the picture: the first frame of each temporal token on top, below it one row per
map (the mean over heads, or each head) with the attention upsampled to the frame and blended over it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hvm1.devices import Precision, resolve_precision
from hvm1.models import VideoViT

from .grid import add_colour_bar, label_grid, make_grid, to_uint8

HEAD_MODES = ("mean", "each")
# Viridis at nine evenly spaced points: dark blue (least attention) to yellow (most); linear in between.
_HEAT_COLOURS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    dtype=np.float32,
)
HEAT_ALPHA = 0.6


def attention_maps(model: VideoViT, video: torch.Tensor, precision: Precision | str = "fp32") -> torch.Tensor:
    """The last block's CLS attention of normalised clips, on the model's token grid.

    Args:
        model: the ViT.
        video: normalised clip(s), (C, T, H, W) or (N, C, T, H, W).
        precision: the precision it runs at (see `hvm1.devices.resolve_precision`; default fp32).

    Returns:
        (N, heads, t, h, w) float32 on the CPU: t temporal tokens of `t_patch_size` frames, h x w patches,
        as `model.cls_attention` gives it (not renormalised).
    """
    if not isinstance(model, VideoViT):
        raise TypeError(f"attention_maps needs a VideoViT, got {type(model).__name__}")
    batch = video.unsqueeze(0) if video.dim() == 4 else video
    parameter = next(model.parameters())
    with torch.inference_mode(), resolve_precision(precision, parameter.device).autocast(parameter.device):
        attention = model.cls_attention(batch.to(parameter.device, parameter.dtype))  # (N, heads, L)
    cfg = model.config
    t, h, w = batch.shape[2] // cfg.t_patch_size, batch.shape[3] // cfg.patch_size, batch.shape[4] // cfg.patch_size
    return attention.to("cpu", torch.float32).reshape(batch.shape[0], -1, t, h, w)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) to viridis colours (..., 3) float32 in 0-255.

    Args:
        values: values in [0, 1], any shape.

    Returns:
        (..., 3) float32 colours in 0-255.
    """
    position = np.clip(values, 0.0, 1.0) * (len(_HEAT_COLOURS) - 1)
    low = np.minimum(position.astype(np.int64), len(_HEAT_COLOURS) - 2)
    fraction = (position - low)[..., None]
    return _HEAT_COLOURS[low] * (1 - fraction) + _HEAT_COLOURS[low + 1] * fraction


def attention_grid(
    video: torch.Tensor,
    maps: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    heads: str = "mean",
) -> np.ndarray:
    """The attention picture of one clip: (1 + R) rows x t columns of S px tiles, 1 px padding.

    The top row is the first frame of each temporal token in true colours; below it R rows. Each row's
    attention is stretched from its own min to max over all its tokens (so rows compare over time),
    upsampled to the frame by repeating each patch's value, coloured as a heat map and blended over the frame.

    Args:
        video: the normalised clip, (C, T, H, W).
        maps: its attention, (heads, t, h, w), from `attention_maps`.
        mean: the normalisation's mean, undone for true colours.
        std: the normalisation's std.
        heads: 'mean' for one row averaged over heads, 'each' for a row per head.

    Returns:
        The picture, uint8 (height, width, 3).
    """
    if heads not in HEAD_MODES:
        raise ValueError(f"heads must be one of {', '.join(HEAD_MODES)}, got {heads!r}")
    tokens_t, grid_h, grid_w = maps.shape[1:]
    if video.shape[1] % tokens_t:
        raise ValueError(f"{video.shape[1]} frames do not split into {tokens_t} temporal tokens")
    frames = video[:, :: video.shape[1] // tokens_t]  # (C, t, H, W): the first frame of each token
    height, width = frames.shape[-2:]
    if height % grid_h or width % grid_w:
        raise ValueError(f"{height}x{width} frames do not split into a {grid_h}x{grid_w} patch grid")
    rows = maps.mean(dim=0, keepdim=True) if heads == "mean" else maps  # (R, t, h, w)
    low = rows.amin(dim=(1, 2, 3), keepdim=True)
    high = rows.amax(dim=(1, 2, 3), keepdim=True)
    unit = (rows - low) / (high - low).clamp(min=1e-12)
    unit = F.interpolate(unit, size=(height, width), mode="nearest")  # (R, t, H, W): one value per patch
    picture = to_uint8(frames, mean, std)  # (t, H, W, 3)
    blended = (1 - HEAT_ALPHA) * picture[None].astype(np.float32) + HEAT_ALPHA * heat_colours(unit.numpy())
    overlay = np.clip(np.round(blended), 0, 255).astype(np.uint8)  # (R, t, H, W, 3)
    return make_grid(np.concatenate([picture[None], overlay]))


def attention_labels(
    picture: np.ndarray, tile_size: Sequence[int], seconds_per_token: float, heads: int | None = None
) -> np.ndarray:
    """An `attention_grid` picture with its rows named (the frame, then the attention: averaged over heads,
    or `heads` rows, one per head), each column's time from the clip's start (one column per temporal token
    of `seconds_per_token`: a token spans t_patch_size frames, so its map is one for all of them) and the
    colour scale on the right (each row is stretched from its own min to its own max).

    Args:
        picture: what `attention_grid` returned.
        tile_size: the tiles' (height, width).
        seconds_per_token: the time one temporal token spans.
        heads: the number of head rows, or None for one row averaged over heads.

    Returns:
        The labelled picture, uint8 (height, width, 3).
    """
    rows = ["frame", *([f"head {index}" for index in range(heads)] if heads else ["attention"])]
    columns = (picture.shape[1] - 1) // (tile_size[1] + 1)
    times = [f"{column * seconds_per_token:.2f} s" for column in range(columns)]
    labelled = label_grid(picture, (tile_size[0], tile_size[1]), rows, times)
    scale = np.round(heat_colours(np.linspace(0.0, 1.0, 64))).astype(np.uint8)
    return add_colour_bar(labelled, scale, "row min", "row max", top=labelled.shape[0] - picture.shape[0])
