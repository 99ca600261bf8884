"""Time per window of `hvm1 surprise` with the published MAE size, in fp32 and at `--precision auto`, in one run.

A window is what `hvm1 surprise` computes for each of its clips (`hvm1.eval.surprise.window_losses`): the MAE's
forward pass with the final half of the window hidden (temporal, 8 of 16 frames), its loss on every hidden
patch, and the baselines (nearest frame, mean) on the same patches. The model is ViT-H/14 MAE at 224 px, 16
frames (the published `mae_hvm1_*` architecture), built on the meta device and given random weights (the
time does not depend on them); the clips are random normalised frames. Decoding is left out
(`bench_decode.py` and `bench_read_clips.py` time it).

Each precision runs `--warmup` windows, then `--windows` timed ones; the median is reported, and the ratio of
the fp32 median to the auto one. `auto` is what `hvm1.devices.resolve_precision` picks on this machine (bf16
where the CPU has bf16 matrix units, with the linear layers prepared as the command prepares them:
`hvm1.inference.prepare_for_inference`), so on a
machine without them both rows are fp32.

Writes benchmarks/results/bench_surprise.json (`results.write_result`).

Usage: python benchmarks/bench_surprise.py [--windows 5] [--warmup 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from results import Table, write_result

from hvm1.devices import keep_freed_memory, resolve_precision
from hvm1.eval.surprise import hidden_frames, window_losses
from hvm1.inference import prepare_for_inference
from hvm1.models import VideoMAE, build_model, get_config


def build_mae() -> VideoMAE:
    """ViT-H/14 MAE, 224 px, 16 frames, tubelet 2: built on the meta device, then given random weights."""
    config = get_config("mae_vit_huge_patch14", img_size=224, num_frames=16, t_patch_size=2, pred_t_dim=16)
    model = build_model(config, device="meta").to_empty(device="cpu")
    model.reset_parameters()
    return model.eval()


def time_windows(model: VideoMAE, precision, clips: list[torch.Tensor], warmup: int) -> list[float]:
    hidden = hidden_frames(model.config.num_frames, model.config.t_patch_size, None, "temporal")
    seconds = []
    for index, clip in enumerate(clips):
        start = time.perf_counter()
        window_losses(model, clip, hidden, precision)
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=5, help="timed windows per precision")
    parser.add_argument("--warmup", type=int, default=1, help="untimed windows first, per precision")
    args = parser.parse_args()
    keep_freed_memory()  # as the hvm1 command does
    torch.manual_seed(0)
    model = build_mae()
    clips = [torch.randn(3, 16, 224, 224) for _ in range(args.warmup + args.windows)]
    table = Table(
        "seconds per window of hvm1 surprise, ViT-H/14 MAE (224 px, 16 frames, 8 hidden), batch 1",
        ["precision", "runs as", "median s", "each window s"],
    )
    medians = {}
    for name in ("fp32", "auto"):  # fp32 first: preparing for bf16 changes the linear layers in place
        precision = resolve_precision(name, "cpu")
        prepare_for_inference(model, precision)  # as the command prepares its model
        seconds = time_windows(model, precision, clips, args.warmup)
        medians[name] = statistics.median(seconds)
        table.rows.append([name, precision.describe(), round(medians[name], 3), ", ".join(f"{s:.2f}" for s in seconds)])
        print(
            f"{name:>5} ({precision.describe()}: {precision.reason}): {medians[name]:.2f} s per window "
            f"(median of {len(seconds)}: {', '.join(f'{s:.2f}' for s in seconds)})"
        )
    summary = f"fp32 / auto: {medians['fp32'] / medians['auto']:.2f}x per window"
    print(summary)
    write_result("bench_surprise", [table], settings=vars(args), summary=[summary])


if __name__ == "__main__":
    main()
