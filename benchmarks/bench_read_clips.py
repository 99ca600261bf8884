"""Decoding against the bf16 forward it feeds, and `read_clips` (one open per video) against a `read_clip` per clip.

In one process, on the videos of tests/fixtures/videos:
  decode           clips/s of one process decoding + preprocessing, for `embed` (the center clip, eval preset,
                   every 8th frame, 224 px) and for pretraining (`--repeat-aug` random clips per video, the
                   training preset: short side 256-320, random resized crop, flip), per clip and per video
  read_clips       the same pretraining clips read with `VideoPreset.load_clips` (the file opened once for all
                   of a video's clips), turns taken with the per-clip reads so that the machine's load falls
                   on both; identical clips (checked)
  forward          ViT-H/14 clips/s at 16 x 224 px in bf16 autocast with the linear weights packed once, as
                   `hvm1 embed` runs on a CPU with bf16 units (skip with --no-forward); decoding keeps up with
                   the model where decode clips/s x decoding processes >= forward clips/s

Usage: python benchmarks/bench_read_clips.py [--repeat-aug 16] [--rounds 3] [--no-forward]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from results import Table, write_result

from fixtures import VIDEOS
from hvm1.data import find_videos, video_eval_preset, video_train_preset
from hvm1.devices import keep_freed_memory, resolve_precision
from hvm1.inference import prepare_for_inference
from hvm1.zoo import VIDEO_MEAN, VIDEO_STD


def generators(count: int, seed: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1000 + k) for k in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat-aug", type=int, default=16, help="pretraining clips per video (published: 16)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of per-clip reads and read_clips per video")
    parser.add_argument("--no-forward", action="store_true", help="skip the ViT-H/14 bf16 forward")
    args = parser.parse_args()
    keep_freed_memory()
    videos = find_videos(VIDEOS)
    if not videos:
        raise SystemExit(f"no videos in {VIDEOS}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(videos)} videos in {VIDEOS}")
    train = video_train_preset(224, 16, VIDEO_MEAN, VIDEO_STD, (256, 320), (0.5, 1.0), 8)
    embed = video_eval_preset(224, 16, VIDEO_MEAN, VIDEO_STD, 8)

    t0 = time.perf_counter()
    for video in videos:
        embed.load(video)
    embed_rate = len(videos) / (time.perf_counter() - t0)

    per_clip, together, ratios = [], [], []
    table = Table(
        f"pretraining clips ({args.repeat_aug} per video, medians of {args.rounds} rounds)",
        ["video", "per clip clips/s", "read_clips clips/s", "speed-up"],
    )
    print(f"{'video':<28} {'per clip clips/s':>16} {'read_clips clips/s':>18} {'speed-up':>9}")
    for video in videos:
        a, b = [], []
        for round_ in range(args.rounds):
            t0 = time.perf_counter()
            alone = [train.load(video, generator=g) for g in generators(args.repeat_aug, round_)]
            a.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            once = train.load_clips(video, generators(args.repeat_aug, round_))
            b.append(time.perf_counter() - t0)
            assert all(torch.equal(x[0], y[0]) for x, y in zip(alone, once)), f"{video}: read_clips differs"
        rate_a, rate_b = args.repeat_aug / statistics.median(a), args.repeat_aug / statistics.median(b)
        per_clip.append(rate_a)
        together.append(rate_b)
        ratios.append(rate_b / rate_a)
        print(f"{video.name:<28} {rate_a:16.1f} {rate_b:18.1f} {rate_b / rate_a:8.2f}x")
        table.rows.append([video.name, round(rate_a, 1), round(rate_b, 1), f"{rate_b / rate_a:.2f}x"])
    summary = [
        f"median over videos: pretraining clips per clip {statistics.median(per_clip):.1f}/s, with read_clips "
        f"{statistics.median(together):.1f}/s ({statistics.median(ratios):.2f}x); embed center clips "
        f"{embed_rate:.1f}/s (all in one process)"
    ]
    print(summary[0])

    if not args.no_forward:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_models import random_model

        from hvm1.models import get_config

        precision = resolve_precision("bf16", "cpu")
        vit = prepare_for_inference(random_model(get_config("vit_huge_patch14")), precision)
        video = torch.randn(1, 3, 16, 224, 224)
        with torch.inference_mode(), precision.autocast("cpu"):
            vit(video)
            t0 = time.perf_counter()
            vit(video)
            forward_rate = 1 / (time.perf_counter() - t0)
        print(
            f"ViT-H/14 bf16 forward {forward_rate:.2f} clips/s; one decoding process gives "
            f"{embed_rate / forward_rate:.1f}x that for embed and "
            f"{statistics.median(together) / forward_rate:.1f}x with read_clips for pretraining "
            f"({statistics.median(per_clip) / forward_rate:.1f}x per clip)"
        )
        summary.append(
            f"ViT-H/14 bf16 forward {forward_rate:.2f} clips/s; one decoding process gives "
            f"{embed_rate / forward_rate:.1f}x that for embed and "
            f"{statistics.median(together) / forward_rate:.1f}x with read_clips for pretraining"
        )
    write_result(
        "bench_read_clips", [table], settings={key: str(value) for key, value in vars(args).items()}, summary=summary
    )


if __name__ == "__main__":
    main()
