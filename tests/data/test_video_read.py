"""read_clip against an independent full decode of the real videos, and its time-based semantics."""

from __future__ import annotations

import bisect
import functools
from pathlib import Path

import av
import pytest
import torch

from data_files import encode_video, frame_off_its_packet
from hvm1.data import Clip, clip_instants, read_clip
from reference_data import VIDEOS, fixture

STARTS = [0.0, 0.37, 0.62]  # fractions of the decodable length (plus one clip before the start, one near the end)
RATES = [1, 4, 8]
NUM_FRAMES = 16


@functools.cache
def decoded_times(path: Path) -> list[float]:
    """Every decodable frame's presentation time, decoding the whole file, sorted (decoders may reorder)."""
    with av.open(str(path)) as container:
        return sorted(frame.time for frame in container.decode(video=0))  # callers must not change it


def expected_times(times: list[float], instants: list[float]) -> list[float]:
    """The frame on screen at each instant: last at or before it, else the first frame."""
    return [times[max(bisect.bisect_right(times, instant + 1e-6) - 1, 0)] for instant in instants]


def rgb_frames_at(path: Path, wanted: set[float], short_side: int | None = None) -> dict[float, torch.Tensor]:
    """RGB pixels of the frames at the wanted times, from a second full decode without seeking."""
    found = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time in wanted:
                if short_side is None:
                    found[frame.time] = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                else:
                    height, width = short_side, round(frame.width * short_side / frame.height)
                    found[frame.time] = torch.from_numpy(
                        frame.reformat(
                            width=width, height=height, format="rgb24", interpolation="BILINEAR"
                        ).to_ndarray()
                    )
    return found


@pytest.mark.slow
def test_times_and_pixels_match_a_full_decode(video):
    times = decoded_times(video)
    last = times[-1]
    span = (NUM_FRAMES - 1) / 30.0
    clips: list[tuple[float, int, Clip]] = []
    for rate in RATES:
        for start in [fraction * last for fraction in STARTS] + [-0.5, last - 0.5 * rate * span]:
            clips.append((start, rate, read_clip(video, NUM_FRAMES, rate, 30.0, start=start)))
    wanted = {time for _, _, clip in clips for time in clip.times.tolist()}
    pixels = rgb_frames_at(video, wanted)
    for start, rate, clip in clips:
        instants = clip_instants(start, NUM_FRAMES, rate, 30.0)
        label = f"{video.name} start {start:.3f} s rate {rate}"
        assert clip.instants.tolist() == instants, label
        assert clip.times.tolist() == expected_times(times, instants), label
        assert clip.padded == sum(instant > last + 1e-6 for instant in instants), label
        assert clip.frames.shape == (NUM_FRAMES, *pixels[clip.times[0].item()].shape), label
        assert clip.frames.dtype == torch.uint8
        for index, time in enumerate(clip.times.tolist()):
            assert torch.equal(clip.frames[index], pixels[time]), f"{label}: frame {index} at {time} s"


