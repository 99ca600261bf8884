"""Decoding clips from video files as a player shows them: time-based frame sampling that checks what the
file really holds.

A clip is `num_frames` instants `sampling_rate / target_fps` seconds apart on the video's clock, whose 0 is
the video's first frame (the stream's start time: cut recordings, MPEG-TS and camera files start later than
0 on their own clock); each instant shows the frame on screen then (the last frame whose presentation time is
at or before it). Header frame counts and durations are only used to place a clip, never to decide what was
decoded: decoding finds where the frames really end, and a decoder may hand frames out of presentation order.

Frames come out as a player shows them (`Display`): the stream's display matrix (rotation by 90, 180 or 270
degrees and mirroring, as phones record upright video) is applied, and non-square pixels (anamorphic video,
a sample aspect ratio other than 1:1) are stretched to the display aspect, before any resize; all readers
share `frame_display` and `frames_to_rgb`, which do this.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation, VideoReformatter
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

#: A clip start: seconds, "random", "center", or (clip_index, num_clips).
Start = float | str | tuple[int, int]

# Frame times and instants are floats computed from rationals; a frame exactly on an instant must count as
# "at or before" it whatever the rounding. One microsecond is far below any frame interval.
TIME_TOLERANCE = 1e-6
# Frames are coded out of presentation order by at most the reorder buffer, which H.264 and HEVC cap at 16
# frames: 16 frames (or packets) past the clip's end, no frame of the clip can still come.
REORDER_DEPTH = 16
# When a seek lands after the time asked for, retry this many seconds earlier, then 8x further back, ...
_FIRST_SEEK_BACKOFF = 1.0
# Anamorphic formats stretch pixels by at most 2:1 (and 4:3, 16:11, 40:33 ...); far beyond, a header is damaged.
_MAX_SAMPLE_ASPECT = 8
_SEEK_BACKOFF_FACTOR = 8.0


class VideoError(Exception):
    """A video (or image) that cannot be read: the message names the file and the reason.

    Raised for a missing file, a file that is not a video, a file without a video stream, truncated or
    damaged data, and a video with no decodable frame. `path` and `reason` hold the two parts (both None
    when the exception was rebuilt from its text alone, as a DataLoader worker does in the main process).
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None) -> None:
        # A DataLoader re-raises a worker's exception in the main process as VideoError(text).
        super().__init__(str(path) if reason is None else f"{path}: {reason}")
        self.path = None if reason is None else Path(path)
        self.reason = reason

    def __reduce__(self):
        if self.reason is None:
            return (type(self), self.args)
        return (type(self), (str(self.path), self.reason))


