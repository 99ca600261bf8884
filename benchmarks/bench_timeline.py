"""Strided embedding (`hvm1 embed --stride`) against its forward passes alone: what decoding a whole video once, as
windows every S seconds, adds to the model's own time.

Two timings of the same windows of one video, side by side in one process:
  forward   the model's forward_features + CLS pooling on the windows' clips, decoded beforehand and held in
            memory, in the batches the strided run makes
  strided   embed_videos(stride=S) end to end: one streaming decode of the video for all its windows, each
            window preprocessed and embedded (the forward passes inside it are timed too)
The ratio strided / forward is 1.0 when decoding costs nothing; the claim is at most 1.15. The two alternate for
--rounds rounds and the median round's ratio is reported, so that other load on a shared machine slows both
sides of a ratio alike.

Video: --video (default box.mp4 of tests/fixtures/videos, 15 s of 640 x 480 H.264). Model: a named architecture
with random weights (default vit_base_patch16 at 224 px, 16 frames, every 8th frame at 30 fps: a window spans
4 s), windows every --stride seconds (default 2).

Usage: python benchmarks/bench_timeline.py [--arch vit_base_patch16] [--stride 2] [--batch-size 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from hvm1.data import load_windows
from hvm1.eval import embed_videos, embedding_preset, pool_tokens
from hvm1.models import VideoViT, create_model
from hvm1.zoo import preprocessing_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forward_timer import time_forwards  # noqa: E402
from results import Table, write_result  # noqa: E402

from fixtures import VIDEOS

SHARED_VIDEO = VIDEOS / "box.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vit_base_patch16")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--stride", type=float, default=2.0, help="seconds between window starts")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternations of forward and strided")
    parser.add_argument("--video", type=Path, default=SHARED_VIDEO)
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video} not found (the repository's test data)")

    model = create_model(args.arch, img_size=args.img_size, num_frames=args.frames, num_classes=0).eval()
    preset = embedding_preset(preprocessing_for(model))
    started = time.perf_counter()
    clips = [clip for _, clip in load_windows(preset, args.video, args.stride)]
    decode_seconds = time.perf_counter() - started
    batches = torch.stack(clips).split(args.batch_size)
    print(
        f"{args.arch} at {args.img_size} px x {args.frames} frames; {args.video.name}: {len(clips)} windows every "
        f"{args.stride:g} s, batch {args.batch_size}, {torch.get_num_threads()} threads"
    )
    with torch.inference_mode():
        pool_tokens(model.forward_features(batches[0]), "cls")  # warm-up

    inside = time_forwards(VideoViT, "forward_features")
    rounds = []
    for _ in range(args.rounds):
        forward = forward_seconds(model, batches)
        del inside[:]
        strided, windows = strided_seconds(model, args)
        if windows != len(clips):
            raise SystemExit(f"the strided run embedded {windows} windows, the decode alone read {len(clips)}")
        rounds.append((forward, strided, sum(inside)))
    ratios = [strided / forward for forward, strided, _ in rounds]
    forward, strided, forwards_inside = rounds[sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]]
    ratio = strided / forward

    print(f"{'':10}{'seconds':>9}{'per window':>12}")
    print(f"{'forward':10}{forward:9.2f}{forward / len(clips):12.3f}   (clips in memory)")
    print(
        f"{'strided':10}{strided:9.2f}{strided / len(clips):12.3f}   (end to end; its forward passes "
        f"{forwards_inside:.2f} s)"
    )
    print(
        f"ratio strided / forward = {ratio:.3f} (median of {', '.join(f'{r:.3f}' for r in ratios)}); "
        f"target 1.15: {'met' if ratio <= 1.15 else 'NOT met'}"
    )
    print(f"strided / its own forward passes = {strided / forwards_inside:.3f} (what decoding adds, on the same load)")
    print(f"decoding the windows alone, first: {decode_seconds:.2f} s")
    write_result(
        "bench_timeline",
        [
            Table(
                "strided embedding against its forward passes (median round)",
                ["run", "seconds", "per window"],
                [
                    ["forward", round(forward, 3), round(forward / len(clips), 4)],
                    ["strided", round(strided, 3), round(strided / len(clips), 4)],
                    [
                        "forward passes inside strided",
                        round(forwards_inside, 3),
                        round(forwards_inside / len(clips), 4),
                    ],
                ],
            )
        ],
        settings={**vars(args), "video": args.video.name, "windows": len(clips)},
        summary=[
            f"strided / forward = {ratio:.3f} (target at most 1.15: {'met' if ratio <= 1.15 else 'not met'}); "
            f"rounds {', '.join(f'{r:.3f}' for r in ratios)}",
            f"strided / the forward passes inside it = {strided / forwards_inside:.3f}",
            f"decoding the {len(clips)} windows alone took {decode_seconds:.2f} s",
        ],
    )


def forward_seconds(model: torch.nn.Module, batches: tuple[torch.Tensor, ...]) -> float:
    """Seconds of forward_features + CLS pooling over the in-memory batches."""
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            pool_tokens(model.forward_features(batch), "cls")
    return time.perf_counter() - started


def strided_seconds(model: torch.nn.Module, args: argparse.Namespace) -> tuple[float, int]:
    """Seconds of embed_videos(stride=...) end to end, and the windows it embedded."""
    started = time.perf_counter()
    result = embed_videos(model, [args.video], stride=args.stride, batch_size=args.batch_size)
    elapsed = time.perf_counter() - started
    if result.skipped or result.embeddings is None:
        raise SystemExit(f"skipped: {result.skipped}")
    return elapsed, len(result.embeddings)


if __name__ == "__main__":
    main()
