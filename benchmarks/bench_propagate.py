"""Time per frame of `hvm1 propagate` with ViT-H/14 (random weights) on 480p DAVIS-sized frames, per precision.

Frames are 854 x 480 (DAVIS 480p), made from tests/fixtures/videos/box.mp4 (random frames where it is absent),
resized by the published rule to 832 x 480: a 34 x 59 patch grid, each frame repeated into a 16-frame clip,
so 8 x 34 x 59 = 16,048 tokens per forward through 32 blocks. Measured per precision, side by side in this
process: the seconds of each propagated frame (features + one propagation step, from the times at which
`propagate` reports each frame to its `Progress`), and a full-context propagation step alone (first frame +
7 recent, 12-patch neighbourhood, top 5) on random features. Prints the ratio of each precision's time per
frame to fp32's.

Usage: python benchmarks/bench_propagate.py [--frames 3] [--precisions fp32,bf16] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from results import Table, write_result

from fixtures import VIDEOS
from hvm1.devices import resolve_precision
from hvm1.models import create_model
from hvm1.progress import Progress
from hvm1.segment import PropagationConfig, propagate, propagate_labels
from hvm1.segment.propagation import neighbourhood

VIDEO = VIDEOS / "box.mp4"


def davis_frames(count: int) -> list[torch.Tensor]:
    """`count` (3, 480, 854) uint8 frames: box.mp4's, resized, or random ones where it is absent."""
    if VIDEO.is_file():
        from hvm1.data import read_clip

        clip = read_clip(VIDEO, num_frames=count, sampling_rate=2, start=0.0).frames  # (T, 480, 640, 3)
        frames = F.interpolate(clip.permute(0, 3, 1, 2).float(), size=(480, 854), mode="bilinear")
        return [frame.round().clamp(0, 255).to(torch.uint8) for frame in frames]
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, 480, 854), dtype=torch.uint8, generator=generator) for _ in range(count)]


class Stamps(Progress):
    """The time at which it was made, then the time of each frame `propagate` reports done."""

    def __init__(self) -> None:
        self.times = [time.perf_counter()]

    def advance(self, done: int, item: str = "") -> None:
        self.times.append(time.perf_counter())


def step_seconds(dim: int, repeats: int = 3) -> float:
    """Median seconds of one full-context step (8 context frames) at the 34 x 59 grid."""
    h, w, config = 34, 59, PropagationConfig()
    near = neighbourhood(h, w, config.size_mask_neighborhood)
    target = torch.randn(h, w, dim)
    contexts = [torch.randn(h, w, dim) for _ in range(1 + config.n_last_frames)]
    labels = [torch.rand(3, h, w) for _ in contexts]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        propagate_labels(target, contexts, labels, near, config.topk, config.temperature)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="frames per run: the first + (frames - 1) propagated")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("vit_huge_patch14").eval()
    frames = davis_frames(args.frames)
    first_mask = np.zeros((480, 854), dtype=np.uint8)
    first_mask[150:330, 300:550] = 1
    print(
        f"ViT-H/14, random weights; {args.frames} frames of 854x480 -> 832x480 (34x59 patches, 16,048 tokens); "
        f"{torch.get_num_threads()} threads"
    )
    step = step_seconds(model.config.embed_dim)
    print(f"full-context propagation step alone: {step:.3f} s")
    per_frame: dict[str, float] = {}
    table = Table(
        f"ViT-H/14, random weights; {args.frames} frames of 854x480 -> 832x480 (34x59 patches)",
        ["precision", "first frame s (features only)", "propagated frames s", "mean s per propagated frame"],
    )
    for name in args.precisions.split(","):
        precision = resolve_precision(name, "cpu")
        stamps = Stamps()
        propagate(model, frames, first_mask, progress=stamps, precision=precision)
        first, *rest = np.diff(stamps.times)
        per_frame[name] = statistics.mean(rest)
        print(
            f"{precision.describe():>14}: first frame (features only) {first:.1f} s; propagated frames "
            f"{', '.join(f'{t:.1f}' for t in rest)} s; mean {per_frame[name]:.1f} s per frame"
        )
        table.rows.append(
            [precision.describe(), round(first, 1), ", ".join(f"{t:.1f}" for t in rest), round(per_frame[name], 1)]
        )
    summary = [f"full-context propagation step alone: {step:.3f} s"]
    if "fp32" in per_frame:
        for name, seconds in per_frame.items():
            print(f"{name} / fp32 time per frame: {seconds / per_frame['fp32']:.3f}")
            summary.append(f"{name} / fp32 time per frame: {seconds / per_frame['fp32']:.3f}")
    write_result("bench_propagate", [table], settings=vars(args), summary=summary)


if __name__ == "__main__":
    main()