@dataclass(frozen=True)
class Display:
    """How a stored frame becomes the picture a player shows: mirrored, rotated, pixels made square.

    `mirrored` mirrors the stored frame left-right first, then it is turned `rotation` degrees clockwise
    (0, 90, 180 or 270): the eight orientations a display matrix (or an EXIF tag) can give. `sample_aspect`
    is the width of a stored pixel over its height; the frame is stretched horizontally by it (before the
    rotation) so that its pixels are square. The identity is `Display()`.
    """

    rotation: int = 0
    mirrored: bool = False
    sample_aspect: Fraction = field(default_factory=lambda: Fraction(1))

    def __post_init__(self) -> None:
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees, got {self.rotation}")
        if not self.sample_aspect > 0:
            raise ValueError(f"sample_aspect must be > 0, got {self.sample_aspect}")

    @property
    def turns_sideways(self) -> bool:
        """Whether the shown picture is the stored one's height wide (a rotation by 90 or 270 degrees)."""
        return self.rotation in (90, 270)

    def shown_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a player shows a stored `height` x `width` frame at.

        Args:
            height: the stored frame's height in pixels.
            width: the stored frame's width in pixels.

        Returns:
            (height, width) of the shown picture: stretched by `sample_aspect`, swapped when turned sideways.
        """
        width = max(1, round(width * self.sample_aspect))
        return (width, height) if self.turns_sideways else (height, width)

    def orient(self, frames: torch.Tensor) -> torch.Tensor:
        """Mirror and rotate frames as a player shows them (a view where it can be one; no resize).

        Args:
            frames: (..., H, W, C) stored frames (already stretched to square pixels).

        Returns:
            (..., H', W', C) shown frames: (W, H) for a rotation by 90 or 270 degrees.
        """
        if self.mirrored:
            frames = frames.flip(-2)
        if self.rotation:
            frames = torch.rot90(frames, k=-self.rotation // 90, dims=(-3, -2))  # k < 0 turns clockwise
        return frames


@dataclass(frozen=True)
class Clip:
    """Frames read from a video, with the times they show and the times that were asked for.

    `frames` is (T, H, W, 3) uint8 RGB, as a player shows them (`display` says what was applied to the stored
    frames); `times` (T,) float64 is the presentation time of each returned frame and `instants` (T,) float64
    the times asked for, both in seconds on the video's clock: from its first frame, which is at 0.0 (`origin`
    is where that frame is on the stream's own clock: add it for the times FFmpeg's `frame.time` gives);
    `fps` the frame rate measured from the decoded frames; `padded` how many instants fell after the last
    decodable frame (those show that frame).
    """

    frames: torch.Tensor
    times: torch.Tensor
    instants: torch.Tensor
    fps: float
    padded: int
    path: Path
    display: Display = field(default_factory=Display)
    origin: float = 0.0


@dataclass
class _Decoded:
    """What one decoding pass found: the frame chosen per instant and where the stream ended."""

    frames: list  # av.VideoFrame per instant
    times: list[float]  # their presentation times
    first_time: float  # earliest decoded frame
    last_time: float  # latest decoded frame
    count: int  # frames decoded
    reached_end: bool  # the pass decoded up to the end of the stream


class _SeekLandedLate(Exception):
    """The seek put the decoder after the first instant (or past the end): decode from earlier."""


def read_clip(
    path: str | os.PathLike,
    num_frames: int = 16,
    sampling_rate: int = 4,
    target_fps: float = 30.0,
    start: Start = 0.0,
    short_side: int | None = None,
    generator: torch.Generator | None = None,
    autorotate: bool = True,
) -> Clip:
    """Decode the `num_frames` frames on screen at `start + k * sampling_rate / target_fps` seconds.

    Times are seconds from the video's first frame (its stream's start time is 0.0, see `Clip`), so
    `start=0.0` is the first frame a player shows and videos of any frame rate give the same moments; an
    instant before the first frame shows the first frame. `start` is seconds, "random" (uniform over the
    starts that keep the clip inside the video, drawn from `generator`), "center", or `(clip_index,
    num_clips)` for evenly spaced clips; for those three the container's duration estimate places the clip,
    and a clip that then runs past the last decodable frame is shifted back to fit. Only what the clip needs
    is decoded (from the keyframe before `start` to the last frame shown, skipping non-reference frames no
    instant shows), with the decoder's threads; only the chosen frames are converted to RGB, resized on the
    way when `short_side` is given. Frames are as a player shows them (see `Display`): non-square pixels
    stretched to the display aspect, and the stream's display rotation applied unless `autorotate` is False.

    Args:
        path: the video file.
        num_frames: frames in the clip.
        sampling_rate: the clip takes every `sampling_rate`-th frame at `target_fps`.
        target_fps: the frame rate the sampling rate counts in, whatever the video's own.
        start: seconds from the first frame, "random", "center" or `(clip_index, num_clips)`.
        short_side: resize so that the short side of the shown picture is this many pixels (bilinear);
            None keeps the size.
        generator: the generator a "random" start is drawn from.
        autorotate: apply the stream's display rotation; False gives the frames as stored (FFmpeg's
            `-noautorotate`).

    Returns:
        The `Clip`: its frames (T, H, W, 3) uint8 RGB, their times and the instants asked for.

    Raises:
        VideoError: anything unreadable (missing, not a video, truncated, no decodable frame, no decoder);
            another video is never read instead.
        ValueError: `num_frames` or `sampling_rate` below 1, or `target_fps` not above 0.
    """
    return read_clips(path, [start], num_frames, sampling_rate, target_fps, short_side, generator, autorotate)[0]


def read_clips(
    path: str | os.PathLike,
    starts: Sequence[Start],
    num_frames: int = 16,
    sampling_rate: int = 4,
    target_fps: float = 30.0,
    short_side: int | None | Sequence[int | None] = None,
    generator: torch.Generator | None | Sequence[torch.Generator | None] = None,
    autorotate: bool = True,
) -> list[Clip]:
    """Read one clip per start of `starts` from the video at `path`, opening and probing the file once.

    Clip k is exactly `read_clip(path, num_frames, sampling_rate, target_fps, starts[k], short_side[k],
    generator[k], autorotate)`: `short_side` and `generator` are one value for every clip or one per clip (a "random"
    start draws from its clip's generator). What is shared is the container: opening it, finding the
    stream, its duration estimate and the decoder, which read_clip repeats per clip (pretraining's
    `repeat_aug` reads up to 16 clips of each video).

    Args:
        path: the video file.
        starts: one start per clip, as `read_clip` takes it.
        num_frames: frames in each clip.
        sampling_rate: each clip takes every `sampling_rate`-th frame at `target_fps`.
        target_fps: the frame rate the sampling rate counts in.
        short_side: one value for every clip, or one per clip (see `read_clip`).
        generator: one generator for every clip, or one per clip.
        autorotate: apply the stream's display rotation.

    Returns:
        One `Clip` per start, in the order of `starts`.

    Raises:
        VideoError: anything unreadable.
        ValueError: bad sizes or rates, or a per-clip list of another length than `starts`.
    """
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(f"num_frames and sampling_rate must be >= 1, got {num_frames} and {sampling_rate}")
    if not target_fps > 0:
        raise ValueError(f"target_fps must be > 0, got {target_fps}")
    short_sides = _per_clip(short_side, len(starts), "short_side")
    generators = _per_clip(generator, len(starts), "generator")
    for size in short_sides:
        if size is not None and size < 1:
            raise ValueError(f"short_side must be >= 1, got {size}")
    path = Path(path)
    with open_video(path) as (container, stream):
        return [
            _read_in(path, container, stream, start, num_frames, sampling_rate, target_fps, size, draws, autorotate)
            for start, size, draws in zip(starts, short_sides, generators)
        ]


def _per_clip(value, count: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name}: one value per clip expected ({count}), got {len(value)}")
        return list(value)
    return [value] * count


def _read_in(
    path: Path,
    container,
    stream,
    start: Start,
    num_frames: int,
    sampling_rate: int,
    target_fps: float,
    short_side: int | None,
    generator: torch.Generator | None,
    autorotate: bool,
) -> Clip:
    """One clip of an open container (see `read_clip`); times on the video's clock (0 is its first frame)."""
    span = (num_frames - 1) * sampling_rate / target_fps
    if isinstance(start, (str, tuple)):
        begin = _place(start, path, container, stream, span, generator)
        decoded, instants = _decode_at(path, container, stream, begin, num_frames, sampling_rate, target_fps)
        if decoded.reached_end and instants[-1] > decoded.last_time + TIME_TOLERANCE:
            # The container promised more than decodes (a lying header or a cut file): shift back.
            shifted = max(0.0, decoded.last_time - span)
            logger.info(
                "%s: frames end at %.3f s, before the clip placed at %.3f s; shifting it to %.3f s",
                path,
                decoded.last_time,
                begin,
                shifted,
            )
            decoded, instants = _decode_at(path, container, stream, shifted, num_frames, sampling_rate, target_fps)
    elif isinstance(start, (int, float)) and not isinstance(start, bool) and math.isfinite(start):
        decoded, instants = _decode_at(path, container, stream, float(start), num_frames, sampling_rate, target_fps)
        if decoded.reached_end and instants[0] > decoded.last_time + TIME_TOLERANCE:
            raise VideoError(
                path, f"start {start:.3f} s is after the last decodable frame at {decoded.last_time:.3f} s"
            )
    else:
        raise ValueError(f"start must be seconds, 'random', 'center' or (clip_index, num_clips), got {start!r}")
    display = frame_display(decoded.frames[0], stream, autorotate)
    frames = frames_to_rgb(decoded.frames, display, short_side)
    if decoded.count > 1 and decoded.last_time > decoded.first_time:
        fps = (decoded.count - 1) / (decoded.last_time - decoded.first_time)
    else:
        fps = float(stream.average_rate or 0.0)  # one frame measures no rate: the container's
    padded = sum(instant > decoded.last_time + TIME_TOLERANCE for instant in instants) if decoded.reached_end else 0
    return Clip(
        frames=frames,
        times=torch.tensor(decoded.times, dtype=torch.float64),
        instants=torch.tensor(instants, dtype=torch.float64),
        fps=fps,
        padded=padded,
        path=path,
        display=display,
        origin=video_origin(stream),
    )


def video_duration(path: str | os.PathLike) -> float | None:
    """The duration in seconds that a video's header (or its packet timestamps) claims, without decoding.

    Seconds from the video's first frame: an estimate for limits and placement, like the one `read_clip`
    places clips with (the frames that really decode may end earlier).

    Args:
        path: the video file.

    Returns:
        The seconds from the first frame to the end, or None when nothing tells.

    Raises:
        VideoError: a missing file, a file that is not a video, one without a video stream.
    """
    path = Path(path)
    _check_is_file(path, "a video")
    try:
        with _open(path) as container:
            return _duration_estimate(container, _video_stream(path, container))
    except av.FFmpegError as error:
        raise VideoError(path, f"cannot be read: {_describe(error)}") from error


def clip_instants(begin: float, num_frames: int, sampling_rate: int, target_fps: float) -> list[float]:
    """The times in seconds that a clip starting at `begin` asks for: `begin + k * sampling_rate / target_fps`.

    Computed as `(k * sampling_rate) / target_fps` so that an instant that is a whole number of frames away
    rounds the same way as the frame times it is compared with.

    Args:
        begin: the clip's start, in seconds from the first frame.
        num_frames: frames in the clip.
        sampling_rate: the clip takes every `sampling_rate`-th frame at `target_fps`.
        target_fps: the frame rate the sampling rate counts in.

    Returns:
        The instants, in seconds.
    """
    return [begin + (k * sampling_rate) / target_fps for k in range(num_frames)]


def _check_is_file(path: Path, kind: str) -> None:
    if not path.exists():
        raise VideoError(path, "no such file")
    if not path.is_file():
        raise VideoError(path, f"is a directory, not {kind} file" if path.is_dir() else "is not a regular file")


def _open(path: Path):
    try:
        # Titles, tags and stream names are no reason to refuse a video: undecodable bytes in them (common
        # in damaged headers) become U+FFFD instead of a UnicodeDecodeError from inside av.open.
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as error:
        raise VideoError(path, f"not a video file FFmpeg can read ({_describe(error)})") from error
    except OSError as error:
        raise VideoError(path, f"cannot be opened ({error})") from error
    return container


def _describe(error: av.FFmpegError) -> str:
    """FFmpeg's reason, without the errno and file name that PyAV's message adds."""
    return error.strerror or str(error)


def _video_stream(path: Path, container):
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams})
        found = f"only {', '.join(kinds)} streams" if kinds else "no streams"
        raise VideoError(path, f"has no video stream ({found})")
    # PyAV gives a stream whose codec FFmpeg cannot decode (an unknown or damaged codec id) no codec context.
    decodable = [stream for stream in container.streams.video if stream.codec_context is not None]
    if not decodable:
        raise VideoError(path, "has no video stream FFmpeg can decode (unknown or damaged codec)")
    stream = decodable[0]
    stream.thread_type = "AUTO"
    # torch's thread count is the cores this process should use: all of them in a main process, one in a
    # DataLoader worker (where more decoder threads would only oversubscribe the cores).
    stream.thread_count = torch.get_num_threads()
    return stream


