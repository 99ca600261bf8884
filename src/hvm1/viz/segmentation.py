"""Pictures of segmentations: id masks over frames in the DAVIS palette, as a strip of frames or an animation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hvm1.segment.davis import davis_palette

from .grid import make_grid


def overlay_masks(frame: torch.Tensor | np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """One (3, H, W) or (H, W, 3) uint8 RGB frame with its (H, W) id mask blended in the DAVIS colours
    (`alpha` of the colour where the id is not 0) and each object's boundary drawn solid: (H, W, 3) uint8."""
    rgb = frame.permute(1, 2, 0).numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"a {mask.shape} mask for a {rgb.shape[:2]} frame")
    colours = davis_palette()[mask].astype(np.float32)
    objects = (mask > 0)[..., None]
    blended = np.where(objects, (1 - alpha) * rgb + alpha * colours, rgb)
    edge = np.zeros(mask.shape, dtype=bool)
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    blended[edge & (mask > 0)] = colours[edge & (mask > 0)]
    return blended.round().clip(0, 255).astype(np.uint8)


def overlay_strip(
    frames: Sequence[torch.Tensor | np.ndarray], masks: Sequence[np.ndarray], count: int = 6, alpha: float = 0.5
) -> np.ndarray:
    """`count` frames evenly spaced over the video (first and last included) with their masks, side by side
    with 1 px padding: (H + 2, count * (W + 1) + 1, 3) uint8."""
    if len(frames) != len(masks) or not frames:
        raise ValueError(f"expected as many masks as frames (at least one), got {len(masks)} and {len(frames)}")
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    tiles = np.stack([overlay_masks(frames[i], masks[i], alpha) for i in picks])[None]
    return make_grid(tiles)
