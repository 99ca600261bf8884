"""Label propagation: carry a first-frame segmentation through a video with a frozen ViT's patch features.

The published HVM-1 evaluation of semi-supervised video object segmentation (after DINO's), step by step:

- Frames: the short side resized to 480, the long side to the largest multiple of 64 at or below the
  proportional length (854 -> 832 for 480p DAVIS; bilinear, rounded to 8 bits as an 8-bit image resize
  gives), RGB in [0, 1], normalised with mean (0.485, 0.456, 0.406) and std (0.228, 0.224, 0.225).
- Features: each frame alone is repeated `num_frames` times into a clip; the un-normed last block output
  without CLS, (t, h, w, C), averaged over the t time tokens, with h = H // p and w = W // p (the pixels past
  h * p and w * p are not covered by a patch, as in the published strided convolution; the position
  embeddings are interpolated to the (h, w) grid, see `hvm1.models.positions`).
- Labels: the first frame's mask resized (nearest) to (h, w), one-hot over ids 0..max.
- Each next frame: context = the first frame and the `n_last_frames` most recent predictions (their soft
  label maps). Affinity = exp(cos(target patch, context patch) / temperature), zero for context patches more
  than `size_mask_neighborhood` rows or columns away; per target patch only the `topk` largest over all
  context patches are kept (values tied with the k-th largest too), normalised to sum 1; the target's label
  map is that weighted sum of the context label maps.
- Output: the label map upsampled x p (bilinear), each channel with a positive maximum min-max normalised,
  argmax over channels, resized (nearest) to the frame's own size.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hvm1.devices import Precision, resolve_precision
from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PropagationConfig:
    """The published label-propagation settings (DINO's names): frame size rule, context and affinity;
    `clip_frames` is how many times a frame is repeated into a clip (None: the model's `num_frames`)."""

    short_side: int = 480
    size_multiple: int = 64
    n_last_frames: int = 7
    size_mask_neighborhood: int = 12
    topk: int = 5
    temperature: float = 0.1
    clip_frames: int | None = None
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.228, 0.224, 0.225)

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be >= 1, got {value}"
            for name, value in (
                ("short_side", self.short_side),
                ("size_multiple", self.size_multiple),
                ("topk", self.topk),
            )
            if value < 1
        ]
        if self.n_last_frames < 0 or self.size_mask_neighborhood < 0:
            problems.append("n_last_frames and size_mask_neighborhood must be >= 0")
        if not self.temperature > 0:
            problems.append(f"temperature must be > 0, got {self.temperature}")
        if self.clip_frames is not None and self.clip_frames < 1:
            problems.append(f"clip_frames must be >= 1, got {self.clip_frames}")
        if problems:
            raise ValueError("invalid PropagationConfig: " + "; ".join(problems))