def video_origin(stream) -> float:
    """Where the first frame of `stream` is on the stream's own clock, in seconds (`Clip.origin`)."""
    return float(_start_pts(stream) * stream.time_base)


@contextmanager
def open_video(path: str | os.PathLike) -> Iterator[tuple[Any, Any]]:
    """Open the video at `path` as `read_clip` does: `(container, stream)`, its first decodable video stream with
    the decoder's threads set, closed on exit.

    Raises:
        VideoError: a missing file, a file that is not a video or has no decodable video stream, and any FFmpeg
            failure inside the block (named as data that cannot be decoded).
    """
    path = Path(path)
    _check_is_file(path, "a video")
    try:
        with _open(path) as container:
            yield container, _video_stream(path, container)
    except av.FFmpegError as error:
        raise VideoError(path, f"cannot be decoded: {_describe(error)}") from error


def _start_pts(stream) -> int:
    """Where the video's first frame is on the stream's clock (its time base): the header's start time."""
    return stream.start_time if stream.start_time is not None else 0


def frame_time(stream, pts: int) -> float:
    """A timestamp (`pts`) of a packet or frame of `stream` as seconds on the video's clock (0 is its first
    frame), computed exactly: the times clip instants are compared with."""
    time_base = stream.time_base
    # An int over an int divides correctly rounded: the float of the exact rational, without Fraction arithmetic
    # (three times slower, and this runs for every packet and frame a clip reads).
    return (pts - _start_pts(stream)) * time_base.numerator / time_base.denominator