def test_resized_frames_match_a_full_decode(video):
    times = decoded_times(video)
    clip = read_clip(video, 8, 4, 30.0, start=times[len(times) // 2], short_side=64)
    pixels = rgb_frames_at(video, set(clip.times.tolist()), short_side=64)
    assert clip.frames.shape[1] == 64 and clip.frames.shape[2] >= 64
    for index, time in enumerate(clip.times.tolist()):
        assert torch.equal(clip.frames[index], pixels[time])


@pytest.mark.slow
def test_placed_clips_stay_inside_the_decodable_frames(video):
    times = decoded_times(video)
    span = 15 * 4 / 30.0
    generator = torch.Generator().manual_seed(0)
    for start in ["center", "random", (0, 5), (2, 5), (4, 5)]:
        clip = read_clip(video, start=start, generator=generator)
        assert clip.padded == 0, start
        assert times[0] - 1e-6 <= clip.instants[0].item() and clip.instants[-1].item() <= times[-1] + 1e-6, start
        assert clip.times.tolist() == expected_times(times, clip.instants.tolist()), start
    assert read_clip(video, start=(0, 5)).instants[0].item() == pytest.approx(times[0])
    # The last of evenly spaced clips ends at the last decodable frame, wherever the header says the end is.
    assert read_clip(video, start=(4, 5)).instants[-1].item() <= times[-1] + 1e-6
    assert read_clip(video, start=(4, 5)).instants[-1].item() >= times[-1] - span


def test_tree_avi_is_shifted_back_to_its_68_decodable_frames():
    path = fixture(VIDEOS / "tree.avi")
    times = decoded_times(path)
    assert len(times) == 68
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 444  # what the header promises
    clip = read_clip(path, start=(4, 5))
    assert clip.instants[-1].item() == pytest.approx(times[-1])
    assert clip.padded == 0
    assert clip.fps < 3.0  # measured from what decodes, not the header's 15 fps


def test_random_start_follows_the_generator(video):
    first = read_clip(video, 4, start="random", generator=torch.Generator().manual_seed(7))
    again = read_clip(video, 4, start="random", generator=torch.Generator().manual_seed(7))
    assert first.instants.tolist() == again.instants.tolist()
    assert torch.equal(first.frames, again.frames)


@pytest.mark.parametrize("fps", [10, 30])
def test_same_moments_whatever_the_frame_rate(tmp_path, fps):
    # Two encodings of one 3 s scene: frame i of the 30 fps one is the scene at i / 30 s, of the 10 fps one at
    # i / 10 s. The grey value encodes the frame index, so it tells which moment is on screen.
    path = encode_video(
        tmp_path / f"scene{fps}.avi", fps=fps, num_frames=3 * fps, codec="ffv1"
    )  # lossless, exact 1/fps clock
    clip = read_clip(path, num_frames=8, sampling_rate=4, target_fps=30.0, start=0.5)
    expected_index = [int(instant * fps + 1e-6) for instant in clip.instants.tolist()]
    assert clip.times.tolist() == pytest.approx([index / fps for index in expected_index])
    grey = clip.frames.float().mean(dim=(1, 2, 3))
    assert grey.tolist() == pytest.approx([10 + 2 * index for index in expected_index], abs=1.0)
    assert clip.fps == pytest.approx(fps)


def test_padded_counts_the_instants_after_the_last_frame(tmp_path):
    path = encode_video(tmp_path / "short.avi", fps=10, num_frames=10)  # frames at 0.0 .. 0.9 s
    clip = read_clip(path, num_frames=8, sampling_rate=6, target_fps=30.0, start=0.0)  # every 0.2 s
    assert clip.instants.tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4])
    assert clip.padded == 3
    assert clip.times.tolist()[-3:] == pytest.approx([0.9, 0.9, 0.9])
    # Placed clips are shifted back to end at the last frame; a clip longer than the video starts at 0.
    assert read_clip(path, num_frames=3, sampling_rate=6, start="center").instants[-1].item() <= 0.9 + 1e-6
    longer = read_clip(path, num_frames=8, sampling_rate=6, start="random")
    assert longer.instants[0].item() == 0.0 and longer.padded == 3


@pytest.mark.parametrize(
    "arguments",
    [
        {"num_frames": 0},
        {"sampling_rate": 0},
        {"target_fps": 0.0},
        {"short_side": 0},
        {"start": "middle"},
        {"start": (5, 5)},
        {"start": float("nan")},
    ],
)
def test_bad_arguments_are_value_errors(tmp_path, arguments):
    path = encode_video(tmp_path / "ok.avi", fps=10, num_frames=5)
    with pytest.raises(ValueError):
        read_clip(path, **arguments)


