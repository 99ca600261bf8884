"""Pictures of surprise over time: a plot of each window's error with frames under the time axis and the peaks
marked, and heat maps of the per-patch error over the hidden frames (the frames of an MP4).

Everything here takes plain arrays, so a video of any length is drawn from what `hvm1.eval.surprise` keeps of
it: one number per window and method, and a bounded strip of thumbnails (`Thumbnails`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .attention import HEAT_ALPHA, heat_colours
from .grid import add_colour_bar

#: Thumbnails a surprise plot shows under its time axis at most.
THUMBNAILS = 10


class Thumbnails:
    """At most about 2 x `limit` small frames of a video of any length, kept evenly spaced as they arrive.

    `add(time, frame)` is called for each window in time order; every `step`-th is kept, and when twice
    `limit` are kept every other one is dropped and `step` doubles, so memory stays bounded however long the
    video. `chosen()` gives at most `limit` of them, evenly spaced.
    """

    def __init__(self, limit: int = THUMBNAILS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.step = 1
        self._count = 0
        self._kept: list[tuple[float, np.ndarray]] = []

    def add(self, time: float, frame: np.ndarray) -> None:
        """Offer the frame (H, W, 3) uint8 shown at `time` seconds."""
        if self._count % self.step == 0:
            self._kept.append((time, frame))
            if len(self._kept) >= 2 * self.limit:
                self._kept = self._kept[::2]
                self.step *= 2
        self._count += 1

    def chosen(self) -> list[tuple[float, np.ndarray]]:
        """Up to `limit` of the kept (time, frame): for each of `limit` times evenly spaced from the first kept to
        the last, the one nearest to it (each once)."""
        if len(self._kept) <= self.limit:
            return list(self._kept)
        times = np.array([time for time, _ in self._kept])
        targets = np.linspace(times[0], times[-1], self.limit)
        picks = dict.fromkeys(int(np.abs(times - target).argmin()) for target in targets)
        return [self._kept[index] for index in picks]


def surprise_peaks(values: Sequence[float], count: int = 3, distance: int = 1) -> list[int]:
    """The indices of the `count` highest local maxima of `values` (a value no lower than its neighbours and
    higher than one of them; an end counts against its one neighbour), highest first, ties to the earlier; a
    maximum fewer than `distance` places from a higher one chosen already is passed over."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) == 0:
        return []
    if len(data) == 1:
        return [0]
    left = np.r_[data[1], data[:-1]]  # an end is compared with its one neighbour on both sides
    right = np.r_[data[1:], data[-2]]
    local = (data >= left) & (data >= right) & ((data > left) | (data > right))
    candidates = np.flatnonzero(local)
    chosen: list[int] = []
    for index in sorted(candidates, key=lambda index: (-data[index], index)):
        if len(chosen) < count and all(abs(int(index) - other) >= distance for other in chosen):
            chosen.append(int(index))
    return chosen