def _duration_estimate(container, stream) -> float | None:
    """Seconds from the first frame to the end, by the stream's header, else the container's, else packets."""
    if stream.duration is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0 and _start_pts(stream) == 0:
        return container.duration / av.time_base
    # The container's duration of a stream that starts later is the end on the file's clock for some formats
    # (Matroska) and the length for others: the last packets' timestamps say which, without decoding. Seek
    # near the end when there is a duration to seek to; read every packet's timestamp when there is none.
    hint = container.duration / av.time_base if container.duration is not None and container.duration > 0 else None
    ends: list[float] = []
    if hint is not None:
        container.seek(round(hint / stream.time_base) + _start_pts(stream), stream=stream, backward=True)
        ends = [frame_time(stream, packet.pts) for packet in container.demux(stream) if packet.pts is not None]
    if not ends:
        container.seek(0)
        ends = [frame_time(stream, packet.pts) for packet in container.demux(stream) if packet.pts is not None]
    container.seek(0)
    return max(ends) if ends else None


def _place(start, path: Path, container, stream, span: float, generator: torch.Generator | None) -> float:
    """Where a "random", "center" or (clip_index, num_clips) clip starts, by the container's estimate."""
    duration = _duration_estimate(container, stream)
    room = max((duration or 0.0) - span, 0.0)
    if start == "random":
        fraction = torch.rand((), generator=generator, dtype=torch.float64).item()
    elif start == "center":
        fraction = 0.5
    elif isinstance(start, tuple) and len(start) == 2 and 0 <= start[0] < start[1]:
        clip_index, num_clips = start
        fraction = clip_index / max(num_clips - 1, 1)
    else:
        raise ValueError(f"start must be seconds, 'random', 'center' or (clip_index, num_clips), got {start!r}")
    if duration is None:
        logger.info("%s: no duration estimate; placing the clip at the start", path)
    return fraction * room


