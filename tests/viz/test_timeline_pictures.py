"""Pictures of a classifier over a whole video: the probability plot and the video with its top classes on it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from hvm1.data import read_windows
from hvm1.eval import Timeline
from hvm1.eval.timelines import leading_classes
from hvm1.viz.timeline import plot_class_timeline, window_at, write_class_video, write_top_classes

NAMES = ["alpha", "beta", "gamma", "delta"]


def moving_video(path: Path, seconds: float = 4.0, fps: int = 30, size: tuple[int, int] = (72, 96)) -> Path:
    """A video of vertical stripes moving right by 3 px a frame (MPEG-4)."""
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        columns = np.arange(width)
        for index in range(round(seconds * fps)):
            stripes = (((columns + 3 * index) // 8) % 2 * 160 + 40).astype(np.uint8)
            pixels = np.broadcast_to(stripes[None, :, None], (height, width, 3)).copy()
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def a_timeline(path: Path) -> Timeline:
    """Windows of 1 s every 1 s; window 0 is mostly alpha, 1 beta, 2 gamma (delta never leads)."""
    probabilities = np.array([[0.7, 0.1, 0.15, 0.05], [0.2, 0.6, 0.1, 0.1], [0.1, 0.2, 0.65, 0.05]], np.float32)
    times = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    return Timeline(path, times, probabilities)


def test_leading_classes_are_those_with_the_highest_peaks():
    probabilities = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [0.6, 0.2, 0.2]])
    assert leading_classes(probabilities, 2) == [1, 0]
    assert leading_classes(probabilities, 5) == [1, 0, 2]  # all three, 0.2 in both windows for class 2
    assert leading_classes(np.array([[0.5, 0.5]]), 1) == [0]  # a tie goes to the lower index
    with pytest.raises(ValueError, match="count"):
        leading_classes(probabilities, 0)


def test_window_at_is_the_window_whose_middle_is_nearest(tmp_path):
    timeline = a_timeline(tmp_path / "v.mp4")
    assert [window_at(timeline, time) for time in (0.0, 0.99, 1.01, 2.6, 9.0)] == [0, 0, 1, 2, 2]


def test_plot_has_a_strip_of_frames_only_when_given_and_checks_names(tmp_path):
    timeline = a_timeline(tmp_path / "v.mp4")
    frames = [(float(time), np.full((36, 48, 3), 90 * index, np.uint8)) for index, time in enumerate(timeline.centers)]
    plain = plot_class_timeline(timeline, NAMES, tmp_path / "plain.png", count=3)
    strip = plot_class_timeline(timeline, NAMES, tmp_path / "strip.png", count=3, thumbnails=frames, title="v.mp4")
    with Image.open(plain) as first, Image.open(strip) as second:
        assert first.format == second.format == "PNG"
        assert second.height > first.height and first.width == second.width
    with pytest.raises(ValueError, match="3 class names for 4 classes"):
        plot_class_timeline(timeline, NAMES[:3], tmp_path / "bad.png")


def test_top_classes_are_written_in_a_box_in_the_corner():
    frame = np.full((120, 160, 3), 200, np.uint8)
    first = write_top_classes(frame, [("alpha", 0.7), ("gamma", 0.15), ("beta", 0.1)])
    other = write_top_classes(frame, [("beta", 0.6), ("alpha", 0.2), ("gamma", 0.1)])
    box = first[:40, :100].astype(int)
    assert (box < 120).mean() > 0.5 and (box > 230).any()  # a dark box with white letters
    np.testing.assert_array_equal(first[60:], frame[60:])  # the rest of the frame as it was
    assert not np.array_equal(first[:40], other[:40])  # other classes, other words
    long = write_top_classes(frame, [("a very long class name " * 4, 1.0)])
    np.testing.assert_array_equal(long[:, -2:], frame[:, -2:])  # cut to fit: nothing drawn at the right edge


def test_the_video_shows_the_top_classes_of_the_window_on_screen(tmp_path):
    video = moving_video(tmp_path / "stripes.mp4")
    timeline = a_timeline(video)
    out = write_class_video(video, timeline, NAMES, tmp_path / "out" / "classes.mp4", fps=10.0, short_side=None)
    with av.open(str(out)) as container:
        written = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    plain = [window.clip.frames[0].numpy() for window in read_windows(video, 0.1, 1, 1, 10.0)]
    assert len(written) == len(plain) == 40 and written[0].shape == plain[0].shape  # 4 s at 10 frames a second
    rankings = [[(NAMES[index], float(row[index])) for index in np.argsort(-row)[:3]] for row in timeline.values]
    for index in (2, 15, 25, 38):  # 0.2 s: window 0; 1.5 s: window 1; 2.5 s and 3.8 s: window 2
        errors = [
            np.abs(written[index][:30].astype(int) - write_top_classes(plain[index], ranked)[:30]).mean()
            for ranked in rankings
        ]
        assert int(np.argmin(errors)) == window_at(timeline, index / 10.0), (index, errors)
