"""Timelines: a model's output for windows every `stride` seconds over a whole video, in one streaming pass.

`window_outputs` runs any forward function over the windows `hvm1.data.load_windows` gives (each the preset's
clip at the window's start, the video decoded once), a batch of windows at a time, and returns a `Timeline`:
each window's start and end time beside its output. `hvm1 embed --stride` stores embeddings this way (one row
per window, see `embedding_timelines`); the per-window classification of `hvm1 classify --stride` is in
`hvm1.eval.classify_timeline`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hvm1.data import VideoPreset, Window, load_windows

from .store import Embeddings


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
    """Each video's windows in a file `hvm1 embed --stride` wrote: path -> `Timeline` with `values` (K, D) (or
    (K, 1 + L, D) for token pooling) and `times` (K, 2), in window order.

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
