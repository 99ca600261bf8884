"""Position embeddings at any input size: the stored (training-size) embeddings interpolated at run time.

The state dict keeps the published shapes; a clip of another height, width or frame count gets its
embeddings resized on the fly. Spatially this is exactly the published training repository's
`interpolate_pos_encoding`: the stored N spatial embeddings lie on a sqrt(N) x sqrt(N) grid, resized by
bicubic interpolation (`align_corners=False`) given the scale factors (h + 0.1) / sqrt(N) along rows and
(w + 0.1) / sqrt(N) along columns, for a grid of h = H / p rows and w = W / p columns (the 0.1 keeps the
floor of sqrt(N) * scale from landing one short). Temporally (beyond the published code, which only
accepts its own frame count) the t0 stored embeddings are resized linearly to t. At the model's own size
the stored tensors are returned as they are, so outputs stay bit for bit the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .layers import separable_pos_embed


def token_grid(video: torch.Tensor, in_chans: int, patch_size: int, t_patch_size: int) -> tuple[int, int, int]:
    """The token grid (t, h, w) of a video (N, C, T, H, W); a ValueError naming the sizes unless it divides.

    T must be a multiple of the tubelet `t_patch_size` and H, W multiples of `patch_size` (any of them,
    square or not).
    """
    if not isinstance(video, torch.Tensor):
        raise ValueError(f"expected a video tensor of shape (N, {in_chans}, T, H, W), got {type(video).__name__}")
    if video.ndim != 5 or video.shape[1] != in_chans:
        raise ValueError(f"expected a video of shape (N, {in_chans}, T, H, W), got {tuple(video.shape)}")
    if not video.is_floating_point():
        raise ValueError(f"expected a normalised floating-point video, got dtype {video.dtype}")
    frames, height, width = video.shape[2:]
    problems = []
    if frames == 0 or frames % t_patch_size:
        problems.append(f"{frames} frames is not a positive multiple of the tubelet {t_patch_size}")
    if height == 0 or height % patch_size or width == 0 or width % patch_size:
        problems.append(f"{height}x{width} is not a positive multiple of the patch {patch_size} on both sides")
    if problems:
        raise ValueError(f"video of shape {tuple(video.shape)} does not divide into tokens: " + "; ".join(problems))
    return frames // t_patch_size, height // patch_size, width // patch_size


def interpolate_spatial(pos_embed: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Stored spatial embeddings (1, N, C) on a square grid -> (1, rows * cols, C), row-major.

    Unchanged when rows * cols == N and rows == cols; otherwise the published bicubic resize with scale
    factors (rows + 0.1) / sqrt(N) and (cols + 0.1) / sqrt(N).
    """
    _, count, dim = pos_embed.shape
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"spatial position embedding of {count} tokens is not a square grid")
    if rows == cols == side:
        return pos_embed
    grid = pos_embed.reshape(1, side, side, dim).permute(0, 3, 1, 2)  # (1, C, side, side)
    # The published code computes in float32 (bicubic is not implemented for every half type on CPU).
    resized = F.interpolate(
        grid.float(),
        scale_factor=((rows + 0.1) / math.sqrt(count), (cols + 0.1) / math.sqrt(count)),
        mode="bicubic",
        align_corners=False,
    )
    if resized.shape[-2:] != (rows, cols):
        raise ValueError(
            f"interpolating {side}x{side} position embeddings gave {tuple(resized.shape[-2:])}, not {rows}x{cols}"
        )
    return resized.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, rows * cols, dim)


def interpolate_temporal(pos_embed: torch.Tensor, frames: int) -> torch.Tensor:
    """Stored temporal embeddings (1, t0, C) -> (1, frames, C): unchanged at t0, else linear (align_corners=False)."""
    if pos_embed.shape[1] == frames:
        return pos_embed
    resized = F.interpolate(pos_embed.float().transpose(1, 2), size=frames, mode="linear", align_corners=False)
    return resized.transpose(1, 2).to(pos_embed.dtype)


def sized_pos_embed(spatial: torch.Tensor, temporal: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Every token's position embedding (1, t*h*w, C) for the token grid (t, h, w), time-major:
    token (ti, s) gets spatial[s] + temporal[ti], with both interpolated to the grid."""
    t, h, w = grid
    return separable_pos_embed(interpolate_spatial(spatial, h, w), interpolate_temporal(temporal, t))