def frame_size(height: int, width: int, short_side: int = 480, multiple: int = 64) -> tuple[int, int]:
    """The (height, width) a frame is resized to: the short side to `short_side`, the long side to the
    largest multiple of `multiple` at or below the proportional length; a square frame counts as wide, so
    its width is the one rounded down (500 x 500 -> 480 x 448), as in the published code.

    Args:
        height: the frame's height.
        width: the frame's width.
        short_side: the short side after resizing.
        multiple: the long side is rounded down to a multiple of this.

    Returns:
        `(height, width)`.
    """
    if height > width:
        return int(short_side * height / width // multiple * multiple), short_side
    return short_side, int(short_side * width / height // multiple * multiple)


def prepare_frame(frame: torch.Tensor, config: PropagationConfig = PropagationConfig()) -> torch.Tensor:
    """A (3, H, W) uint8 RGB frame -> the normalised (3, H', W') float32 frame the features are computed on.

    Args:
        frame: (3, H, W) uint8 RGB.
        config: the propagation's settings (size rule, mean and std).

    Returns:
        The normalised frame (3, H', W') float32.

    Raises:
        ValueError: a frame that is not (3, H, W) uint8, or smaller than one patch.
    """
    if frame.ndim != 3 or frame.shape[0] != 3 or frame.dtype != torch.uint8:
        raise ValueError(f"expected a (3, H, W) uint8 RGB frame, got {frame.dtype} {tuple(frame.shape)}")
    size = frame_size(frame.shape[1], frame.shape[2], config.short_side, config.size_multiple)
    resized = F.interpolate(frame[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    unit = resized.round_().clamp_(0, 255) / 255.0
    mean = torch.tensor(config.mean).view(3, 1, 1)
    std = torch.tensor(config.std).view(3, 1, 1)
    return (unit - mean) / std


def frame_features(
    model: VideoViT, frame: torch.Tensor, clip_frames: int | None = None, precision: Precision | str = "fp32"
) -> torch.Tensor:
    """Patch features of one normalised frame (3, H, W): (h, w, C) float32, h = H // p, w = W // p.

    The frame is repeated `clip_frames` (default `model.config.num_frames`) times into a clip; the last
    block's output before the final norm, without CLS, is averaged over the time tokens. The model runs at
    `precision` (`hvm1.devices.resolve_precision`) where its weights are.

    Args:
        model: the ViT.
        frame: a normalised frame (3, H, W) (`prepare_frame`).
        clip_frames: how many times it is repeated into a clip (default the model's frame count).
        precision: the precision the model runs at.

    Returns:
        (h, w, C) float32.
    """
    cfg = model.config
    clip_frames = clip_frames or cfg.num_frames
    h, w = frame.shape[1] // cfg.patch_size, frame.shape[2] // cfg.patch_size
    if h == 0 or w == 0:
        raise ValueError(f"a {frame.shape[1]}x{frame.shape[2]} frame is smaller than one {cfg.patch_size} px patch")
    weight = next(model.parameters())
    precision = resolve_precision(precision, weight.device)
    covered = frame[:, : h * cfg.patch_size, : w * cfg.patch_size]  # what the strided patch embedding sees
    clip = covered.unsqueeze(1).expand(-1, clip_frames, -1, -1).unsqueeze(0)  # (1, 3, T, H, W)
    with torch.no_grad(), precision.autocast(weight.device):
        tokens = model.get_last_activation(clip.to(weight.device, weight.dtype))[0, 1:]  # (t*h*w, C)
    t = clip_frames // cfg.t_patch_size
    return tokens.reshape(t, h, w, -1).float().mean(dim=0)


def neighbourhood(h: int, w: int, radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(h*w, h*w) float 0/1: 1 where the two patches are at most `radius` rows and `radius` columns apart."""
    rows = torch.arange(h, device=device).repeat_interleave(w)
    cols = torch.arange(w, device=device).repeat(h)
    near = ((rows[:, None] - rows[None, :]).abs() <= radius) & ((cols[:, None] - cols[None, :]).abs() <= radius)
    return near.float()


def first_frame_labels(mask: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """An (H, W) object-id mask -> one-hot label maps (K, h, w) float32 at the feature grid, resized nearest;
    K = the largest id left after resizing + 1."""
    h, w = grid
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).resize((w, h), Image.Resampling.NEAREST)
    )
    ids = torch.from_numpy(small.astype(np.int64))
    return F.one_hot(ids, int(ids.max()) + 1).permute(2, 0, 1).float()


def propagate_labels(
    target: torch.Tensor,
    context_features: Sequence[torch.Tensor],
    context_labels: Sequence[torch.Tensor],
    near: torch.Tensor | None,
    topk: int = 5,
    temperature: float = 0.1,
) -> torch.Tensor:
    """One step: the target's label maps (K, h, w) from its features (h, w, C) and the context's.

    `context_features` are (h, w, C) and `context_labels` (K, h, w), one per context frame; `near` the
    (h*w, h*w) neighbourhood of `neighbourhood` (None: no restriction).

    Args:
        target: the target frame's features (h, w, C).
        context_features: each context frame's features (h, w, C).
        context_labels: each context frame's label maps (K, h, w).
        near: the (h*w, h*w) neighbourhood (`neighbourhood`), or None for no restriction.
        topk: context patches each target patch takes its labels from.
        temperature: the affinities' temperature.

    Returns:
        The target's label maps (K, h, w).
    """
    h, w, dim = target.shape
    queries = F.normalize(target.reshape(h * w, dim), dim=1)  # (hw, C)
    keys = F.normalize(torch.stack([f.reshape(h * w, dim) for f in context_features]), dim=2)  # (n, hw, C)
    affinity = torch.exp(torch.einsum("qc,nkc->nkq", queries, keys) / temperature)  # (n, hw keys, hw queries)
    if near is not None:
        affinity = affinity * near  # symmetric, so the key/query order does not matter
    affinity = affinity.reshape(-1, h * w)  # (n * hw keys, hw queries)
    kth = torch.topk(affinity, k=min(topk, affinity.shape[0]), dim=0).values.min(dim=0).values  # (hw,)
    affinity = torch.where(affinity < kth, torch.zeros_like(affinity), affinity)
    affinity = affinity / affinity.sum(dim=0, keepdim=True)
    labels = torch.stack(list(context_labels))  # (n, K, h, w)
    n, k = labels.shape[:2]
    labels = labels.reshape(n, k, h * w).permute(1, 0, 2).reshape(k, n * h * w)  # (K, n * hw keys)
    return (labels @ affinity).reshape(k, h, w)


def labels_to_mask(labels: torch.Tensor, patch_size: int, size: tuple[int, int]) -> np.ndarray:
    """Soft label maps (K, h, w) -> an (H, W) uint8 id mask: upsampled x patch (bilinear), each channel with
    a positive maximum min-max normalised, argmax, resized (nearest) to `size` (H, W)."""
    up = F.interpolate(
        labels[None], scale_factor=patch_size, mode="bilinear", align_corners=False, recompute_scale_factor=False
    )[0]  # (K, h*p, w*p)
    high = up.amax(dim=(1, 2), keepdim=True)
    low = up.amin(dim=(1, 2), keepdim=True)
    span = high - low
    # A constant channel (span 0) stays as it is: the published 0 / 0 would make it NaN.
    normalised = torch.where((high > 0) & (span > 0), (up - low) / span.clamp(min=1e-30), up)
    ids = normalised.argmax(dim=0).to(torch.uint8).cpu().numpy()
    return np.asarray(Image.fromarray(ids).resize((size[1], size[0]), Image.Resampling.NEAREST))


def propagate(
    model: VideoViT,
    frames: Sequence[torch.Tensor],
    first_mask: np.ndarray,
    config: PropagationConfig = PropagationConfig(),
    progress: Progress = SILENT,
    precision: Precision | str = "fp32",
    label: str = "",
) -> list[np.ndarray]:
    """Segment every frame of a video from the first frame's mask, by the published label propagation.

    The model runs where its weights are; affinities are float32 there.

    Args:
        model: the ViT whose last activations are the frames' features.
        frames: (3, H, W) uint8 RGB tensors of one size (any sequence, read in order; each is prepared with
            `prepare_frame`).
        first_mask: the first frame's (H, W) object ids (0 = background).
        config: the propagation's settings (the published ones by default).
        progress: gets a stage of the frames (named `label`), advanced after each.
        precision: the precision the model runs at (default fp32: the published computation).
        label: the stage's name (a sequence's).

    Returns:
        One (H, W) uint8 id mask per frame; the first is `first_mask` as given.

    Raises:
        ValueError: no frames, frames that are not (3, H, W) uint8 or not all of one size, or a first mask
            of another size than the first frame (sizes named in the message).
    """
    model = model.eval()
    total = len(frames)
    if total == 0:
        raise ValueError("no frames to propagate through")
    first_mask = np.asarray(first_mask)
    first = frames[0]
    if tuple(first_mask.shape) != tuple(first.shape[1:]):
        raise ValueError(
            f"the first mask is {first_mask.shape[0]}x{first_mask.shape[1]} but the first frame is "
            f"{first.shape[1]}x{first.shape[2]}"
        )
    for index, frame in enumerate(frames):  # before any model time: a resized frame would be read as motion
        if tuple(frame.shape[1:]) != tuple(first.shape[1:]):
            raise ValueError(
                f"frame {index} is {frame.shape[1]}x{frame.shape[2]} but the first frame is "
                f"{first.shape[1]}x{first.shape[2]}: the frames must share one size"
            )
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)
    first_features = frame_features(model, prepare_frame(first, config), config.clip_frames, precision)  # (h, w, C)
    h, w = first_features.shape[:2]
    first_labels = first_frame_labels(first_mask, (h, w)).to(device)
    near = neighbourhood(h, w, config.size_mask_neighborhood, device) if config.size_mask_neighborhood else None
    recent: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=config.n_last_frames)
    masks = [first_mask.astype(np.uint8)]
    progress.start(total, "frame", label=label)
    progress.advance(1)
    for index in range(1, total):
        frame = frames[index]
        features = frame_features(model, prepare_frame(frame, config), config.clip_frames, precision)
        labels = propagate_labels(
            features,
            [first_features, *(f for f, _ in recent)],
            [first_labels, *(s for _, s in recent)],
            near,
            config.topk,
            config.temperature,
        )
        if config.n_last_frames:
            recent.append((features, labels))
        masks.append(labels_to_mask(labels, model.config.patch_size, (frame.shape[1], frame.shape[2])))
        progress.advance(index + 1)
    progress.close()
    logger.info("propagated %d frames at a %dx%d feature grid", total, h, w)
    return masks
