"""Pictures from tiles: normalised frames to true-colour uint8, tile grids, JPEG files and animations.

A tile stack is a numpy array (rows, columns, S, S, 3) uint8; a grid lays it out with 1 px padding between
and around the tiles, so S px tiles in R rows and T columns make an image of (R * (S + 1) + 1) x
(T * (S + 1) + 1). Writers are deterministic: the same array gives the same bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

ANIMATION_FORMATS = ("mp4", "gif")
# H.264 encoders in order of preference; MPEG-4 part 2 is in every FFmpeg build.
_H264_ENCODERS = ("libx264", "libopenh264")
_FALLBACK_ENCODER = "mpeg4"
JPEG_QUALITY = 95


def to_uint8(
    frames: torch.Tensor, mean: Sequence[float], std: Sequence[float], scale_each: bool = False
) -> np.ndarray:
    """Normalised frames (..., C, T, H, W) to true-colour tiles (..., T, H, W, C) uint8.

    Undoes the normalisation (`x * std + mean`, per channel), scales to 0-255, rounds and clamps. With
    `scale_each`, each tile (one frame, all channels) is instead stretched from its own min and max to
    0-255, as the published visualisation's `make_grid(normalize=True, scale_each=True)` does.
    """
    frames = frames.detach().to("cpu", torch.float32)
    channels = frames.shape[-4]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    tiles = frames.movedim(-4, -1)  # (..., T, H, W, C)
    if scale_each:
        low = tiles.amin(dim=(-3, -2, -1), keepdim=True)
        high = tiles.amax(dim=(-3, -2, -1), keepdim=True)
        unit = (tiles - low) / (high - low).clamp(min=1e-5)
    else:
        unit = tiles * torch.tensor(std) + torch.tensor(mean)
    return (unit * 255).round_().clamp_(0, 255).to(torch.uint8).numpy()


def make_grid(tiles: np.ndarray, padding: int = 1, pad_value: int = 0) -> np.ndarray:
    """Tiles (R, T, S_h, S_w, 3) uint8 to one image (R * (S_h + p) + p, T * (S_w + p) + p, 3), p = padding."""
    if tiles.ndim != 5 or tiles.shape[-1] != 3 or tiles.dtype != np.uint8:
        raise ValueError(f"expected uint8 tiles of shape (rows, columns, H, W, 3), got {tiles.dtype} {tiles.shape}")
    rows, columns, height, width, _ = tiles.shape
    step_y, step_x = height + padding, width + padding
    grid = np.full((rows * step_y + padding, columns * step_x + padding, 3), pad_value, dtype=np.uint8)
    for row in range(rows):
        for column in range(columns):
            top, left = padding + row * step_y, padding + column * step_x
            grid[top : top + height, left : left + width] = tiles[row, column]
    return grid


def save_jpeg(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W, 3) uint8 image as a JPEG (quality 95, no chroma subsampling), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return path


def mp4_encoder() -> str:
    """The encoder `write_mp4` uses in this PyAV build: an H.264 encoder when there is one, else MPEG-4."""
    for name in _H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except ValueError:  # PyAV's UnknownCodecError: not in this FFmpeg build
            continue
        return name
    return _FALLBACK_ENCODER


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: Fraction | float) -> Path:
    """Write frames (T, H, W, 3) uint8 as an MP4 video at `fps` (H.264 where available, else MPEG-4).

    4:2:0 video needs even sizes: an odd height or width gains one black row or column.
    """
    frames = _even_sized(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = mp4_encoder()
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(encoder, rate=_rate(fps))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if encoder == _FALLBACK_ENCODER:
            stream.bit_rate = 8_000_000  # MPEG-4's default rate smears fine detail
        else:
            stream.options = {"crf": "18"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    logger.info("wrote %s (%d frames, %s)", path, len(frames), encoder)
    return path


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: Fraction | float) -> Path:
    """Write frames (T, H, W, 3) uint8 as a looping GIF at `fps`, one GIF frame per frame (none merged).

    Each frame gets its own 256-colour palette (median cut, no dithering) and is encoded by FFmpeg's GIF
    encoder through PyAV; Pillow's writer would merge identical consecutive frames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=_rate(fps))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "pal8"
        for frame in frames:
            # PyAV takes pal8 frames as (indices, palette); its type stubs know only plain arrays.
            pal8 = av.VideoFrame.from_ndarray(_palettised(frame), format="pal8")  # type: ignore[arg-type]
            container.mux(stream.encode(pal8))
        container.mux(stream.encode())
    logger.info("wrote %s (%d frames)", path, len(frames))
    return path


def write_animation(frames: np.ndarray, path: str | os.PathLike, fps: Fraction | float) -> Path:
    """Write frames (T, H, W, 3) uint8 as the animation `path`'s suffix names: `.mp4` or `.gif`."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "mp4":
        return write_mp4(frames, path, fps)
    if suffix == "gif":
        return write_gif(frames, path, fps)
    raise ValueError(f"an animation must be one of {', '.join(ANIMATION_FORMATS)}, got {path}")


def _rate(fps: Fraction | float) -> Fraction:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _even_sized(frames: np.ndarray) -> np.ndarray:
    height, width = frames.shape[1:3]
    return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))


def _palettised(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An RGB frame as PyAV's pal8 input: (indices (H, W) uint8, palette (256, 4) ARGB)."""
    image = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    colours = np.asarray((image.getpalette() or [])[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # opaque
    palette[: len(colours), 1:] = colours
    return np.asarray(image), palette