def plot_surprise(
    times: Sequence[float],
    losses: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    model: str,
    thumbnails: Sequence[tuple[float, np.ndarray]] = (),
    peaks: Sequence[int] = (),
    title: str | None = None,
) -> Path:
    """A PNG of each method's error over time, with frames under the time axis and the model's peaks marked.

    Args:
        times: each window's time in seconds (where its hidden span is centred).
        losses: per method (the model under the name `model`, then the baselines) its loss per window.
        path: the PNG to write (its folder is made).
        model: which of `losses` is the model's: drawn thick, its `peaks` marked with their times.
        thumbnails: (time, frame (H, W, 3) uint8) to show below the time axis, side by side in time order (one
            slot each, evenly spaced: `Thumbnails.chosen` gives frames evenly spaced in time).
        peaks: indices of the windows to mark (`surprise_peaks` of the model's losses).
        title: the plot's title.

    Returns:
        `path`.

    Raises:
        ValueError: a method's losses and `times` differ in length, or `model` is not among `losses`.
    """
    if model not in losses:
        raise ValueError(f"the model {model!r} is not among the methods {list(losses)}")
    for method, values in losses.items():
        if len(values) != len(times):
            raise ValueError(f"{method}: {len(values)} losses for {len(times)} windows")
    xs = np.asarray(times, dtype=np.float64)
    figure, axes, under = time_plot(bool(thumbnails))
    for method, values in losses.items():
        if method == model:
            axes.plot(
                xs, values, color="black", linewidth=2.0, marker="o", markersize=3, label=f"{method} (model)", zorder=3
            )
        else:
            axes.plot(xs, values, linewidth=1.0, alpha=0.8, label=method)
    model_values = np.asarray(losses[model], dtype=np.float64)
    for rank, index in enumerate(peaks):
        axes.plot(
            xs[index],
            model_values[index],
            marker="v",
            color="red",
            markersize=9,
            zorder=4,
            label="peaks" if rank == 0 else None,
        )
        axes.annotate(
            f"{xs[index]:.1f} s",
            (xs[index], model_values[index]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
            color="red",
        )
    axes.set_ylabel("error on the hidden patches")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    return save_time_plot(figure, axes, under, xs, thumbnails, path, title)


def time_plot(strip: bool) -> tuple[Any, Any, Any]:
    """A matplotlib figure for values over a video's time: (figure, axes, under), `under` the axes of a strip of
    frames below the plot's time axis when `strip`, else None (`save_time_plot` draws the frames and writes it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.6 if strip else 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    if strip:
        axes, under = figure.subplots(2, 1, sharex=True, height_ratios=(3.2, 1.0))
        return figure, axes, under
    return figure, figure.subplots(1, 1), None


def save_time_plot(
    figure,
    axes,
    under,
    xs: np.ndarray,
    thumbnails: Sequence[tuple[float, np.ndarray]],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Finish a `time_plot` whose values are at times `xs`: its `title`, the `thumbnails` ((time, frame (H, W, 3)
    uint8), in time order) on the strip `under` (or the time axis named on `axes`), written as the PNG `path`."""
    if title:
        axes.set_title(title, fontsize=10)
    if under is not None:
        # The frames side by side in time order, each in its own slot of the time axis (the slot nearest its time).
        low, high = (
            (float(xs.min()), float(xs.max())) if len(xs) > 1 else (thumbnails[0][0] - 0.5, thumbnails[0][0] + 0.5)
        )
        width = (high - low) / len(thumbnails)
        top = max(width * frame.shape[0] / frame.shape[1] for _, frame in thumbnails)
        for slot, (_, frame) in enumerate(sorted(thumbnails, key=lambda item: item[0])):
            left = low + slot * width
            height = width * frame.shape[0] / frame.shape[1]
            under.imshow(frame, extent=(left + 0.03 * width, left + 0.97 * width, 0, height), interpolation="bilinear")
        under.set_aspect("auto")
        under.set_yticks([])
        under.set_ylim(0, top)
        under.set_xlabel("time in the video (s)")
        under.set_xlim(low - 0.02 * (high - low), high + 0.02 * (high - low))
    else:
        axes.set_xlabel("time in the video (s)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def _draw_thumbnails(under, xs: np.ndarray, thumbnails: Sequence[tuple[float, np.ndarray]]) -> None:
    span = (xs.max() - xs.min()) if len(xs) > 1 else 1.0
    width = span / max(len(thumbnails), 1) * 0.9 if len(xs) > 1 else 1.0
    for time, frame in thumbnails:
        height = width * frame.shape[0] / frame.shape[1]
        under.imshow(frame, extent=(time - width / 2, time + width / 2, 0, height), interpolation="bilinear")
    under.set_aspect("auto")
    under.set_yticks([])
    under.set_ylim(0, max(width * frame.shape[0] / frame.shape[1] for _, frame in thumbnails))
    under.set_xlabel("time in the video (s)")
    low, high = (xs.min(), xs.max()) if len(xs) else (0.0, 1.0)
    under.set_xlim(min(low, thumbnails[0][0]) - width / 2, max(high, thumbnails[-1][0]) + width / 2)


def error_map_frames(frames: np.ndarray, errors: torch.Tensor, scale: float) -> np.ndarray:
    """Each frame with its patches' error as heat over it, and the colour scale on the right.

    Args:
        frames: (T, H, W, 3) uint8, the frames the errors are of.
        errors: (T, h, w) each frame's per-patch error (a tubelet's error repeated over its frames), the
            frame splitting into h x w patches.
        scale: the error drawn in the top colour: errors are drawn as min(error / scale, 1), the same scale for
            every frame and window, so colours compare over the video.

    Returns:
        (T, H', W', 3) uint8 frames (the colour bar widens them; even sizes are left to the writer).

    Raises:
        ValueError: the errors do not fit the frames, or `scale` is not positive.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    count, height, width = frames.shape[:3]
    if errors.dim() != 3 or errors.shape[0] != count or height % errors.shape[1] or width % errors.shape[2]:
        raise ValueError(f"errors of shape {tuple(errors.shape)} do not fit {count} frames of {height}x{width}")
    unit = (errors.to(torch.float32) / scale).clamp(0, 1)
    upsampled = F.interpolate(unit[None], size=(height, width), mode="nearest")[0].numpy()  # one value per patch
    blended = (1 - HEAT_ALPHA) * frames.astype(np.float32) + HEAT_ALPHA * heat_colours(upsampled)
    overlay = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    colours = np.round(heat_colours(np.linspace(0.0, 1.0, 64))).astype(np.uint8)
    return np.stack([add_colour_bar(frame, colours, "0", f"{scale:g}") for frame in overlay])