def _decode_at(
    path: Path, container, stream, begin: float, num_frames: int, sampling_rate: int, target_fps: float
) -> tuple[_Decoded, list[float]]:
    """Decode the frames for a clip starting at `begin`, seeking earlier until the seek is good.

    Each position is decoded as planned from the packets' times first, and frame by frame when the
    decoded frames show that the plan does not hold for this stream.
    """
    instants = clip_instants(begin, num_frames, sampling_rate, target_fps)
    limits = [instant + TIME_TOLERANCE for instant in instants]
    backoff = 0.0
    while True:
        target = instants[0] - backoff
        from_start = target <= 0.0
        try:
            for decode in (_decode_planned, _decode_every_frame):
                if from_start:
                    container.seek(0)  # the start of the stream: also where a seek was never needed
                else:
                    position = round(target / stream.time_base) + _start_pts(stream)
                    container.seek(position, stream=stream, backward=True, any_frame=False)
                decoded = decode(path, container, stream, limits, from_start)
                if decoded is not None:
                    return decoded, instants
                logger.debug("%s: frame times are not packet times; decoding every frame", path)
        except _SeekLandedLate as landed:
            logger.debug("%s: seek to %.3f s landed at %s; seeking earlier", path, target, landed)
            backoff = _FIRST_SEEK_BACKOFF if backoff == 0.0 else backoff * _SEEK_BACKOFF_FACTOR


class _Picker:
    """Keeps per instant the latest frame at or before it, checking each decoded frame on the way.

    Instant k's candidates are the frames in (instant k-1, instant k]; the frame shown at instant k is the
    latest candidate of the nearest non-empty bucket at or before k, or the first frame before any. Times
    are on the video's clock (`frame_time`: the stream's time base, also for frames drained from the decoder,
    which carry no time base of their own).
    """

    def __init__(self, path: Path, stream, limits: list[float], from_start: bool) -> None:
        self.path, self.stream, self.limits, self.from_start = path, stream, limits, from_start
        self.best: list[tuple[float, Any] | None] = [None] * len(limits)  # (time, frame) per bucket
        self.earliest: tuple[float, Any] | None = None  # (time, frame)
        self.latest: tuple[float, Any] | None = None
        self.count = self.past_end = 0
        self.reordered = False

    def add(self, frame) -> float:
        if frame.pts is None:
            raise VideoError(self.path, "decoded frames carry no presentation time")
        time = frame_time(self.stream, frame.pts)
        if frame.is_corrupt:
            raise VideoError(self.path, f"damaged frame at {time:.3f} s")
        if self.count == 0 and not self.from_start and time > self.limits[0]:
            raise _SeekLandedLate(f"{time:.3f} s")
        self.count += 1
        self.reordered = self.reordered or (self.latest is not None and time < self.latest[0])
        if self.earliest is None or time < self.earliest[0]:
            self.earliest = (time, frame)
        if self.latest is None or time >= self.latest[0]:
            self.latest = (time, frame)
        bucket = bisect.bisect_left(self.limits, time)
        if bucket == len(self.limits):
            self.past_end += 1
        else:
            best = self.best[bucket]
            if best is None or time >= best[0]:
                self.best[bucket] = (time, frame)
        return time

    def chosen(self) -> list[tuple[float, Any]]:
        if self.earliest is None:
            return []  # nothing decoded
        chosen, current = [], self.earliest
        for candidate in self.best:
            current = candidate if candidate is not None else current
            chosen.append(current)
        return chosen

    def span(self) -> tuple[float, float] | None:
        """The times of the earliest and the latest frame decoded (None: none was)."""
        if self.earliest is None or self.latest is None:
            return None
        return self.earliest[0], self.latest[0]

    def decoded(self, reached_end: bool, count: int | None = None) -> _Decoded:
        span = self.span()
        if span is None:
            if self.from_start:
                raise VideoError(self.path, "has no decodable video frame")
            raise _SeekLandedLate("the end of the stream")
        chosen = self.chosen()
        return _Decoded(
            frames=[frame for _, frame in chosen],
            times=[time for time, _ in chosen],
            first_time=span[0],
            last_time=span[1],
            count=self.count if count is None else count,
            reached_end=reached_end,
        )


