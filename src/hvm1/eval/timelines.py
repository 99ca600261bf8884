"""Timelines: a model's output for windows every `stride` seconds over a whole video, in one streaming pass.

`window_outputs` runs any forward function over the windows `hvm1.data.load_windows` gives (each the preset's
clip at the window's start, the video decoded once), a batch of windows at a time, and returns a `Timeline`:
each window's start and end time beside its output. `hvm1 embed --stride` stores embeddings this way (one row
per window, see `embedding_timelines`); `window_probabilities` gives a classifier's class probabilities per
window and `leading_classes` the classes a plot of them shows (`hvm1.viz.timeline` draws both, and the video with
each moment's top classes on it), for `hvm1 classify --stride`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hvm1.data import VideoPreset, Window, load_windows
from hvm1.devices import Precision
from hvm1.models import VideoViT

from .store import Embeddings
from .views import logits_forward


@dataclass
class Timeline:
    """A model's outputs for the windows of one video.

    `times` (K, 2) float64 is each window's start and end (its first and last instant) in seconds from the
    video's first frame; `values` (K, ...) float32 each window's output; `padded` how many frames of the one
    window of a video shorter than a window were padded (0 otherwise).
    """

    path: Path
    times: np.ndarray
    values: np.ndarray
    padded: int = 0

    def __len__(self) -> int:
        return len(self.times)

    @property
    def centers(self) -> np.ndarray:
        """(K,) the middle of each window in seconds: where a plot puts its value."""
        return self.times.mean(axis=1)


def window_outputs(
    forward: Callable[[torch.Tensor], torch.Tensor],
    preset: VideoPreset,
    path: str | os.PathLike,
    stride: float,
    *,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    on_window: Callable[[Window], None] | None = None,
) -> Timeline:
    """Run `forward` over the windows every `stride` seconds of the video at `path`, `batch_size` at a time.

    Args:
        forward: (N, C, T, H, W) model inputs on `device` to (N, ...) outputs; run under `torch.inference_mode`.
        preset: how a window's clip is read and preprocessed (its frames, rate, short side, crop); a preset with
            several crops ("uniform") has its crops' outputs averaged per window.
        path: the video.
        stride: seconds between window starts, above 0.
        batch_size: windows per call of `forward`.
        device: where the inputs go.
        on_window: called with each window (its decoded frames included) as it is read, before its output.

    Returns:
        The `Timeline` of the video (float32 outputs on the CPU).

    Raises:
        ValueError: a stride of 0 or below, or a `batch_size` below 1.
        VideoError: the video cannot be read (nothing is returned for it).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    times: list[tuple[float, float]] = []
    outputs: list[torch.Tensor] = []
    padded = 0
    for windows, inputs in _batches(load_windows(preset, path, stride), batch_size):
        for window in windows:
            times.append((window.start, window.end))
            padded = max(padded, window.padded)
            if on_window is not None:
                on_window(window)
        views = inputs.to(device, non_blocking=True)
        crops = views.shape[1] if views.dim() == 6 else 1  # (N, crops, C, T, H, W) for several crops
        with torch.inference_mode():
            out = forward(views.flatten(0, 1) if views.dim() == 6 else views)
        outputs.append(out.float().cpu().unflatten(0, (-1, crops)).mean(dim=1))
    return Timeline(Path(path), np.array(times, dtype=np.float64).reshape(-1, 2), torch.cat(outputs).numpy(), padded)


def window_probabilities(
    model: VideoViT,
    preset: VideoPreset,
    path: str | os.PathLike,
    stride: float,
    *,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    precision: Precision | str = "fp32",
    on_window: Callable[[Window], None] | None = None,
) -> Timeline:
    """A classifier's class probabilities for the windows every `stride` seconds of the video at `path`.

    Each window's logits (averaged over the crops of `preset`, as `hvm1 classify` averages a file's views) give
    its probabilities by softmax: the `Timeline`'s `values` are (K, classes) float32, rows summing to 1.

    Args:
        model: a finetuned `VideoViT` (with a head).
        preset: how a window is read (`hvm1.eval.view_plan(...).preset` reads it as `classify` reads a clip).
        path: the video.
        stride: seconds between window starts, above 0.
        batch_size: windows per forward pass.
        device: where the model runs (default: where it is).
        precision: autocast precision (`hvm1.devices.resolve_precision`).
        on_window: called with each window as it is read (to keep a few of its frames for a plot).

    Returns:
        The video's `Timeline` of probabilities.

    Raises:
        ValueError: the model has no classification head, or a stride of 0 or below.
        VideoError: the video cannot be read.
    """
    if not isinstance(model, VideoViT) or not model.config.num_classes:
        raise ValueError("window probabilities need a finetuned ViT with a classification head (this model has none)")
    forward, device = logits_forward(model, device, precision)
    logits = window_outputs(forward, preset, path, stride, batch_size=batch_size, device=device, on_window=on_window)
    probabilities = torch.from_numpy(logits.values).double().softmax(dim=-1).float().numpy()
    return Timeline(logits.path, logits.times, probabilities, logits.padded)


def leading_classes(probabilities: np.ndarray, count: int = 5) -> list[int]:
    """The `count` classes with the highest probability at any window of (K, classes) `probabilities`, highest
    first (ties to the lower index): what a timeline plot shows.

    Args:
        probabilities: (K, classes), one row per window.
        count: how many classes.

    Returns:
        The class indices, highest first.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    peaks = np.asarray(probabilities, dtype=np.float64).max(axis=0)  # (classes,)
    order = sorted(range(len(peaks)), key=lambda index: (-peaks[index], index))
    return order[:count]


def _batches(
    windows: Iterator[tuple[Window, torch.Tensor]], batch_size: int
) -> Iterator[tuple[list[Window], torch.Tensor]]:
    batch: list[tuple[Window, torch.Tensor]] = []
    for item in windows:
        batch.append(item)
        if len(batch) == batch_size:
            yield [window for window, _ in batch], torch.stack([clip for _, clip in batch])
            batch = []
    if batch:
        yield [window for window, _ in batch], torch.stack([clip for _, clip in batch])


def embedding_timelines(embeddings: Embeddings) -> dict[str, Timeline]:
    """Each video's windows in a file `hvm1 embed --stride` wrote, as `Timeline`s.

    Args:
        embeddings: rows `hvm1 embed --stride` wrote (`load_embeddings`), one per window.

    Returns:
        Path -> its `Timeline`: `values` (K, D) (or (K, 1 + L, D) for token pooling) and `times` (K, 2), in
        window order; the paths in the order of the rows.

    Raises:
        ValueError: the embeddings were made without a stride (one row per video, not per window).
    """
    if embeddings.settings.get("stride") is None:
        raise ValueError("these embeddings were made without --stride: one row per video, no windows")
    rows: dict[str, list[int]] = {}
    for row, path in enumerate(embeddings.paths):
        rows.setdefault(path, []).append(row)
    return {
        path: Timeline(Path(path), embeddings.clip_times[indices, 0], np.asarray(embeddings.embeddings[indices]))
        for path, indices in rows.items()
    }
