"""Small broken or synthetic test files made on the spot (imported by tests; the real ones: reference_data)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np


def encode_video(
    path: Path,
    fps: int,
    num_frames: int,
    codec: str = "mpeg4",
    size: tuple[int, int] = (48, 64),
    title: str | None = None,
) -> Path:
    """Write a small video whose frame i is a flat grey of value 10 + 2 * i (so a frame shows its index),
    with `title` in the container's metadata when given."""
    height, width = size
    frames = (np.full((height, width, 3), 10 + 2 * index, np.uint8) for index in range(num_frames))
    return encode_frames(path, fps, frames, codec, title=title)


def encode_frames(
    path: Path,
    fps: int,
    frames: Iterable[np.ndarray],
    codec: str,
    options: dict[str, str] | None = None,
    title: str | None = None,
) -> Path:
    """Write the (H, W, 3) uint8 RGB `frames` as a video, frame i at i / fps, with the encoder's `options`."""
    with av.open(str(path), "w") as container:
        if title is not None:
            container.metadata["title"] = title
        stream = container.add_stream(codec, rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.options = options or {}
        for index, pixels in enumerate(frames):
            if index == 0:
                stream.height, stream.width = pixels.shape[:2]
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def packet_spans(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of every video packet in the file."""
    with av.open(str(path)) as container:
        return [(packet.pos, packet.size) for packet in container.demux(video=0) if packet.size]


def zero_bytes(source: Path, target: Path, spans: list[tuple[int, int]]) -> Path:
    """A copy of `source` with the given byte spans zeroed."""
    data = bytearray(source.read_bytes())
    for offset, size in spans:
        data[offset : offset + size] = bytes(size)
    target.write_bytes(bytes(data))
    return target


def frame_off_its_packet(monkeypatch, module, after: int = 0) -> list[float]:
    """Make `module`'s `decode_packet` (`hvm1.data.video.decode_packet`, as `module` imported it) hand out one
    frame, the one after `after` frames, an hour after its packet's time (where no packet of a test video is),
    as a decoder does whose frame times are not its packets' times. Returns a list that holds the moved frame's
    time once it is moved."""
    import hvm1.data.video

    decode = hvm1.data.video.decode_packet
    moved: list[float] = []
    seen = 0

    def decode_moving_one(path, stream, packet):
        nonlocal seen
        frames = decode(path, stream, packet)
        for frame in frames:
            if not moved and seen == after:
                frame.pts += round(3600 / stream.time_base)
                moved.append(float(frame.pts * stream.time_base))
            seen += 1
        return frames

    monkeypatch.setattr(module, "decode_packet", decode_moving_one)
    return moved