def _where(stream, packet) -> str:
    if packet is None or packet.pts is None:
        return "at its end"
    return f"near {frame_time(stream, packet.pts):.3f} s"


def _check_packet(path: Path, stream, packet) -> None:
    if packet.is_corrupt:  # FFmpeg marks a packet cut short by the end of the file, or damaged
        raise VideoError(path, f"truncated or damaged data {_where(stream, packet)}")


def decode_packet(path: Path, stream, packet) -> list:
    """The frames (`av.VideoFrame`) that `packet` of `stream` decodes to; None drains the decoder.

    Raises:
        VideoError: the packet is marked truncated or damaged, or the decoder refuses it (`path` names the file).
    """
    if packet is not None:
        _check_packet(path, stream, packet)
    try:
        return stream.codec_context.decode(packet)
    except av.FFmpegError as error:
        raise VideoError(path, f"broken video stream {_where(stream, packet)}: {_describe(error)}") from error


def _decode_planned(path: Path, container, stream, limits: list[float], from_start: bool) -> _Decoded | None:
    """Decode only the frames the clip shows and the reference frames they need, planned from packet times.

    Reads packets ahead to `REORDER_DEPTH` past the last instant (packets come in decoding order, at most
    that many out of presentation order), plans from their times which frame each instant shows, decodes up
    to the last planned packet with the decoder skipping the non-reference frames not planned, and drains
    it. Returns None (nothing decoded is trusted) when the frames' times turn out not to be their packets'.
    """
    packets, reached_end, past_end = [], True, 0
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None:
            break  # the demuxer's end-of-stream marker
        _check_packet(path, stream, packet)
        if packet.pts is None:
            return None
        packets.append(packet)
        past_end += frame_time(stream, packet.pts) > limits[-1]
        if past_end >= REORDER_DEPTH:
            reached_end = False
            break
    times = [frame_time(stream, packet.pts) for packet in packets]
    if not from_start and (not times or min(times) > limits[0]):
        raise _SeekLandedLate(f"{min(times):.3f} s" if times else "the end of the stream")
    if not times:
        return None  # decoding frame by frame says why there is nothing
    plan = _Picker(path, stream, limits, from_start=True)
    for index, packet in enumerate(packets):
        plan.add(_PlannedFrame(index, packet.pts))
    planned = {frame.index for _, frame in plan.chosen()}
    if reached_end and plan.latest is not None:
        planned.add(plan.latest[1].index)  # the last decodable frame: where the video ends
    known_times = set(times)
    picker = _Picker(path, stream, limits, from_start)
    context = stream.codec_context
    try:
        # A frame depends only on frames before it in decoding order: nothing after the last planned one.
        for index in range(max(planned) + 1):
            # Read per packet, also by frame threads (FFmpeg copies it into a thread with each packet).
            context.skip_frame = "DEFAULT" if index in planned else "NONREF"
            for frame in decode_packet(path, stream, packets[index]):
                if picker.add(frame) not in known_times:
                    return None
    finally:
        context.skip_frame = "DEFAULT"
    for frame in decode_packet(path, stream, None):
        if picker.add(frame) not in known_times:
            return None
    span = picker.span()
    if span is None or [time for time, _ in picker.chosen()] != [time for time, _ in plan.chosen()]:
        return None
    # Skipped frames were decodable too: the rate counts every packet between the first and last frame.
    count = sum(span[0] <= time <= span[1] for time in times)
    return picker.decoded(reached_end, count)


@dataclass
class _PlannedFrame:
    """A packet's place in decoding order and its timestamp, standing in for its frame while planning."""

    index: int
    pts: int
    is_corrupt: bool = False


def _decode_every_frame(path: Path, container, stream, limits: list[float], from_start: bool) -> _Decoded:
    """Decode forward from the container's position, every frame, until no earlier frame can still come.

    Stops once enough frames past the last instant came out that no earlier one can still be in the
    decoder's reorder buffer (one for a decoder that keeps presentation order).
    """
    picker = _Picker(path, stream, limits, from_start)
    for packet in container.demux(stream):
        for frame in decode_packet(path, stream, packet):
            picker.add(frame)
        margin = REORDER_DEPTH if picker.reordered or stream.codec_context.has_b_frames else 1
        if picker.past_end >= margin:
            return picker.decoded(reached_end=False)
    return picker.decoded(reached_end=True)


