"""Windows over a whole video: a clip of the model's frames every `stride` seconds, decoded in one streaming pass.

Window k starts at `k * stride` seconds on the video's clock (0 is its first frame, as for `read_clip`) and is
exactly `read_clip(path, start=k * stride)`: the same instants, each showing the last frame at or before it, as a
player shows it (`hvm1.data.video.Display`; each frame by its own display matrix, where `read_clip` turns a
clip's frames by its first frame's: the two differ only for a stream whose matrix changes within a window). Windows run
while their last instant is on a decoded
frame; a video shorter than one window gives one window, padded as `read_clip` pads (`Window.padded`).

One pass decodes the video for all its windows. Packets are read ahead (the window's span plus the decoder's
reorder depth) to plan, from their times, which frames some window shows: those are decoded and kept as RGB,
every other frame is skipped by the decoder where no frame depends on it (non-reference frames), and packets
before a keyframe that no planned frame needs are not decoded at all (the gaps between windows when `stride`
is longer than a window). A stream whose frame times turn out not to be its packets' times is decoded again
frame by frame, resuming at the first window not yet given. Only the frames that a pending window may still
show are held, so memory stays flat however long the video is.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hvm1.data.transforms import VideoPreset
from hvm1.data.video import (
    REORDER_DEPTH,
    TIME_TOLERANCE,
    Clip,
    Display,
    VideoError,
    clip_instants,
    decode_packet,
    frame_display,
    frame_time,
    frames_to_rgb,
    open_video,
    video_origin,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """One window of a video: its index, `start` (its first instant, seconds on the stream's clock), `end` (its
    last instant) and its `clip` (what `read_clip` at `start` gives; `clip.fps` is measured over the frames read
    so far)."""

    index: int
    start: float
    end: float
    clip: Clip

    @property
    def padded(self) -> int:
        """How many of the window's instants fell after the video's last frame (only a video shorter than one
        window has any: its one window)."""
        return self.clip.padded


def check_stride(stride: float) -> float:
    """`stride` as float seconds.

    Raises:
        ValueError: a stride of 0 or below, or one that is not a finite number.

    Args:
        stride: the stride, in seconds.

    Returns:
        The stride as a float.
    """
    if isinstance(stride, bool) or not isinstance(stride, (int, float)) or not math.isfinite(stride) or stride <= 0:
        raise ValueError(f"stride must be a number of seconds above 0, got {stride!r}")
    return float(stride)


def read_windows(
    path: str | os.PathLike,
    stride: float,
    num_frames: int = 16,
    sampling_rate: int = 4,
    target_fps: float = 30.0,
    short_side: int | None = None,
    autorotate: bool = True,
) -> Iterator[Window]:
    """Windows of `num_frames` frames (`sampling_rate / target_fps` seconds apart) every `stride` seconds over
    the whole video at `path`, each given as soon as its frames are decoded.

    Window k is `read_clip(path, num_frames, sampling_rate, target_fps, start, short_side, autorotate=autorotate)`
    at its start `k * stride` (see the module's description); the video is decoded once for all the windows.

    Args:
        path: the video file.
        stride: seconds between window starts, above 0.
        num_frames: frames per window.
        sampling_rate: a window's frames are `sampling_rate` frames of `target_fps` apart.
        target_fps: the frame rate `sampling_rate` counts in.
        short_side: frames are resized (bilinear) so that their short side is this, as `read_clip` does.
        autorotate: apply the stream's display rotation (False: the frames as stored), as `read_clip` does.

    Returns:
        An iterator of `Window`, in time order; checks its arguments at once, opens the file when first
        advanced.

    Raises:
        ValueError: a stride of 0 or below, or other arguments `read_clip` refuses (at the call).
        VideoError: while iterating, for a file that cannot be read (missing, not a video, damaged).
    """
    stride = check_stride(stride)
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(f"num_frames and sampling_rate must be >= 1, got {num_frames} and {sampling_rate}")
    if not target_fps > 0:
        raise ValueError(f"target_fps must be > 0, got {target_fps}")
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    return _windows(Path(path), stride, num_frames, sampling_rate, target_fps, short_side, autorotate)


def load_windows(preset: VideoPreset, path: str | os.PathLike, stride: float) -> Iterator[tuple[Window, torch.Tensor]]:
    """`read_windows` with `preset`'s frames, rate and short side, each window's frames preprocessed by `preset`:
    the model input equals `preset.load(path, start=window.start)[0]`.

    Raises:
        ValueError: a stride of 0 or below, or a preset whose short side is a range (drawn per clip).
        VideoError: while iterating, for a file that cannot be read.

    Args:
        preset: the preset (a fixed short side).
        path: the video file.
        stride: seconds between window starts.

    Yields:
        Each `Window` and its model input.
    """
    if not isinstance(preset.short_side, int):
        raise ValueError(f"windows need one short side, not the range {list(preset.short_side)} drawn per clip")
    windows = read_windows(
        path, stride, preset.num_frames, preset.sampling_rate, preset.target_fps, preset.short_side, preset.autorotate
    )
    return ((window, preset(window.clip.frames)) for window in windows)


class _PlanFailed(Exception):
    """The frames decoded are not at their packets' times: decode again, every frame."""


def _windows(
    path: Path,
    stride: float,
    num_frames: int,
    sampling_rate: int,
    target_fps: float,
    short_side: int | None,
    autorotate: bool,
) -> Iterator[Window]:
    given = 0
    for planned in (True, False):
        with open_video(path) as (container, stream):
            timeline = _Timeline(
                path, stream, stride, num_frames, sampling_rate, target_fps, short_side, autorotate, given
            )
            try:
                items = _packets(path, container, stream) if planned else _frames(path, container, stream)
                for window in timeline.run(items, stream.codec_context if planned else None):
                    given += 1
                    yield window
                return
            except _PlanFailed as failed:
                logger.debug("%s: %s; decoding every frame from window %d on", path, failed, given)
            finally:
                stream.codec_context.skip_frame = "DEFAULT"


@dataclass
class _Item:
    """A packet (planned decoding) or a decoded frame (decoding every frame), at its presentation time."""

    time: float
    payload: Any
    keyframe: bool


def _packets(path: Path, container, stream) -> Iterator[_Item]:
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None:
            return  # the demuxer's end-of-stream marker
        if packet.pts is None:
            raise _PlanFailed("a packet carries no presentation time")
        yield _Item(frame_time(stream, packet.pts), packet, packet.is_keyframe)


def _frames(path: Path, container, stream) -> Iterator[_Item]:
    for packet in container.demux(stream):  # the last, empty packet drains the decoder
        for frame in decode_packet(path, stream, packet):
            yield _Item(_checked_time(path, stream, frame), frame, False)


def _checked_time(path: Path, stream, frame) -> float:
    if frame.pts is None:
        raise VideoError(path, "decoded frames carry no presentation time")
    time = frame_time(stream, frame.pts)
    if frame.is_corrupt:
        raise VideoError(path, f"damaged frame at {time:.3f} s")
    return time


class _Timeline:
    """The windows of one video and the frames they show, planned from the times read so far.

    `times` holds the sorted times of the items read, from the frame the first pending window may show on;
    an instant shows the item with the latest time at or before it (the earliest item before any), final once
    `REORDER_DEPTH` later items were read (items come at most that far out of time order) or the stream ended.
    """

    def __init__(
        self,
        path: Path,
        stream,
        stride: float,
        num_frames: int,
        sampling_rate: int,
        target_fps: float,
        short_side: int | None,
        autorotate: bool,
        first_window: int,
    ) -> None:
        self.path, self.stream, self.stride, self.short_side = path, stream, stride, short_side
        self.autorotate = autorotate
        self.num_frames, self.sampling_rate, self.target_fps = num_frames, sampling_rate, target_fps
        self.span = (num_frames - 1) * sampling_rate / target_fps
        self.next_window = first_window
        self.times: list[float] = []
        self.read = 0
        self.first_time = math.inf
        self.last_time = -math.inf
        self.ended = False
        # time -> (display, the (H, W, 3) uint8 frame as it shows it), for the frames a pending window may show
        self.store: dict[float, tuple[Display, torch.Tensor]] = {}
        self.ahead: deque[_Item] = deque()
        self.unshown: set[float] = set()  # times no pending window can show (final: reading more keeps them so)
        self.cached: dict[int, tuple[list[float], list[float]]] = {}  # window -> (instants, limits)

    def start(self, index: int) -> float:
        return index * self.stride

    def instants(self, index: int) -> list[float]:
        if index not in self.cached:
            instants = clip_instants(self.start(index), self.num_frames, self.sampling_rate, self.target_fps)
            self.cached[index] = (instants, [instant + TIME_TOLERANCE for instant in instants])
        return self.cached[index][0]

    def window_limits(self, index: int) -> list[float]:
        """The instants of window `index` with the tolerance added: a frame at or before one shows there."""
        self.instants(index)
        return self.cached[index][1]

    def fits(self, index: int) -> bool | None:
        """Whether window `index` ends on a decoded frame (window 0 always counts: padded); None: not known yet."""
        if index == 0 or self.instants(index)[-1] <= self.last_time + TIME_TOLERANCE:
            return True
        return False if self.ended else None

    def chosen(self, instant: float) -> float:
        """The time of the frame shown at `instant`, by the times read so far."""
        position = bisect.bisect_right(self.times, instant + TIME_TOLERANCE)
        return self.times[position - 1] if position else self.first_time

    def after(self, time: float) -> int:
        """How many items read have a time after `time`."""
        return len(self.times) - bisect.bisect_right(self.times, time)

    def next_time(self, time: float) -> float:
        position = bisect.bisect_right(self.times, time)
        return self.times[position] if position < len(self.times) else math.inf

    def may_show(self, time: float) -> bool:
        """Whether a pending window may show the frame at `time`, by what was read so far (reading more only
        turns a True into False)."""
        if time in self.unshown:
            return False
        later = self.next_time(time)
        if later == math.inf and not self.ended:
            return True  # the latest frame read: any later instant may still show it
        if time <= self.first_time and self.start(self.next_window) + TIME_TOLERANCE < time:
            return True  # the next window has an instant before the first frame, which shows the first frame
        low = math.floor((time - TIME_TOLERANCE - self.span) / self.stride)
        high = math.floor((later if later < math.inf else time) / self.stride) + 1
        candidates = range(max(self.next_window, low), max(self.next_window, high) + 1)
        for index in [0, *candidates] if self.next_window == 0 else candidates:
            if self.fits(index) is False:
                continue
            limits = self.window_limits(index)
            position = bisect.bisect_left(limits, time)  # the first instant the frame at `time` can be shown at
            if position < len(limits) and limits[position] < later:
                return True
        if self.ended or self.after(time) >= REORDER_DEPTH:
            self.unshown.add(time)
        return False

    def take(self, item: _Item) -> None:
        bisect.insort(self.times, item.time)
        self.read += 1
        self.first_time = min(self.first_time, item.time)
        self.last_time = max(self.last_time, item.time)
        self.ahead.append(item)

    def settled(self, time: float) -> bool:
        """Whether every window that may show the frame at `time` is known: its frames' times and its fit."""
        if self.ended:
            return True
        later = self.next_time(time)
        return (
            later < math.inf
            and self.last_time > later + self.span + TIME_TOLERANCE
            and self.after(time + self.span + TIME_TOLERANCE) >= REORDER_DEPTH
        )

    def gap(self, first: int) -> bool | None:
        """Whether the items before `self.ahead[first]` can go undecoded: True when no pending window may show
        the items from there to the next keyframe and no item after that keyframe shows an earlier time (frames
        that refer to the keyframe's predecessors); False when one of them may be shown; None: read more."""
        for position in range(first, len(self.ahead)):
            item = self.ahead[position]
            if item.keyframe:
                later = [self.ahead[index].time for index in range(position + 1, len(self.ahead))]
                if len(later) < REORDER_DEPTH and not self.ended:
                    return None
                return all(time >= item.time for time in later)
            if self.may_show(item.time):
                return False
        return None if not self.ended else False

    def keep(self, frame, planned: bool) -> None:
        """Keep a decoded frame as RGB if a pending window may show it."""
        time = _checked_time(self.path, self.stream, frame)
        if planned and self.times and time >= self.times[0]:
            position = bisect.bisect_left(self.times, time)
            if position == len(self.times) or self.times[position] != time:
                raise _PlanFailed(f"a frame decoded at {time:.3f} s, where no packet is")
        if time not in self.store and self.may_show(time):
            display = frame_display(frame, self.stream, self.autorotate)
            self.store[time] = display, frames_to_rgb([frame], display, self.short_side)[0]

    def run(self, items: Iterator[_Item], context) -> Iterator[Window]:
        """Windows from `items`: packets fed to `context` (the decoder), or decoded frames when it is None."""
        planned = context is not None
        items = iter(items)
        while True:
            while not self.ended and (
                not self.ahead
                or not self.settled(self.ahead[0].time)
                or (planned and not self.may_show(self.ahead[0].time) and self.gap(1) is None)
            ):
                item = next(items, None)
                if item is None:
                    self.ended = True
                else:
                    self.take(item)
            if not self.ahead:
                break
            head = self.ahead.popleft()
            if not planned:
                self.keep(head.payload, planned)
            else:
                shown = self.may_show(head.time)
                if not shown and self.gap(0):
                    continue
                context.skip_frame = "DEFAULT" if shown else "NONREF"
                for frame in decode_packet(self.path, self.stream, head.payload):
                    self.keep(frame, planned)
            yield from self.complete()
            if self.fits(self.next_window) is False:
                return
        if planned:
            context.skip_frame = "DEFAULT"
            for frame in decode_packet(self.path, self.stream, None):
                self.keep(frame, planned)
        yield from self.complete()
        if self.read == 0:
            if planned:
                raise _PlanFailed("no packet")
            raise VideoError(self.path, "has no decodable video frame")
        if self.fits(self.next_window):
            if planned:
                raise _PlanFailed(f"the frames of window {self.next_window} did not all decode")
            raise VideoError(self.path, f"frames of window {self.next_window} are missing after decoding every frame")

    def complete(self) -> Iterator[Window]:
        """The pending windows whose frames are all decoded, in order."""
        while True:
            index = self.next_window
            instants = self.instants(index)
            if not (self.ended or self.after(instants[-1] + TIME_TOLERANCE) >= REORDER_DEPTH) or not self.fits(index):
                return
            chosen = [self.chosen(instant) for instant in instants]
            if any(time not in self.store for time in chosen):
                return
            padded = sum(instant > self.last_time + TIME_TOLERANCE for instant in instants) if self.ended else 0
            if self.read > 1 and self.last_time > self.first_time:
                fps = (self.read - 1) / (self.last_time - self.first_time)
            else:
                fps = float(self.stream.average_rate or 0.0)
            clip = Clip(
                frames=torch.stack([self.store[time][1] for time in chosen]),
                times=torch.tensor(chosen, dtype=torch.float64),
                instants=torch.tensor(instants, dtype=torch.float64),
                fps=fps,
                padded=padded,
                path=self.path,
                display=self.store[chosen[0]][0],
                origin=video_origin(self.stream),
            )
            if padded:
                logger.info(
                    "%s: the video ends at %.3f s, before its one window does at %.3f s: %d frames padded",
                    self.path,
                    self.last_time,
                    instants[-1],
                    padded,
                )
            self.next_window += 1
            self.forget()
            yield Window(index, instants[0], instants[-1], clip)

    def forget(self) -> None:
        """Drop the frames and times that no pending window can show any more."""
        position = bisect.bisect_right(self.times, self.start(self.next_window) + TIME_TOLERANCE)
        if position == 0:
            return  # the next window starts before the first frame, which it shows
        shown = self.times[position - 1]
        for time in [time for time in self.store if time < shown]:
            del self.store[time]
        del self.times[: position - 1]
        self.unshown = {time for time in self.unshown if time >= shown}
        self.cached = {index: pair for index, pair in self.cached.items() if index >= self.next_window}
