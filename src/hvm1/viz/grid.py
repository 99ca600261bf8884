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
from typing import Any

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

ANIMATION_FORMATS = ("mp4", "gif")
# H.264 encoders in order of preference; MPEG-4 part 2 is in every FFmpeg build.
H264_ENCODERS = ("libx264", "libopenh264")
_FALLBACK_ENCODER = "mpeg4"
JPEG_QUALITY = 95


def to_uint8(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float], scale_each: bool = False) -> np.ndarray:
    """Normalised frames (..., C, T, H, W) to true-colour tiles (..., T, H, W, C) uint8.

    Undoes the normalisation (`x * std + mean`, per channel), scales to 0-255, rounds and clamps. With
    `scale_each`, each tile (one frame, all channels) is instead stretched from its own min and max to
    0-255, as the published visualisation's `make_grid(normalize=True, scale_each=True)` does.

    Args:
        frames: normalised frames (..., C, T, H, W).
        mean: the normalisation's mean, per channel.
        std: the normalisation's std, per channel.
        scale_each: stretch each tile from its own min to max instead.

    Returns:
        (..., T, H, W, C) uint8.
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
    """Tiles (R, T, S_h, S_w, 3) uint8 to one image (R * (S_h + p) + p, T * (S_w + p) + p, 3), p = padding.

    Args:
        tiles: (R, T, S_h, S_w, 3) uint8.
        padding: pixels between and around the tiles.
        pad_value: their grey level.

    Returns:
        The image, uint8.
    """
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


# Label margins: Pillow's built-in font (the same bytes everywhere), white on the padding's black.
_FONT_SIZE = 11
_MARGIN = 4


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=_FONT_SIZE)


def _text_size(text: str) -> tuple[int, int]:
    left, top, right, bottom = _font().getbbox(text)
    return int(right - left), int(bottom)


def label_grid(
    image: np.ndarray,
    tile_size: tuple[int, int],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    padding: int = 1,
) -> np.ndarray:
    """A `make_grid` picture with each row's name in a margin on its left and each column's (a frame time)
    above it, white on black; the tiles are unchanged. `tile_size` is the tiles' (height, width).

    Args:
        image: what `make_grid` returned.
        tile_size: the tiles' (height, width).
        row_labels: one name per row.
        column_labels: one label per column.
        padding: the grid's padding.

    Returns:
        The labelled picture.
    """
    height, width = tile_size
    rows, columns = len(row_labels), len(column_labels)
    if image.shape[:2] != (rows * (height + padding) + padding, columns * (width + padding) + padding):
        raise ValueError(
            f"a {image.shape[0]}x{image.shape[1]} picture is no grid of {rows}x{columns} tiles of {height}x{width}"
        )
    left = max(_text_size(text)[0] for text in row_labels) + 2 * _MARGIN
    top = max(_text_size(text)[1] for text in column_labels) + _MARGIN
    canvas = Image.new("RGB", (left + image.shape[1], top + image.shape[0]))
    canvas.paste(Image.fromarray(image), (left, top))
    draw = ImageDraw.Draw(canvas)
    for row, text in enumerate(row_labels):
        middle = top + padding + row * (height + padding) + height // 2
        draw.text((left - _MARGIN, middle), text, fill="white", font=_font(), anchor="rm")
    for column, text in enumerate(column_labels):
        draw.text((left + padding + column * (width + padding), top - 2), text, fill="white", font=_font(), anchor="lb")
    return np.asarray(canvas)


def add_colour_bar(image: np.ndarray, colours: np.ndarray, low: str, high: str, top: int = 0) -> np.ndarray:
    """`image` with a vertical colour scale on its right: `colours` (K, 3) from low (bottom) to high (top),
    from row `top` down, named `high` above it and `low` below it.

    Args:
        image: (H, W, 3) uint8.
        colours: (K, 3), from low to high.
        low: the label below the scale.
        high: the label above it.
        top: the row the scale starts at.

    Returns:
        The wider picture.
    """
    text_height = max(_text_size(low)[1], _text_size(high)[1])
    bar_width, bar_top = 10, top + text_height + _MARGIN
    bar_height = image.shape[0] - bar_top - text_height - _MARGIN
    if bar_height < 2:
        raise ValueError(f"a {image.shape[0]} px high picture has no room for a colour bar")
    width = max(_text_size(low)[0], _text_size(high)[0], bar_width) + 2 * _MARGIN
    canvas = Image.new("RGB", (image.shape[1] + width, image.shape[0]))
    canvas.paste(Image.fromarray(image), (0, 0))
    positions = np.linspace(len(colours) - 1, 0, bar_height).round().astype(np.int64)  # high at the top
    bar = np.repeat(colours[positions][:, None], bar_width, axis=1).astype(np.uint8)
    canvas.paste(Image.fromarray(bar), (image.shape[1] + _MARGIN, bar_top))
    draw = ImageDraw.Draw(canvas)
    draw.text((image.shape[1] + _MARGIN, bar_top - 2), high, fill="white", font=_font(), anchor="lb")
    draw.text((image.shape[1] + _MARGIN, bar_top + bar_height + 2), low, fill="white", font=_font(), anchor="lt")
    return np.asarray(canvas)


def save_jpeg(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W, 3) uint8 image as a JPEG (quality 95, no chroma subsampling), creating its folder.

    Args:
        image: (H, W, 3) uint8.
        path: the file to write.

    Returns:
        The path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return path


def mp4_encoder() -> str:
    """The encoder `write_mp4` uses in this PyAV build: an H.264 encoder when there is one, else MPEG-4."""
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except ValueError:  # PyAV's UnknownCodecError: not in this FFmpeg build
            continue
        return name
    return _FALLBACK_ENCODER


class Mp4Writer:
    """An MP4 video written frame by frame at `fps` (H.264 where available, else MPEG-4), for videos too long
    to hold in memory: `with Mp4Writer(path, fps) as writer: writer.write(frame)`.

    The first frame fixes the size; 4:2:0 video needs even sizes, so an odd height or width gains one black row
    or column. Leaving the `with` block by an exception removes the unfinished file.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction | float) -> None:
        self.path = Path(path)
        self.frames = 0
        self._rate = _rate(fps)
        self._encoder = mp4_encoder()
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> Mp4Writer:
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame, the size of the first."""
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame of shape (H, W, 3), got {frame.dtype} {frame.shape}")
        frame = _even_sized(frame[None])[0]
        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w", format="mp4")
            self._stream = self._container.add_stream(self._encoder, rate=self._rate)
            self._stream.height, self._stream.width = frame.shape[:2]
            self._stream.pix_fmt = "yuv420p"
            if self._encoder == _FALLBACK_ENCODER:
                self._stream.bit_rate = 8_000_000  # MPEG-4's default rate smears fine detail
            else:
                self._stream.options = {"crf": "18"}
        elif frame.shape[:2] != (self._stream.height, self._stream.width):
            raise ValueError(
                f"{self.path}: a {frame.shape[0]}x{frame.shape[1]} frame in a "
                f"{self._stream.height}x{self._stream.width} video"
            )
        self._container.mux(
            self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
        )
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and return its path (an error when no frame was written)."""
        if self._container is None:
            raise ValueError(f"{self.path}: no frames to write")
        self._container.mux(self._stream.encode())
        self._container.close()
        self._container = None
        logger.info("wrote %s (%d frames, %s)", self.path, self.frames, self._encoder)
        return self.path

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
        elif self._container is not None:
            self._container.close()
            self.path.unlink(missing_ok=True)


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: Fraction | float) -> Path:
    """Write frames (T, H, W, 3) uint8 as an MP4 video at `fps` (H.264 where available, else MPEG-4).

    4:2:0 video needs even sizes: an odd height or width gains one black row or column.

    Args:
        frames: (T, H, W, 3) uint8.
        path: the file to write.
        fps: frames per second.

    Returns:
        The path.
    """
    with Mp4Writer(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: Fraction | float) -> Path:
    """Write frames (T, H, W, 3) uint8 as a looping GIF at `fps`, one GIF frame per frame (none merged).

    Each frame gets its own 256-colour palette (median cut, no dithering) and is encoded by FFmpeg's GIF
    encoder through PyAV; Pillow's writer would merge identical consecutive frames.

    Args:
        frames: (T, H, W, 3) uint8.
        path: the file to write.
        fps: frames per second.

    Returns:
        The path.
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
    """Write frames (T, H, W, 3) uint8 as the animation `path`'s suffix names: `.mp4` or `.gif`.

    Args:
        frames: (T, H, W, 3) uint8.
        path: the file to write.
        fps: frames per second.

    Returns:
        The path.

    Raises:
        ValueError: frames that are not (T, H, W, 3) uint8, or a suffix other than `.mp4` or `.gif`.
    """
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
