"""read_windows: each window is read_clip at its start, one decode per video, flat memory on a long video."""

from __future__ import annotations

import math
import re
import tracemalloc
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import hvm1.data.video
import hvm1.data.windows
from data_files import encode_frames, encode_video, frame_off_its_packet
from hvm1.data import VideoError, read_clip, video_eval_preset
from hvm1.data.windows import load_windows, read_windows
from test_as_players_show import encode

NUM_FRAMES = 8


def last_frame_time(path: Path) -> float:
    """The last decodable frame's time on the video's clock (from the stream's start time), decoding every frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = stream.start_time or 0
        return max(float((frame.pts - origin) * stream.time_base) for frame in container.decode(stream))


def expected_starts(path: Path, stride: float, span: float) -> list[float]:
    """Window starts every `stride` from the first frame while a window ends on a frame (at least one)."""
    count = max(1, math.floor((last_frame_time(path) + 1e-6 - span) / stride) + 1)
    return [index * stride for index in range(count)]


def assert_same_clip(window, clip) -> None:
    assert (window.clip.display, window.clip.origin) == (clip.display, clip.origin)
    assert window.clip.instants.tolist() == clip.instants.tolist()
    assert window.clip.times.tolist() == clip.times.tolist()
    assert window.clip.padded == clip.padded
    assert torch.equal(window.clip.frames, clip.frames)


def encode_moving(
    path: Path, seconds: float, fps: int = 30, size: tuple[int, int] = (32, 48), keyint: int | None = None
) -> Path:
    """A video whose frame i shows stripes moved by 5 i (frames differ and predict from each other): H.264 with
    B-frames (x264's default) and a keyframe every `keyint` frames when `keyint` is given, else MPEG-4 part 2."""
    height, width = size
    rows = np.arange(height)[:, None, None]
    frames = (
        ((rows * 8 + index * 5) % 256).astype(np.uint8) * np.ones((1, width, 3), np.uint8)
        for index in range(round(seconds * fps))
    )
    if keyint is None:
        return encode_frames(path, fps, frames, "mpeg4")
    return encode_frames(
        path, fps, frames, "libx264", {"x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3"}
    )


@pytest.mark.slow
@pytest.mark.parametrize("stride", [1.3, 3.1])  # overlapping windows of 0.93 s, and gaps between them
def test_each_window_is_read_clip_at_its_start(video, stride):
    rate = 4
    span = (NUM_FRAMES - 1) * rate / 30.0
    windows = list(read_windows(video, stride, NUM_FRAMES, rate, short_side=64))
    starts = expected_starts(video, stride, span)
    assert [window.start for window in windows] == pytest.approx(starts, abs=1e-9)
    assert [window.index for window in windows] == list(range(len(starts)))
    for window in windows:
        assert window.end == pytest.approx(window.start + span)
        assert_same_clip(window, read_clip(video, NUM_FRAMES, rate, 30.0, start=window.start, short_side=64))


@pytest.mark.parametrize("container", ["mp4", "mov"])
def test_windows_are_upright_and_count_from_the_first_frame(tmp_path, container):
    # A phone video (turned 90 degrees by its display matrix, pixels twice as wide as tall) whose clock starts at
    # 5 s: windows start at the first frame and show what read_clip shows, upright and stretched.
    path = encode(
        tmp_path / f"phone.{container}",
        [50 + index for index in range(40)],
        rotation=(-90, False, False),
        sample_aspect=Fraction(2),
    )
    windows = list(read_windows(path, 1.0, 4, 3, 30.0))
    assert [window.start for window in windows] == [0.0, 1.0, 2.0, 3.0]  # frames at 0.0 .. 3.9 s
    for window in windows:
        assert window.clip.origin == pytest.approx(5.0) and window.clip.display.rotation == 90
        assert window.clip.frames.shape[1:] == (128, 48, 3)  # 48 x 64 stored, 128 wide shown, turned upright
        assert_same_clip(window, read_clip(path, 4, 3, 30.0, start=window.start))
    stored = next(read_windows(path, 1.0, 4, 3, 30.0, autorotate=False))
    assert_same_clip(stored, read_clip(path, 4, 3, 30.0, start=0.0, autorotate=False))
    assert stored.clip.frames.shape[1:] == (48, 128, 3)


def test_a_window_longer_than_the_video_is_one_padded_window(tmp_path):
    path = encode_video(tmp_path / "short.avi", fps=10, num_frames=10)  # frames at 0.0 .. 0.9 s
    windows = list(read_windows(path, 0.25, num_frames=8, sampling_rate=6))  # a window spans 1.4 s
    assert len(windows) == 1
    assert windows[0].padded == 3
    assert_same_clip(windows[0], read_clip(path, 8, 6, start=0.0))


@pytest.mark.parametrize("stride", [0, -1.0, float("nan"), float("inf")])
def test_a_stride_of_zero_or_below_is_refused_at_the_call(tmp_path, stride):
    with pytest.raises(ValueError, match="stride"):
        read_windows(tmp_path / "not-read.mp4", stride)


def test_an_unreadable_video_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        list(read_windows(tmp_path / "missing.mp4", 1.0))
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="text.mp4"):
        list(read_windows(tmp_path / "text.mp4", 1.0))


