"""Segmentation test data (imported by the tests): DAVIS-layout sequences built from the real videos in
tests/fixtures, with objects whose masks are exact because the tests paste them in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hvm1.data import read_clip
from hvm1.segment import write_indexed_png
from reference_data import TINY, VIDEOS, fixture


def video_frames(name: str, count: int, sampling_rate: int = 2) -> np.ndarray:
    """`count` real frames (T, H, W, 3) uint8 of a real test video, every `sampling_rate`-th at 30 fps."""
    return read_clip(fixture(VIDEOS / name), num_frames=count, sampling_rate=sampling_rate, start=0.0).frames.numpy()


def disk_object(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured round object from another real video: (pixels (size, size, 3), shape (size, size) bool)."""
    texture = video_frames("cup.mp4", 1)[0][200 : 200 + size, 260 : 260 + size]
    yy, xx = np.mgrid[:size, :size]
    shape = (yy - (size - 1) / 2) ** 2 + (xx - (size - 1) / 2) ** 2 <= (size / 2) ** 2
    return texture, shape


def moving_object_sequence(
    count: int, step: tuple[int, int] = (3, 6), size: int = 96, start=(120, 100), objects: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`count` frames of box.mp4 with `objects` textured disks pasted in, moving `step` (rows, columns) per
    frame; returns the frames (H, W, 3) uint8 and their exact id masks (H, W) uint8 (object k has id k)."""
    backgrounds = video_frames("box.mp4", count)
    texture, shape = disk_object(size)
    frames, masks = [], []
    for index, background in enumerate(backgrounds):
        frame, mask = background.copy(), np.zeros(background.shape[:2], dtype=np.uint8)
        for obj in range(objects):
            top = start[0] + index * step[0] + obj * 160
            left = start[1] + index * step[1] + obj * 220
            region = (slice(top, top + size), slice(left, left + size))
            frame[region][shape] = np.roll(texture, obj * 30, axis=2)[shape]
            mask[region][shape] = obj + 1
        frames.append(frame)
        masks.append(mask)
    return frames, masks


def write_davis(
    root: Path, sequences: dict[str, tuple[list[np.ndarray], list[np.ndarray]]], annotate_all: bool = True
) -> Path:
    """A DAVIS-2017 folder: JPEGImages/480p/SEQ/NNNNN.jpg, Annotations/480p/SEQ/NNNNN.png, ImageSets/2017/val.txt."""
    for name, (frames, masks) in sequences.items():
        for index, (frame, mask) in enumerate(zip(frames, masks)):
            folder = root / "JPEGImages" / "480p" / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(folder / f"{index:05d}.jpg", quality=95)
            if annotate_all or index == 0:
                write_indexed_png(mask, root / "Annotations" / "480p" / name / f"{index:05d}.png")
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{name}\n" for name in sequences))
    return root


def reference_vit():
    """The tiny reference ViT (56 px, patch 14, 8 frames, width 64, 2 blocks) with its perturbed weights."""
    import hvm1

    folder = fixture(TINY)
    config = json.loads((folder / "config.json").read_text())
    return hvm1.load_model(folder / "mae_checkpoint.pth", model_type="vit", num_heads=config["num_heads"])


def as_tensors(frames: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(frame).permute(2, 0, 1).contiguous() for frame in frames]
