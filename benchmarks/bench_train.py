"""MAE pretraining throughput on CPU: clips/s, the step's fraction of the matmul roofline, peak memory and the
share of step time spent waiting for data, for a ViT-B/16-size MAE (`mae_vit_base_patch16`, 16 frames of 224
px, mask ratio 0.9): float32, bf16 autocast (what `--precision auto` runs on a CPU with bf16 units), and
float32 with activation checkpointing, side by side in one run.

Every figure comes from `hvm1.train.pretrain` on the real videos in tests/fixtures/videos through the published
clip pipeline (random start, short side 256-320, random resized crop, flip) with DataLoader workers.
- Speed: short runs of the two modes take turns (`--rounds` of each), so that a shared machine's load falls
  on both alike; the first step of every run (warm-up, first decode) is left out. Data wait share: the time
  the loop waited for its next batch over the step time. Roofline fraction: 3x the forward's matrix-product
  FLOPs (forward + backward) per clip x clips/s over the 4096^3 matrix-product rate in the mode's precision,
  measured before and after the timed runs.
- Memory: each mode once more in its own child process, whose peak resident set is read at the end. "of it
  activations" takes away the process as it was after imports and the float32 weights, gradients and AdamW
  state (16 bytes a parameter), leaving what forward and backward hold (and allocator slack).

Usage: python benchmarks/bench_train.py [--rounds 3] [--steps 3] [--batch-size 2] [--num-workers 1] [--threads N]
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

from fixtures import VIDEOS

# mode: (precision, activation checkpointing)
MODES = {"fp32": ("fp32", False), "bf16": ("bf16", False), "fp32 ckpt": ("fp32", True)}
ARCH = "mae_vit_base_patch16"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train_records(mode: str, steps: int, batch_size: int, num_workers: int) -> list[dict]:
    """Run `steps` steps of pretraining in `mode` in this process; the metrics records of the timed steps."""
    from hvm1.train import PretrainConfig, pretrain, read_metrics

    with tempfile.TemporaryDirectory() as out_dir:
        config = PretrainConfig(
            out_dir=out_dir,
            arch=ARCH,
            max_steps=steps,
            epochs=steps,
            batch_size=batch_size,
            repeat_aug=1,
            num_workers=num_workers,
            grad_checkpointing=MODES[mode][1],
            save_every=10**9,
            tensorboard=False,
            device="cpu",
            precision=MODES[mode][0],
        )
        pretrain(VIDEOS, config)
        return read_metrics(out_dir)[1:]


def peak_memory(mode: str, steps: int, batch_size: int, num_workers: int) -> dict:
    """Peak resident memory of a run in `mode` (in this process: run it in a fresh one), with its parts."""
    from hvm1 import create_model

    base_mb = _peak_mb()  # Python, torch and hvm1 imported, nothing built
    parameters = sum(p.numel() for p in create_model(ARCH, device="meta").parameters())
    train_records(mode, steps, batch_size, num_workers)
    return {"peak_mb": _peak_mb(), "base_mb": base_mb, "state_mb": parameters * 16 / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each mode, taking turns")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run (the first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=2, help="clips per step")
    parser.add_argument("--num-workers", type=int, default=1, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: torch's, one per core)")
    parser.add_argument("--memory-child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps(peak_memory(args.memory_child, args.steps, args.batch_size, args.num_workers)))
        return
    if not VIDEOS.is_dir():
        sys.exit(f"{VIDEOS} not found: the benchmark reads the real videos in tests/fixtures/videos")
    memory = {}
    for mode in MODES:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                mode,
                "--steps",
                str(args.steps),
                "--batch-size",
                str(args.batch_size),
                "--num-workers",
                str(args.num_workers),
                *(["--threads", str(args.threads)] if args.threads else []),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        memory[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_models import mae_flops, matmul_rate
    from results import Table, write_result

    from hvm1.models import get_config

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    roofs: dict[str, list[float]] = {name: [matmul_rate(dtype=dtype)] for name, dtype in dtypes.items()}
    records: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            records[mode] += train_records(mode, args.steps, args.batch_size, args.num_workers)
    for name, dtype in dtypes.items():
        roofs[name].append(matmul_rate(dtype=dtype))
    step_flops = 3 * mae_flops(get_config(ARCH), 0.9)  # per clip: forward + backward (twice the forward)
    figures = {}
    for mode in MODES:
        steps = records[mode]
        figures[mode] = {
            "clips_per_s": statistics.median(r["clips_per_s"] for r in steps),
            "step_s": statistics.median(r["step_s"] for r in steps),
            "data_share": sum(r["data_wait_s"] for r in steps) / sum(r["step_s"] for r in steps),
            "roofline": statistics.median(r["clips_per_s"] for r in steps)
            * step_flops
            / 1e9
            / statistics.mean(roofs[MODES[mode][0]]),
            "peak_mb": memory[mode]["peak_mb"],
            "activations_mb": memory[mode]["peak_mb"] - memory[mode]["base_mb"] - memory[mode]["state_mb"],
        }
    timed = len(records["fp32"])
    print(
        f"{ARCH}, 16 x 224 px, mask 0.9, batch {args.batch_size}, {timed} timed steps per mode in "
        f"{args.rounds} alternating runs, {torch.get_num_threads()} threads, {args.num_workers} data worker(s), CPU; "
        f"rooflines fp32 {statistics.mean(roofs['fp32']):.0f}, bf16 {statistics.mean(roofs['bf16']):.0f} GFLOP/s"
    )
    print(f"{'':26}" + "".join(f"{mode:>12}" for mode in MODES) + f"{'bf16/fp32':>11}{'ckpt/fp32':>11}")
    rows = [
        ("clips/s (median step)", "clips_per_s", "{:.3f}"),
        ("step time (s, median)", "step_s", "{:.2f}"),
        ("roofline fraction", "roofline", "{:.1%}"),
        ("data wait share", "data_share", "{:.1%}"),
        ("peak memory (MB)", "peak_mb", "{:.0f}"),
        ("  of it activations (MB)", "activations_mb", "{:.0f}"),
    ]
    table = Table(
        f"{ARCH}, 16 x 224 px, mask 0.9, batch {args.batch_size}, {timed} timed steps per mode in "
        f"{args.rounds} alternating runs, {args.num_workers} data worker(s), CPU; rooflines fp32 "
        f"{statistics.mean(roofs['fp32']):.0f}, bf16 {statistics.mean(roofs['bf16']):.0f} GFLOP/s",
        ["", *MODES, "bf16/fp32", "ckpt/fp32"],
    )
    for label, key, form in rows:
        values = "".join(f"{form.format(figures[mode][key]):>12}" for mode in MODES)
        ratios = (
            ""
            if key in ("data_share", "roofline")
            else "".join(f"{figures[mode][key] / figures['fp32'][key]:>10.2f}x" for mode in ("bf16", "fp32 ckpt"))
        )
        print(f"{label:26}{values}{ratios}")
        table.rows.append(
            [
                label.strip(),
                *(form.format(figures[mode][key]) for mode in MODES),
                *(
                    ("", "")
                    if key in ("data_share", "roofline")
                    else (f"{figures[mode][key] / figures['fp32'][key]:.2f}x" for mode in ("bf16", "fp32 ckpt"))
                ),
            ]
        )
    base = memory["fp32"]
    note = (
        f"activations: peak minus the process after imports, {base['base_mb']:.0f} MB, and weights + gradients "
        f"+ AdamW state, {base['state_mb']:.0f} MB"
    )
    print(f"({note})")
    write_result(
        "bench_train", [table], settings={key: str(value) for key, value in vars(args).items()}, summary=[note]
    )


if __name__ == "__main__":
    main()
