"""A short synthetic sample clip the project makes itself, for a first run with no videos at hand."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .grid import write_mp4

SAMPLE_NAME = "hvm1_sample.mp4"


def make_sample_clip(
    path: str | os.PathLike, num_frames: int = 90, height: int = 480, width: int = 640, fps: int = 30
) -> Path:
    """Write a synthetic MP4 of moving shapes (`num_frames` frames of `height` x `width` at `fps`) to `path`.

    A textured colour gradient with a red disc crossing it, a blue square turning as it drifts and a yellow
    triangle bouncing; the same arguments always draw the same frames. The default (3 s at 30 fps) covers
    the published visualisation clip (16 frames, 4 apart), and 480 px rows need no upscaling at 448 px.

    Args:
        path: the file to write.
        num_frames: frames in the video.
        height: its height in pixels.
        width: its width in pixels.
        fps: frames per second.

    Returns:
        The path.
    """
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack(
        [
            90 + 80 * columns / width,
            110 + 60 * rows / height,
            150 - 50 * columns / width + 15 * np.sin(rows / 9.0) * np.sin(columns / 13.0),
        ],
        axis=-1,
    )
    frames = []
    for index in range(num_frames):
        phase = index / max(num_frames - 1, 1)
        image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        radius = height // 8
        x, y = width * (0.1 + 0.8 * phase), height * (0.3 + 0.1 * math.sin(6 * phase))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(210, 40, 40), outline=(40, 0, 0), width=3)
        side, angle = height / 5, 2 * math.pi * phase
        cx, cy = width * (0.75 - 0.4 * phase), height * (0.45 + 0.3 * phase)
        corners = [
            (cx + side * math.cos(angle + k * math.pi / 2), cy + side * math.sin(angle + k * math.pi / 2))
            for k in range(4)
        ]
        draw.polygon(corners, fill=(40, 70, 200), outline=(255, 255, 255), width=3)
        tx, ty = width * 0.3, height * (0.8 - 0.25 * abs(math.sin(3 * math.pi * phase)))
        draw.polygon(
            [(tx, ty - radius), (tx - radius, ty + radius / 2), (tx + radius, ty + radius / 2)], fill=(240, 200, 30)
        )
        frames.append(np.asarray(image))
    return write_mp4(np.stack(frames), path, fps)