def frame_display(frame, stream, autorotate: bool = True) -> Display:
    """How a player shows the decoded `frame` of `stream`: its display matrix and the stream's pixel aspect.

    The display matrix is the frame's side data (FFmpeg puts the stream's matrix, or the one an H.264 or
    HEVC stream carries itself, on every frame); it is read as FFmpeg's `-autorotate` reads it: multiples
    of 90 degrees with or without a mirror. A rotation by another angle is left out (logged), as is every
    rotation when `autorotate` is False. The sample aspect ratio is the stream's (container, else codec);
    one beyond 1:8 or 8:1, which no camera or encoder writes (a damaged header), is left out (logged) rather
    than making frames thousands of pixels wide.

    Args:
        frame: a decoded `av.VideoFrame` of the stream (every frame of a stream carries the same matrix).
        stream: its `av.VideoStream`.
        autorotate: read the display matrix; False leaves the frames as stored (FFmpeg's `-noautorotate`).

    Returns:
        The `Display` to apply (`frames_to_rgb` applies it).
    """
    rotation, mirrored = _display_matrix(frame) if autorotate else (0, False)
    sample_aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if sample_aspect is None or not sample_aspect > 0:
        sample_aspect = Fraction(1)
    elif not Fraction(1, _MAX_SAMPLE_ASPECT) <= sample_aspect <= _MAX_SAMPLE_ASPECT:
        logger.warning("sample aspect ratio %s is out of range: the pixels are taken as square", sample_aspect)
        sample_aspect = Fraction(1)
    return Display(rotation, mirrored, Fraction(sample_aspect))


def _display_matrix(frame) -> tuple[int, bool]:
    """(clockwise degrees, mirrored first) of the frame's display matrix; (0, False) when it has none."""
    matrix = next((data for data in frame.side_data if data.type.name == "DISPLAYMATRIX"), None)
    if matrix is None or matrix.buffer_size < 36:
        return 0, False
    # The 3x3 matrix as FFmpeg stores it: 16.16 fixed point, row-major; only the 2x2 part rotates and flips.
    a, b, _, c, d, *_ = np.frombuffer(bytes(matrix), dtype=np.int32, count=9).tolist()
    # av_display_rotation_get: the counter-clockwise angle; FFmpeg's get_rotation turns it into clockwise
    # degrees in [0, 360) and its video filter picks the transpose or flips from the matrix's signs.
    scale_a, scale_b = math.hypot(a, c), math.hypot(b, d)
    if scale_a == 0 or scale_b == 0:
        return 0, False
    clockwise = -round(-math.degrees(math.atan2(b / scale_b, a / scale_a)))
    clockwise -= 360 * math.floor(clockwise / 360 + 0.9 / 360)
    if abs(clockwise - 90) < 1:
        return (270, True) if c > 0 else (90, False)  # transpose: cclock_flip, else clock
    if abs(clockwise - 270) < 1:
        return (90, True) if c < 0 else (270, False)  # clock_flip, else cclock
    if abs(clockwise - 180) < 1:
        return {(True, True): (180, False), (True, False): (0, True), (False, True): (180, True)}.get(
            (a < 0, d < 0), (0, False)
        )
    if abs(clockwise) < 1 or abs(clockwise - 360) < 1:
        return (180, True) if d < 0 else (0, False)  # a vertical flip: mirrored and turned upside down
    logger.warning("display rotation by %s degrees is not a multiple of 90: the frames are left as stored", clockwise)
    return 0, False


def frames_to_rgb(frames: Sequence, display: Display, short_side: int | None = None) -> torch.Tensor:
    """Decoded frames (PyAV `VideoFrame`s) as a player shows them: (T, H, W, 3) uint8 RGB.

    Each distinct frame is converted once (a frame repeated in `frames` is one conversion), stretched to
    square pixels and, when `short_side` is given, resized so that the shown picture's short side is
    `short_side` (bilinear, in the one conversion), then mirrored and rotated by `display`.

    Args:
        frames: decoded frames of one stream, all of one size; the same frame may come several times.
        display: what to apply (`frame_display`).
        short_side: the short side of the shown picture in pixels; None keeps the shown size.

    Returns:
        (T, H, W, 3) uint8 RGB, one per entry of `frames`, contiguous.
    """
    # One reformatter keeps one scaling context for the clip, and one thread per conversion: starting
    # swscale's threads costs more than converting a frame of these sizes.
    reformatter = VideoReformatter()
    converted: dict[int, np.ndarray] = {}
    for frame in frames:
        if id(frame) not in converted:
            height, width = display.shown_size(frame.height, frame.width)
            if short_side is not None:
                height, width = short_side_size(height, width, short_side)
            if display.turns_sideways:
                height, width = width, height  # the size to convert to is the stored orientation's
            converted[id(frame)] = reformatter.reformat(
                frame, width=width, height=height, format="rgb24", interpolation=_interpolation(frame), threads=1
            ).to_ndarray()
    stacked = torch.from_numpy(np.stack([converted[id(frame)] for frame in frames]))  # (T, H, W, 3) stored
    if display.rotation == 0 and not display.mirrored:
        return stacked
    return display.orient(stacked).contiguous()


