"""Does decoding hide behind compute in `hvm1 embed`? Clips per second end to end against the model alone.

Three rates on the same clips, measured in one process:
  decode    FileViews alone: decode, resize, crop, normalise (the DataLoader workers' share), no model
  forward   the model's forward_features + pooling on the same clips already decoded, in memory
  embed     embed_videos end to end (decoding in --workers DataLoader workers, forward, chunked .npz output)
The ratio embed / forward is 1.0 when decoding is fully hidden behind compute; below it, the model waits.
forward and embed alternate for --rounds rounds and the median of each round's ratio is reported, so that
other load on a shared machine slows both sides of a ratio alike.

Measured on the shared 2-core x86_64 dev box (load average 3-5 from other work), vit_base_patch16, 224 px,
16 frames, 4 clips, batch 2: decode 3.7 clips/s, forward 0.22, embed 0.15 clips/s with 1 worker, ratio 0.97
(rounds 0.97, 0.70, 0.98); with 0 workers 0.95. Decoding a clip costs ~4% of a ViT-B forward here, so it
hides; on a GPU the workers overlap it with compute entirely.

Clips: --clips evenly spaced clips of each real video in tests/fixtures/videos, at the model's size and frames
(sampling rate 8 at 30 fps, short side img_size * 256 / 224, center crop). Model: a named architecture with
random weights (default vit_base_patch16 at 224 px, 16 frames: a mid-size model a CPU runs in seconds).

Usage: python benchmarks/bench_embed.py [--arch vit_base_patch16] [--clips 1] [--workers 1] [--batch-size 2] [--rounds
3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from results import Table, write_result

from fixtures import VIDEOS
from hvm1.data import find_videos
from hvm1.eval import FileViews, embed_videos, embedding_preset, pool_tokens
from hvm1.models import create_model
from hvm1.zoo import preprocessing_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vit_base_patch16")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--clips", type=int, default=1, help="clips per video")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the end-to-end run")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of forward and embed")
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    args = parser.parse_args()
    if not args.videos.is_dir():
        raise SystemExit(f"{args.videos} not found (the repository's test data)")

    videos = find_videos(args.videos)
    model = create_model(args.arch, img_size=args.img_size, num_frames=args.frames, num_classes=0).eval()
    preset = embedding_preset(preprocessing_for(model))
    dataset = FileViews(videos, preset, args.clips)
    num_clips = len(dataset)
    print(
        f"{args.arch} at {args.img_size} px x {args.frames} frames, {len(videos)} videos x {args.clips} clips "
        f"= {num_clips} clips, batch {args.batch_size}, {torch.get_num_threads()} threads"
    )

    started = time.perf_counter()
    clips = [dataset[index].views for index in range(num_clips)]  # (1 crop, C, T, H, W) each
    decode_rate = num_clips / (time.perf_counter() - started)

    batches = torch.cat(clips).split(args.batch_size)
    with torch.inference_mode():
        pool_tokens(model.forward_features(batches[0]), "cls")  # warm-up
    forward_rates, embed_rates = [], []
    for _ in range(args.rounds):
        forward_rates.append(forward_rate(model, batches))
        embed_rates.append(embed_rate(model, videos, args))
    ratios = [embed / forward for embed, forward in zip(embed_rates, forward_rates)]

    print(f"decode   {decode_rate:7.2f} clips/s  (one process, no model)")
    print(f"forward  {statistics.median(forward_rates):7.2f} clips/s  (model alone, clips in memory; median)")
    print(f"embed    {statistics.median(embed_rates):7.2f} clips/s  (end to end, {args.workers} workers; median)")
    ratio = (
        f"ratio embed / forward = {statistics.median(ratios):.2f} (median of {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(ratio)
    table = Table(
        f"{args.arch} at {args.img_size} px x {args.frames} frames, {len(videos)} videos x {args.clips} clips, "
        f"batch {args.batch_size}",
        ["path", "clips/s", "what"],
        [
            ["decode", round(decode_rate, 2), "one process, no model"],
            ["forward", round(statistics.median(forward_rates), 2), "model alone, clips in memory; median"],
            ["embed", round(statistics.median(embed_rates), 2), f"end to end, {args.workers} workers; median"],
        ],
    )
    write_result(
        "bench_embed", [table], settings={key: str(value) for key, value in vars(args).items()}, summary=[ratio]
    )


def forward_rate(model: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    """Clips per second of forward_features + CLS pooling over in-memory batches."""
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            pool_tokens(model.forward_features(batch), "cls")
    return sum(len(batch) for batch in batches) / (time.perf_counter() - started)


def embed_rate(model: torch.nn.Module, videos: list[Path], args: argparse.Namespace) -> float:
    """Clips per second of embed_videos end to end into a fresh .npz."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = embed_videos(
            model,
            videos,
            Path(folder) / "embeddings.npz",
            num_clips=args.clips,
            batch_size=args.batch_size,
            num_workers=args.workers,
        )
        elapsed = time.perf_counter() - started
    if result.skipped:
        raise SystemExit(f"skipped: {result.skipped}")
    return result.embedded * args.clips / elapsed


if __name__ == "__main__":
    main()