def counting_decoder(monkeypatch, module, times: list[float]) -> None:
    """Record the time of every frame `module`'s decode_packet hands out (what the decoder really decoded)."""
    decode = hvm1.data.video.decode_packet

    def counted(path, stream, packet):
        frames = decode(path, stream, packet)
        times.extend(float(frame.pts * stream.time_base) for frame in frames)
        return frames

    monkeypatch.setattr(module, "decode_packet", counted)


@pytest.mark.parametrize(("stride", "rate"), [(0.5, 4), (1.0, 8), (2.5, 4)])
def test_the_video_is_decoded_once_for_all_its_windows(tmp_path, monkeypatch, stride, rate):
    # Windows overlapping (0.5 s and 1 s strides against windows of 0.93 s and 1.87 s) and with gaps between them
    # (2.5 s): the single pass decodes at most 1.1x the distinct frames that reading each window alone decodes.
    path = encode_moving(tmp_path / "h264.mp4", seconds=12.0, keyint=20)
    streamed: list[float] = []
    counting_decoder(monkeypatch, hvm1.data.windows, streamed)
    windows = list(read_windows(path, stride, NUM_FRAMES, rate))
    assert len(windows) == len(expected_starts(path, stride, (NUM_FRAMES - 1) * rate / 30.0))
    alone: list[float] = []
    counting_decoder(monkeypatch, hvm1.data.video, alone)
    for window in windows:
        assert_same_clip(window, read_clip(path, NUM_FRAMES, rate, start=window.start))
    distinct = len(set(alone))
    assert len(streamed) == len(set(streamed))  # no frame decoded twice
    assert len(streamed) <= 1.1 * distinct, (len(streamed), distinct, len(alone))


def traced_peak(path: Path, stride: float) -> tuple[int, int]:
    """(peak bytes Python allocated while reading the windows, windows read); each window is dropped at once."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        count = sum(1 for _ in read_windows(path, stride, NUM_FRAMES, 4))
        return tracemalloc.get_traced_memory()[1] - base, count
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_stays_flat_on_a_long_video(tmp_path):
    # Frames of 96 x 128 RGB are 36 KB: a reader that held every frame of the 60 s video would hold 66 MB.
    size = (96, 128)
    frame_bytes = size[0] * size[1] * 3
    short = encode_moving(tmp_path / "short.avi", seconds=10.0, size=size)
    long = encode_moving(tmp_path / "long.avi", seconds=60.0, size=size)
    short_peak, short_windows = traced_peak(short, 0.5)
    long_peak, long_windows = traced_peak(long, 0.5)
    assert long_windows > 5 * short_windows
    window_frames = (NUM_FRAMES - 1) * 4 + 1  # every frame a window's span covers (a window shows 8 of them)
    held = window_frames + hvm1.data.video.REORDER_DEPTH
    assert long_peak < held * frame_bytes, (long_peak / frame_bytes, held)
    assert long_peak < 1.25 * short_peak + 20 * frame_bytes, (long_peak, short_peak)


def test_load_windows_gives_the_presets_clip_at_each_start(tmp_path):
    video = encode_moving(tmp_path / "h264.mp4", seconds=4.0, size=(48, 64), keyint=20)
    preset = video_eval_preset(32, NUM_FRAMES, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225), sampling_rate=4)
    windows = list(load_windows(preset, video, 0.9))
    assert len(windows) == 4  # starts 0, 0.9, 1.8, 2.7 s; one at 3.6 s would end after the last frame (3.97 s)
    for window, clip in windows:
        expected, padded = preset.load(video, start=window.start)
        assert torch.equal(clip, expected) and padded == window.padded == 0
    with pytest.raises(ValueError, match="short side"):
        load_windows(replace(preset, short_side=(32, 40)), video, 1.0)


def test_a_plan_that_fails_midway_goes_on_frame_by_frame(tmp_path, monkeypatch, caplog):
    # Where decoded frames turn out not to be at their packets' times, the windows already given stay given and
    # the rest come from decoding every frame: the same windows as the planned pass.
    path = encode_moving(tmp_path / "h264.mp4", seconds=6.0, keyint=20)
    planned = list(read_windows(path, 0.7, NUM_FRAMES, 4))
    moved = frame_off_its_packet(monkeypatch, hvm1.data.windows, after=90)
    caplog.set_level("DEBUG", logger="hvm1.data.windows")
    windows = list(read_windows(path, 0.7, NUM_FRAMES, 4))
    assert moved and re.search(r"where no packet is; decoding every frame from window [1-9]", caplog.text)
    assert [window.index for window in windows] == [window.index for window in planned]
    for window, expected in zip(windows, planned):
        assert_same_clip(window, expected.clip)
