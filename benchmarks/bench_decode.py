"""Clip decode + preprocess time per 16-frame 224 px clip: hvm1.data against the published path, in one run.

Claim (issue 4): reading a visualisation clip (16 frames, sampling rate 4 at 30 fps, short side 256,
center crop 224, normalised) with `hvm1.data` is at least 2.5x faster than the published pipeline,
median over the videos in tests/fixtures/videos.

The baseline below follows the published path: seek to the keyframe before the start, decode every frame
of the span and convert each to full-resolution RGB, stack, take the clip's frames, normalise in float,
resize the short side with `F.interpolate` and center-crop in torch. Both paths read the same frames (the
frame on screen at each instant) at the same five evenly spaced starts per file; each timing is the median
of `--repeats` runs, alternating the two paths so that load on a shared machine hits both alike. The
published decoder stops at the first frame past the clip, so with a decoder that reorders frames (box.mp4)
its last frame can differ; the mean difference printed is otherwise that of the two resizes.

    python benchmarks/bench_decode.py [--videos DIR] [--repeats N]

Measured on the 2-core development machine, shared with other test runs (load average 1.5-3.6), three
runs: median ratio 2.99x, 3.57x and 3.73x wall (3.02x-3.56x CPU); per file box.mp4 2.6-3.1x,
cup.mp4 3.2-4.1x, tree.avi 2.8-3.5x, vtest.avi 5.7-6.1x; published path 0.28-0.52 s per 640x480 clip.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import statistics
import time
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from results import Table, write_result

from fixtures import VIDEOS
from hvm1.data import clip_instants, find_videos, visualisation_preset
from hvm1.zoo import VIDEO_MEAN, VIDEO_STD

NUM_FRAMES, SAMPLING_RATE, TARGET_FPS, IMG_SIZE = 16, 4, 30.0, 224
SHORT_SIDE = IMG_SIZE + 32
NUM_STARTS = 5


def published_clip(path: Path, start: float) -> torch.Tensor:
    """The published visualisation pipeline, with the frame choice of read_clip: (C, T, H, W) float32."""
    instants = clip_instants(start, NUM_FRAMES, SAMPLING_RATE, TARGET_FPS)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start_pts, end_pts = int(start / stream.time_base), int(instants[-1] / stream.time_base)
        container.seek(max(start_pts - 1024, 0), any_frame=False, backward=True, stream=stream)
        frames, before = {}, None
        for frame in container.decode(stream):
            if frame.pts < start_pts:
                before = frame if before is None or frame.pts > before.pts else before
                continue
            frames[frame.pts] = frame
            if frame.pts > end_pts:
                break
        if before is not None:
            frames[before.pts] = before
        ordered = [frames[pts] for pts in sorted(frames)]
        video = torch.as_tensor(np.stack([frame.to_rgb().to_ndarray() for frame in ordered]))  # (N, H, W, 3)
        times = [frame.time for frame in ordered]
    index = [max(bisect.bisect_right(times, instant + 1e-6) - 1, 0) for instant in instants]
    video = video[index].float() / 255.0
    video = (video - torch.tensor(VIDEO_MEAN)) / torch.tensor(VIDEO_STD)
    video = video.permute(0, 3, 1, 2)  # (T, C, H, W)
    height, width = video.shape[-2:]
    size = (
        (SHORT_SIDE, round(width * SHORT_SIDE / height))
        if height <= width
        else (round(height * SHORT_SIDE / width), SHORT_SIDE)
    )
    video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
    top, left = math.ceil((size[0] - IMG_SIZE) / 2), math.ceil((size[1] - IMG_SIZE) / 2)
    return video[:, :, top : top + IMG_SIZE, left : left + IMG_SIZE].permute(1, 0, 2, 3)


def evenly_spaced_starts(path: Path) -> list[float]:
    """Five starts spread over the decodable frames (found by decoding everything, outside the timing)."""
    with av.open(str(path)) as container:
        last = max(frame.time for frame in container.decode(video=0))
    span = (NUM_FRAMES - 1) * SAMPLING_RATE / TARGET_FPS
    room = max(last - span, 0.0)
    return [index * room / (NUM_STARTS - 1) for index in range(NUM_STARTS)]


def timed(function, *arguments) -> tuple[float, float, torch.Tensor]:
    """Wall seconds, CPU seconds of the process (all its threads), and the result."""
    began, began_cpu = time.perf_counter(), time.process_time()
    result = function(*arguments)
    return time.perf_counter() - began, time.process_time() - began_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_videos = VIDEOS
    parser.add_argument("--videos", type=Path, default=default_videos)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    if not options.videos.is_dir():
        raise SystemExit(f"{options.videos}: no such folder (tests/fixtures/videos beside the checkout)")
    preset = visualisation_preset(IMG_SIZE, NUM_FRAMES, VIDEO_MEAN, VIDEO_STD)

    def ours(path: Path, start: float) -> torch.Tensor:
        return preset.load(path, start=start)[0]

    pipelines = {"published": published_clip, "hvm1": ours}

    print(
        f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"PyAV {av.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'':<22}{'wall s per clip':^30}{'CPU s per clip':^30}")
    print(
        f"{'file':<12}{'size':>10}{'published':>11}{'hvm1':>9}{'ratio':>10}{'published':>11}{'hvm1':>9}{'ratio':>10}"
        f"{'mean |diff|':>13}"
    )
    ratios, cpu_ratios = [], []
    table = Table(
        "seconds per 16-frame 224 px clip (medians), hvm1.data against the published decode path",
        [
            "file",
            "size",
            "published wall s",
            "hvm1 wall s",
            "wall ratio",
            "published CPU s",
            "hvm1 CPU s",
            "CPU ratio",
            "mean abs difference (0-255)",
        ],
    )
    for path in find_videos(options.videos):
        starts = evenly_spaced_starts(path)
        ours(path, starts[0]), published_clip(path, starts[0])  # warm caches and lazy initialisation
        medians = {(name, clock): [] for name in pipelines for clock in ("wall", "cpu")}
        differences = []
        for start in starts:
            runs = {key: [] for key in medians}
            clips = {}
            for repeat in range(options.repeats):
                for name in ("published", "hvm1") if repeat % 2 == 0 else ("hvm1", "published"):
                    wall, cpu, clips[name] = timed(pipelines[name], path, start)
                    runs[name, "wall"].append(wall)
                    runs[name, "cpu"].append(cpu)
            for key in medians:
                medians[key].append(statistics.median(runs[key]))
            # In 0-255 levels: the two resize differently (swscale while converting, torch after).
            differences.append((clips["hvm1"] - clips["published"]).abs().mean().item() * VIDEO_STD[0] * 255)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            size = f"{stream.width}x{stream.height}"
        mean = {key: statistics.mean(values) for key, values in medians.items()}
        ratios.append(mean["published", "wall"] / mean["hvm1", "wall"])
        cpu_ratios.append(mean["published", "cpu"] / mean["hvm1", "cpu"])
        print(
            f"{path.name:<12}{size:>10}{mean['published', 'wall']:>11.4f}{mean['hvm1', 'wall']:>9.4f}"
            f"{ratios[-1]:>9.2f}x"
            f"{mean['published', 'cpu']:>11.4f}{mean['hvm1', 'cpu']:>9.4f}{cpu_ratios[-1]:>9.2f}x"
            f"{statistics.mean(differences):>13.2f}"
        )
        table.rows.append(
            [
                path.name,
                size,
                round(mean["published", "wall"], 4),
                round(mean["hvm1", "wall"], 4),
                f"{ratios[-1]:.2f}x",
                round(mean["published", "cpu"], 4),
                round(mean["hvm1", "cpu"], 4),
                f"{cpu_ratios[-1]:.2f}x",
                round(statistics.mean(differences), 2),
            ]
        )
    summary = (
        f"median ratio over {len(ratios)} files: {statistics.median(ratios):.2f}x wall (target >= 2.5x), "
        f"{statistics.median(cpu_ratios):.2f}x CPU"
    )
    print(f"{summary}; load average now {os.getloadavg()[0]:.2f}")
    write_result("bench_decode", [table], settings=vars(options), summary=[summary])


if __name__ == "__main__":
    main()
