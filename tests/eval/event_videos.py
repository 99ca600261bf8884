"""Pairs of videos that differ only in whether something impossible happens, made from the real test videos.

An object (a square cut from one real video) is pasted into a stretch of another and slides across it; in the
possible video it moves on continuously, in its impossible twin it vanishes (`vanish`) or jumps to another
place (`jump`) at `event_at` seconds. Both are encoded by `hvm1.viz.grid.write_mp4` (PyAV; H.264 where the
build has it) at 30 fps.
Imported by tests.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from hvm1.viz.grid import write_mp4

EVENTS = ("vanish", "jump")
FPS = 30


def decode_stretch(source: Path, start: float, seconds: float, width: int) -> list[np.ndarray]:
    """The frames on screen at `start + k / FPS` for `seconds` seconds, RGB, `width` px wide (even height)."""
    with av.open(str(source)) as reader:
        stream = reader.streams.video[0]
        decoded = []
        for frame in reader.decode(stream):
            if frame.time is None or frame.time > start + seconds:
                break
            height = 2 * round(frame.height * width / frame.width / 2)
            decoded.append((frame.time, frame.to_ndarray(width=width, height=height, format="rgb24")))
    instants = start + np.arange(round(seconds * FPS)) / FPS
    times = [time for time, _ in decoded]
    # The frame on screen at an instant: the last one shown at or before it (the first before any).
    return [decoded[max(0, int(np.searchsorted(times, t + 1e-6)) - 1)][1] for t in instants]


def cut_object(source: Path, size: int, at: float = 0.0) -> np.ndarray:
    """A `size` x `size` RGB square from the middle of the frame of `source` on screen at `at` seconds."""
    frame = decode_stretch(source, at, 1 / FPS, 4 * size)[0]
    top = (frame.shape[0] - size) // 2
    left = (frame.shape[1] - size) // 2
    return frame[top : top + size, left : left + size].copy()


def event_pair(
    background: Path,
    thing: Path,
    folder: Path,
    event: str,
    *,
    start: float = 0.0,
    seconds: float = 3.0,
    event_at: float = 1.5,
    width: int = 96,
    size: int = 24,
    name: str | None = None,
) -> tuple[Path, Path]:
    """Write `NAME_possible.mp4` and `NAME_EVENT.mp4` into `folder`: `seconds` of `background` from `start`
    with a square of `thing` sliding left to right along the middle; in the second video the square vanishes
    or jumps at `event_at` seconds. Returns (possible, impossible)."""
    if event not in EVENTS:
        raise ValueError(f"event must be one of {EVENTS}, got {event!r}")
    frames = decode_stretch(background, start, seconds, width)
    square = cut_object(thing, size)
    height = frames[0].shape[0]
    count = len(frames)
    xs = np.linspace(2, width - size - 2, count).round().astype(int)
    y = (height - size) // 2
    possible, impossible = [], []
    for index, frame in enumerate(frames):
        after = index / FPS >= event_at
        continuous = frame.copy()
        continuous[y : y + size, xs[index] : xs[index] + size] = square
        possible.append(continuous)
        if not after:
            impossible.append(continuous)
        elif event == "vanish":
            impossible.append(frame.copy())
        else:  # jump: the same motion, a third of the frame further on and nearer the top
            moved = frame.copy()
            x = (xs[index] + width // 3) % (width - size)
            top = max(0, y - height // 3)
            moved[top : top + size, x : x + size] = square
            impossible.append(moved)
    stem = name or f"{background.stem}{round(start)}"
    folder.mkdir(parents=True, exist_ok=True)
    return (
        write_mp4(np.stack(possible), folder / f"{stem}_possible.mp4", FPS),
        write_mp4(np.stack(impossible), folder / f"{stem}_{event}.mp4", FPS),
    )