def test_decoding_every_frame_gives_the_planned_clip(video, monkeypatch, caplog):
    # read_clip first plans from packet times and skips non-reference frames no instant shows; where a decoded
    # frame turns out not to be at its packet's time the plan does not hold, and it decodes every frame. Both must
    # give the same clip.
    import hvm1.data.video

    last = decoded_times(video)[-1]
    starts = [0.0, 0.4 * last, "center", (4, 5)]
    planned = [read_clip(video, 8, 4, start=start) for start in starts]
    caplog.set_level("DEBUG", logger="hvm1.data.video")
    for start, clip in zip(starts, planned):
        caplog.clear()
        moved = frame_off_its_packet(monkeypatch, hvm1.data.video, after=1)  # the first one: a seek landing late
        every = read_clip(video, 8, 4, start=start)
        assert moved and "decoding every frame" in caplog.text, start
        assert every.times.tolist() == clip.times.tolist(), start
        assert torch.equal(every.frames, clip.frames), start
        assert (every.padded, every.instants.tolist()) == (clip.padded, clip.instants.tolist()), start


class SeeksLate:
    """A container whose first seek lands `late` seconds after the time asked for (as some AVI files do)."""

    def __init__(self, container, late: float) -> None:
        self._container, self._late, self.seeks = container, late, []

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exception) -> None:
        self._container.close()

    def seek(self, offset: int, **options) -> None:
        self.seeks.append(offset)
        stream = options.get("stream")
        if stream is not None and len(self.seeks) == 1:
            offset += round(self._late / stream.time_base)
        self._container.seek(offset, **options)


def test_a_seek_that_lands_late_is_retried_earlier(monkeypatch):
    path = fixture(VIDEOS / "vtest.avi")  # keyframes every 25 s
    expected = read_clip(path, 8, start=30.0)
    opened = []
    real_open = av.open

    def open_seeking_late(*arguments, **options):
        opened.append(SeeksLate(real_open(*arguments, **options), late=25.0))
        return opened[-1]

    monkeypatch.setattr(av, "open", open_seeking_late)  # PyAV's opener, as hvm1's reader calls it
    clip = read_clip(path, 8, start=30.0)
    assert len(opened[0].seeks) > 1  # it noticed and sought again
    assert clip.times.tolist() == expected.times.tolist()
    assert torch.equal(clip.frames, expected.frames)


@pytest.mark.parametrize("name, fps", [("vtest.avi", 10.0), ("cup.mp4", 26.777), ("box.mp4", 29.97)])
def test_fps_is_measured_from_the_frames(name, fps):
    clip = read_clip(fixture(VIDEOS / name), start=1.0)
    assert clip.fps == pytest.approx(fps, rel=0.03)


def test_read_clips_gives_each_clip_read_clip_gives(video):
    from hvm1.data import read_clips

    starts = ["random", "center", (0, 3), 0.4, "random", (2, 3)]
    sides = [112, None, 96, 128, 100, 112]
    seeds = [1, 2, 3, 4, 5, 6]
    clips = read_clips(
        video, starts, 8, 4, 30.0, short_side=sides, generator=[torch.Generator().manual_seed(seed) for seed in seeds]
    )
    for clip, start, side, seed in zip(clips, starts, sides, seeds):
        alone = read_clip(video, 8, 4, 30.0, start, side, torch.Generator().manual_seed(seed))
        assert torch.equal(clip.frames, alone.frames) and torch.equal(clip.times, alone.times)
        assert torch.equal(clip.instants, alone.instants) and (clip.fps, clip.padded) == (alone.fps, alone.padded)
    with pytest.raises(ValueError, match="one value per clip expected"):
        read_clips(video, starts, short_side=[112])


def test_preset_load_clips_equals_loads(video):
    from hvm1.data import video_train_preset

    preset = video_train_preset(112, 8, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225), (128, 160), (0.5, 1.0), 4)
    seeds = range(4)
    together = preset.load_clips(video, [torch.Generator().manual_seed(seed) for seed in seeds])
    for (clip, padded), seed in zip(together, seeds):
        alone, alone_padded = preset.load(video, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(clip, alone) and padded == alone_padded
