"""Short clips cut from the real test videos, and folders of them laid out as datasets (imported by tests)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def cut_clip(
    source: Path, target: Path, start: float, seconds: float = 2.5, width: int = 96, codec: str = "mpeg4"
) -> Path:
    """Re-encode `seconds` of `source` from `start` at `width` px wide (small files decode fast) with `codec`
    ('libvpx' for a .webm target), keeping the frame times."""
    with av.open(str(source)) as reader:
        stream = reader.streams.video[0]
        rate = Fraction(stream.average_rate).limit_denominator(1000)
        reader.seek(int(start / stream.time_base), stream=stream)
        frames = []
        for frame in reader.decode(stream):
            if frame.time < start:
                continue
            if frame.time >= start + seconds:
                break
            height = 2 * round(frame.height * width / frame.width / 2)
            frames.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
    with av.open(str(target), "w") as writer:
        out = writer.add_stream(codec, rate=rate)
        out.height, out.width = frames[0].shape[:2]
        out.pix_fmt = "yuv420p"
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = index
            writer.mux(out.encode(frame))
        writer.mux(out.encode(None))
    return target


def class_folders(root: Path, classes: dict[str, list[Path]]) -> Path:
    """`root/CLASS/FILE` links to the given files, one subfolder per class."""
    for name, files in classes.items():
        (root / name).mkdir(parents=True)
        for file in files:
            (root / name / file.name).symlink_to(file)
    return root
