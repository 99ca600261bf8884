"""Pictures of a classifier over a whole video: its leading classes' probabilities over time (with frames under
the time axis), and the video itself with each moment's top classes written on it.

Both take a `hvm1.eval.Timeline` of probabilities (`hvm1.eval.window_probabilities`) and the head's class names.
The video is read a second time, a frame every 1 / fps seconds, streamed into the MP4 (memory stays flat).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hvm1.data import read_windows
from hvm1.eval.timelines import Timeline, leading_classes

from .grid import Mp4Writer
from .surprise import save_time_plot, time_plot

#: Classes a timeline plot shows, and classes written on each frame of the video.
PLOTTED_CLASSES = 5
SHOWN_CLASSES = 3
#: Frames per second of the annotated video (frames of the video every 1 / fps s, played in real time).
VIDEO_FPS = 15.0
#: The annotated video's short side in pixels (None: the video's own size).
VIDEO_SHORT_SIDE = 360


def plot_class_timeline(
    timeline: Timeline,
    names: Sequence[str],
    path: str | os.PathLike,
    *,
    count: int = PLOTTED_CLASSES,
    thumbnails: Sequence[tuple[float, np.ndarray]] = (),
    title: str | None = None,
) -> Path:
    """A PNG of the probabilities of the video's leading classes over time, frames under the time axis.

    Args:
        timeline: a `Timeline` of probabilities (K, classes); each window's value is drawn at its middle.
        names: one name per class.
        path: the PNG to write (its folder is made).
        count: how many classes to draw: those with the highest probability at any window
            (`hvm1.eval.leading_classes`).
        thumbnails: (time, frame (H, W, 3) uint8), in time order, to show along the time axis (a
            `hvm1.viz.surprise.Thumbnails` keeps a few of a long video's).
        title: the plot's title.

    Returns:
        `path`.

    Raises:
        ValueError: `names` is not one per class, or the timeline has no window.
    """
    probabilities = np.asarray(timeline.values, dtype=np.float64)
    if len(timeline) == 0:
        raise ValueError(f"{timeline.path}: no window to plot")
    if probabilities.shape[1] != len(names):
        raise ValueError(f"{len(names)} class names for {probabilities.shape[1]} classes")
    xs = timeline.centers
    figure, axes, under = time_plot(bool(thumbnails))
    for index in leading_classes(probabilities, count):
        axes.plot(xs, probabilities[:, index], marker="o", markersize=3, linewidth=1.5, label=names[index])
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("probability")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_time_plot(figure, axes, under, xs, thumbnails, path, title)


def window_at(timeline: Timeline, time: float) -> int:
    """The window on screen at `time`: the one whose middle is nearest (the earlier one on a tie).

    Args:
        timeline: the windows.
        time: seconds from the video's first frame.

    Returns:
        The window's index.

    Raises:
        ValueError: the timeline has no window.
    """
    if len(timeline) == 0:
        raise ValueError(f"{timeline.path}: no window")
    return int(np.argmin(np.abs(timeline.centers - time)))


def write_top_classes(frame: np.ndarray, ranked: Sequence[tuple[str, float]]) -> np.ndarray:
    """Write classes and their probabilities on a frame: one line each in its top-left corner, white on a dark box.

    Args:
        frame: (H, W, 3) uint8; left unchanged.
        ranked: (name, probability) per line, in order; a line reads "82%  name", and a name too long for the
            frame is cut with "...". The font's size follows the frame's height.

    Returns:
        A new (H, W, 3) uint8 frame with the box.
    """
    image = Image.fromarray(frame).convert("RGBA")
    height, width = frame.shape[:2]
    font = ImageFont.load_default(size=max(10, height // 22))
    margin = max(3, height // 90)
    lines = [_fitted(f"{probability * 100:.0f}%  {name}", font, width - 4 * margin) for name, probability in ranked]
    boxes = [font.getbbox(line) for line in lines]
    line_height = max((bottom for _, _, _, bottom in boxes), default=0) + margin
    box_width = max((right for _, _, right, _ in boxes), default=0) + 2 * margin
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    bottom = margin + line_height * len(lines) + margin
    draw.rectangle((margin, margin, margin + box_width, bottom), fill=(0, 0, 0, 150))
    for row, line in enumerate(lines):
        draw.text((2 * margin, 2 * margin + row * line_height), line, font=font, fill=(255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


def _fitted(text: str, font, width: int) -> str:
    if font.getlength(text) <= width:
        return text
    while len(text) > 1 and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def write_class_video(
    video: str | os.PathLike,
    timeline: Timeline,
    names: Sequence[str],
    path: str | os.PathLike,
    *,
    count: int = SHOWN_CLASSES,
    fps: float = VIDEO_FPS,
    short_side: int | None = VIDEO_SHORT_SIDE,
    autorotate: bool = True,
) -> Path:
    """An MP4 of `video` (a frame every 1 / `fps` seconds, played at `fps`) with the top `count` classes of the
    window on screen at each moment (`window_at`) written on each frame (`write_top_classes`).

    Args:
        video: the video the timeline was made from.
        timeline: its `Timeline` of probabilities (K, classes).
        names: one name per class.
        path: the MP4 to write (its folder is made; an unfinished file is removed).
        count: classes written on each frame.
        fps: frames per second, of the video read and of the MP4.
        short_side: the frames' short side in pixels (None: the video's own size).
        autorotate: apply the video's display rotation, as the timeline's windows were read.

    Returns:
        `path`.

    Raises:
        ValueError: `names` is not one per class, or the timeline has no window.
        VideoError: the video cannot be read.
    """
    probabilities = np.asarray(timeline.values, dtype=np.float64)
    if len(timeline) == 0:
        raise ValueError(f"{timeline.path}: no window to show")
    if probabilities.shape[1] != len(names):
        raise ValueError(f"{len(names)} class names for {probabilities.shape[1]} classes")
    ranked = [
        [(names[index], float(row[index])) for index in np.argsort(-row, kind="stable")[:count]]
        for row in probabilities
    ]
    frames = read_windows(
        video, 1.0 / fps, num_frames=1, sampling_rate=1, target_fps=fps, short_side=short_side, autorotate=autorotate
    )
    with Mp4Writer(path, fps) as writer:
        for frame in frames:
            writer.write(write_top_classes(frame.clip.frames[0].numpy(), ranked[window_at(timeline, frame.start)]))
    return writer.path
