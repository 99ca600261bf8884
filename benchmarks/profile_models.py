"""Where the time of each model path goes, per op (torch.profiler), in float32 and in bf16 autocast.

Paths as in bench_models.py (ViT-H/14 forward, MAE forward at mask 0.9, center-0.5 completion; batch 1, 16
frames of 224 px, random weights). `--depth` cuts the encoder to fewer blocks (each block is the same work,
so the shares per op hold for the full 32; the MAE decoder keeps its 4). Prints, per path and precision, the
ops by self CPU time with their share of the path, and the share of matrix products (mm/addmm/bmm/linear
and SDPA's flash kernel) against everything else (copies, casts, GELU, LayerNorm, softmax, adds). Runs as
the commands do: freed memory kept for reuse, bf16 with the linear weights cast once.

Usage: python benchmarks/profile_models.py [--depth 8] [--top 12] [--paths vit,mae,complete] [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from hvm1.devices import keep_freed_memory, resolve_precision
from hvm1.models import get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import random_model  # noqa: E402

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
              "aten::_flash_attention_forward", "aten::_scaled_dot_product_flash_attention_for_cpu",
              "mkldnn", "onednn")


def profile_path(fn, precision: str, top: int) -> None:
    chosen = resolve_precision(precision, "cpu")
    with torch.inference_mode(), chosen.autocast("cpu"):
        fn()  # warm-up at the real shapes
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    matmul = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in MATMUL_OPS))
    print(f"  {chosen.describe()}: {total / 1e6:.2f} s of self CPU time; matrix products {matmul / total:.1%}, "
          f"the rest {1 - matmul / total:.1%}")
    for e in events[:top]:
        print(f"    {e.key:<52} {e.count:6d} calls {e.self_cpu_time_total / 1e3:10.1f} ms "
              f"{e.self_cpu_time_total / total:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=8, help="encoder blocks (default 8; ViT-H has 32)")
    parser.add_argument("--top", type=int, default=12, help="ops shown per path")
    parser.add_argument("--paths", default="vit,mae,complete")
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args()
    vit = random_model(get_config("vit_huge_patch14", depth=args.depth))
    mae = random_model(get_config("mae_vit_huge_patch14", depth=args.depth))
    video = torch.randn(1, 3, 16, 224, 224)
    paths = {
        "vit": ("ViT-H/14 forward", lambda: vit(video)),
        "mae": ("MAE forward, random mask 0.9", lambda: mae(video, mask_ratio=0.9)),
        "complete": ("MAE center-0.5 completion", lambda: mae(video, 0.5, visualize=True, mask_type="center")),
    }
    reuse = keep_freed_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; encoder depth {args.depth}; freed memory "
          f"{'reused' if reuse else 'returned to the OS'}")
    for precision in args.precisions.split(","):
        for model in (vit, mae):  # as the commands run them: linear weights cast once (a no-op for fp32)
            resolve_precision(precision, "cpu").cast_linear_weights(model)
        for key in args.paths.split(","):
            label, fn = paths[key]
            print(f"\n{label}")
            profile_path(fn, precision, args.top)


if __name__ == "__main__":
    main()
