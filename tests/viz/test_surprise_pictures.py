"""The pictures of `hvm1 surprise`: peaks, the bounded thumbnail strip, the plot, error maps, the streaming MP4."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from hvm1.viz.attention import HEAT_ALPHA, heat_colours
from hvm1.viz.grid import Mp4Writer, write_mp4
from hvm1.viz.surprise import Thumbnails, error_map_frames, plot_surprise, surprise_peaks


def test_peaks_are_the_highest_local_maxima_apart():
    values = [0, 3, 1, 5, 5, 2, 4]  # local maxima at 1 (3), 3 and 4 (5, a plateau), 6 (4, an end)
    assert surprise_peaks(values, 3) == [3, 4, 6]
    assert surprise_peaks(values, 3, distance=2) == [3, 6, 1]  # 4 is next to 3
    assert surprise_peaks(values, 1) == [3]
    assert surprise_peaks([1.0, 1.0, 1.0]) == []  # flat: no peak
    assert surprise_peaks([2.0]) == [0]
    assert surprise_peaks([]) == []


def test_thumbnails_stay_bounded_and_evenly_spread():
    strip = Thumbnails(limit=5)
    for index in range(1000):
        strip.add(float(index), np.full((2, 2, 3), index % 256, dtype=np.uint8))
        assert len(strip._kept) < 10
    chosen = strip.chosen()
    times = [time for time, _ in chosen]
    assert len(chosen) == 5 and times[0] == 0.0
    gaps = np.diff(times)
    assert gaps.min() > 0 and gaps.max() <= 2 * gaps.min()  # evenly spread over the video
    assert times[-1] > 800


def test_plot_marks_peaks_and_checks_lengths(tmp_path: Path):
    times = [0.5 * k for k in range(12)]
    model = [0.1, 0.2, 0.9, 0.3, 0.2, 0.2, 0.4, 1.2, 0.5, 0.3, 0.2, 0.1]
    losses = {"tiny": model, "mean": [1.0] * 12, "nearest_frame": [0.3] * 12}
    frames = [(t, np.full((24, 32, 3), 40 * k, dtype=np.uint8)) for k, t in enumerate(times[::3])]
    path = plot_surprise(
        times,
        losses,
        tmp_path / "sub" / "plot.png",
        model="tiny",
        thumbnails=frames,
        peaks=surprise_peaks(model, 2),
        title="a video",
    )
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (800, 460)
    without = plot_surprise(times, losses, tmp_path / "plain.png", model="tiny")
    with Image.open(without) as image:
        assert image.size == (800, 340)
    with pytest.raises(ValueError, match="mean: 11 losses for 12 windows"):
        plot_surprise(times, {**losses, "mean": [1.0] * 11}, tmp_path / "bad.png", model="tiny")
    with pytest.raises(ValueError, match="not among"):
        plot_surprise(times, losses, tmp_path / "bad.png", model="other")


def test_error_maps_colour_each_patch_on_one_scale():
    frames = np.full((2, 40, 60, 3), 100, dtype=np.uint8)  # 2 frames of 40 x 60 px, patches of 20 px: 2 x 3
    errors = torch.zeros(2, 2, 3)
    errors[0, 0, 0] = 5.0  # above the scale: the top colour
    errors[1, 1, 2] = 1.0  # half the scale
    maps = error_map_frames(frames, errors, scale=2.0)
    assert maps.shape[:2] == (2, 40) and maps.shape[2] > 60  # the colour bar on the right
    expected = np.round((1 - HEAT_ALPHA) * 100 + HEAT_ALPHA * heat_colours(np.array([0.0, 1.0, 0.5])))
    assert (maps[0, :20, :20] == expected[1]).all()  # the top-left patch of frame 0, all of its pixels
    assert (maps[0, 20:, :20] == expected[0]).all()
    assert (maps[1, 20:, 40:60] == expected[2]).all()
    with pytest.raises(ValueError, match="do not fit"):
        error_map_frames(frames, torch.zeros(2, 3, 3), scale=2.0)
    with pytest.raises(ValueError, match="scale"):
        error_map_frames(frames, errors, scale=0.0)


def test_streamed_mp4_has_every_frame_and_removes_an_unfinished_file(tmp_path: Path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 15, 21, 3), dtype=np.uint8)  # odd sizes gain a row and a column
    with Mp4Writer(tmp_path / "a.mp4", 7.5) as writer:
        for frame in frames:
            writer.write(frame)
    with av.open(str(tmp_path / "a.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 5 and decoded[0].shape == (16, 22, 3)
    write_mp4(frames, tmp_path / "b.mp4", 7.5)
    # The same stream as Mp4Writer's (the container's header records when each file was written, so compare
    # what a player decodes).
    with av.open(str(tmp_path / "b.mp4")) as container:
        again = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert all(np.array_equal(x, y) for x, y in zip(again, decoded, strict=True))
    with pytest.raises(ValueError, match="a 8x8 frame in a 16x22 video"):
        with Mp4Writer(tmp_path / "c.mp4", 7.5) as writer:
            writer.write(frames[0])
            writer.write(frames[0, :8, :8])
    assert not (tmp_path / "c.mp4").exists()