def _interpolation(frame) -> Interpolation:
    """Bilinear; for YUV of more than 8 bits with full chroma interpolation, without which swscale's fast path
    scales them short of white (10-bit limited-range white 940 came out 253, not 255)."""
    pixel_format = frame.format
    if pixel_format.is_rgb or pixel_format.components[0].bits <= 8:
        return Interpolation.BILINEAR
    return Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) scaled so that the shorter side is `size`, keeping the aspect ratio."""
    if height <= width:
        return size, max(1, round(width * size / height))
    return max(1, round(height * size / width)), size


#: What transparent parts of an image are shown on (white, as a web page shows a transparent PNG): RGB 0-255.
IMAGE_BACKGROUND = (255, 255, 255)
_EXIF_ORIENTATION = 0x0112  # the EXIF tag: 1 is upright, 2-8 the other seven orientations


def read_image(
    path: str | os.PathLike, background: tuple[int, int, int] = IMAGE_BACKGROUND, autorotate: bool = True
) -> torch.Tensor:
    """Read an image file as a viewer shows it: (3, H, W) uint8 RGB.

    The EXIF orientation is applied (a phone photo turned upright) unless `autorotate` is False; every mode
    Pillow reads is scaled to 8 bits by its range: 16-bit integer by 65535 (a 16-bit PGM too), a 32-bit
    integer TIFF by its bit depth (negative values black), floating point from 0.0-1.0 (clipped); palette,
    greyscale, CMYK, YCbCr, HSV and LAB images are converted to RGB; transparency (an alpha channel, or a
    palette's or colour key's transparent colour) is composited over `background`. An animated image gives
    its first frame.

    Args:
        path: the image file.
        background: the RGB colour (0-255) transparent parts are shown on.
        autorotate: apply the EXIF orientation; False gives the pixels as stored.

    Returns:
        (3, H, W) uint8 RGB.

    Raises:
        VideoError: the file is missing, not an image Pillow reads, truncated or damaged (path and reason).
    """
    path = Path(path)
    _check_is_file(path, "an image")
    try:
        with Image.open(path) as opened:
            image: Image.Image = opened
            if autorotate and image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
            rgb = _image_rgb(image, background)
    except UnidentifiedImageError as error:
        raise VideoError(path, "not an image file Pillow can read") from error
    except Exception as error:  # only Pillow runs here: whatever a damaged file makes it raise
        # Pillow reports truncated and damaged data as OSError, some decoders as SyntaxError, ValueError,
        # struct.error, or DecompressionBombError for a header that claims an enormous size.
        raise VideoError(path, f"truncated or damaged image ({type(error).__name__}: {error})") from error
    return torch.from_numpy(rgb).permute(2, 0, 1)


def _image_rgb(image: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """A Pillow image of any mode as (H, W, 3) uint8 RGB, transparency composited over `background`."""
    if image.mode.startswith("I") or image.mode == "F":
        grey = np.asarray(image).astype(np.float64)  # (H, W)
        if image.mode == "F":
            scaled = grey.clip(0.0, 1.0) * 255.0
        else:
            bits = 16 if image.mode.startswith("I;16") else _integer_bits(image)
            scaled = grey.clip(0.0, None) * (255.0 / (2.0**bits - 1))
        grey8 = np.rint(scaled).clip(0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if image.mode in ("La", "RGBa"):  # premultiplied alpha: undo it first
        image = image.convert("LA" if image.mode == "La" else "RGBA")
    if not image.has_transparency_data:
        return np.array(image.convert("RGB"))
    rgba = np.asarray(image.convert("RGBA")).astype(np.float64)  # (H, W, 4)
    alpha = rgba[:, :, 3:] / 255.0
    shown = rgba[:, :, :3] * alpha + np.array(background, dtype=np.float64) * (1.0 - alpha)
    return np.rint(shown).clip(0, 255).astype(np.uint8)


def _integer_bits(image: Image.Image) -> int:
    """How many bits the samples of a 32-bit integer ("I") image use: a TIFF's BitsPerSample (32: signed, so 31);
    16 for the other formats Pillow reads into this mode (a 16-bit PGM, which Pillow scales to 0-65535)."""
    tags = getattr(image, "tag_v2", None)
    if tags is None:
        return 16
    bits = tags.get(258)
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    return 31 if not isinstance(bits, int) or not 1 <= bits < 32 else bits
