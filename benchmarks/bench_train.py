"""MAE pretraining throughput on CPU: clips/s, peak memory and the share of step time spent waiting for data,
for a ViT-B/16-size MAE (`mae_vit_base_patch16`, 16 frames of 224 px, mask ratio 0.9), with and without
activation checkpointing, side by side in one run.

Each mode runs `hvm1.train.pretrain` in its own child process (so each has its own peak resident memory) on
the real videos in ../shared/videos through the published clip pipeline (random start, short side 256-320,
random resized crop, flip) with DataLoader workers. The first step (warm-up, first decode) is left out of
the rates. Peak memory is the child's peak resident set; "of it activations" takes away the process as it
was after imports and the float32 weights, gradients and AdamW state (16 bytes a parameter), leaving what
the forward and backward pass hold (and allocator slack).

Usage: python benchmarks/bench_train.py [--steps 4] [--batch-size 2] [--num-workers 1] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos"
MODES = ("plain", "checkpointing")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_mode(mode: str, steps: int, batch_size: int, num_workers: int, threads: int | None) -> dict:
    """Train `steps` steps in this process and return the figures of `mode`."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    from hvm1 import create_model
    from hvm1.train import PretrainConfig, pretrain, read_metrics

    base_mb = _peak_mb()  # Python, torch and hvm1 imported, nothing built
    parameters = sum(p.numel() for p in create_model("mae_vit_base_patch16", device="meta").parameters())
    with tempfile.TemporaryDirectory() as out_dir:
        config = PretrainConfig(
            out_dir=out_dir, arch="mae_vit_base_patch16", max_steps=steps, epochs=steps, batch_size=batch_size,
            repeat_aug=1, num_workers=num_workers, grad_checkpointing=mode == "checkpointing",
            save_every=10**9, tensorboard=False, device="cpu",
        )
        pretrain(VIDEOS, config)
        records = read_metrics(out_dir)[1:]
    step_s = sum(r["step_s"] for r in records)
    return {
        "mode": mode,
        "threads": torch.get_num_threads(),
        "clips_per_s": statistics.median(r["clips_per_s"] for r in records),
        "step_s": statistics.median(r["step_s"] for r in records),
        "data_share": sum(r["data_wait_s"] for r in records) / step_s,
        "peak_mb": _peak_mb(),
        "base_mb": base_mb,
        "state_mb": parameters * 16 / 2**20,  # float32 weights, gradients, AdamW exp_avg and exp_avg_sq
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per mode (the first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=2, help="clips per step")
    parser.add_argument("--num-workers", type=int, default=1, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: torch's, one per core)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_mode(args.child, args.steps, args.batch_size, args.num_workers, args.threads)))
        return
    if not VIDEOS.is_dir():
        sys.exit(f"{VIDEOS} not found: the benchmark reads the real videos in ../shared/videos")
    results = []
    for mode in MODES:
        child = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--steps", str(args.steps), "--batch-size",
             str(args.batch_size), "--num-workers", str(args.num_workers),
             *(["--threads", str(args.threads)] if args.threads else [])],
            capture_output=True, text=True, check=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    plain, checkpointed = results
    print(f"mae_vit_base_patch16, 16 x 224 px, mask 0.9, batch {args.batch_size}, {args.steps - 1} timed steps, "
          f"{plain['threads']} threads, {args.num_workers} data worker(s), CPU float32")
    print(f"{'':24}{'plain':>14}{'checkpointing':>16}{'ratio':>9}")
    rows = [
        ("clips/s", "clips_per_s", "{:.3f}"),
        ("step time (s)", "step_s", "{:.2f}"),
        ("data wait share", "data_share", "{:.1%}"),
        ("peak memory (MB)", "peak_mb", "{:.0f}"),
    ]
    for label, key, form in rows:
        ratio = "" if key == "data_share" else f"{checkpointed[key] / plain[key]:.2f}x"
        print(f"{label:24}{form.format(plain[key]):>14}{form.format(checkpointed[key]):>16}{ratio:>9}")
    rest = [r["peak_mb"] - r["base_mb"] - r["state_mb"] for r in results]
    print(f"{'  of it activations (MB)':24}{rest[0]:>14.0f}{rest[1]:>16.0f}{rest[1] / rest[0]:>8.2f}x")
    print(f"(peak minus the process after imports, {plain['base_mb']:.0f} MB, and weights + gradients + AdamW "
          f"state, {plain['state_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
