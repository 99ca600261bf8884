"""ViT-H/14 on a CUDA GPU: bf16 forward with SDPA's flash kernel at 224 and 448 px, the MAE pretraining step at
448 px as MFU, a center-0.5 completion, and peak memory against the README's computed table. Skips (exit 0,
with a message) where PyTorch sees no CUDA device.

Every figure is measured in this process, random weights (normal(0, 0.02)), batch as given:
  vit_forward_224 / _448   VideoViT forward, bf16 autocast, attention forced onto the flash kernel
                           (torch.nn.attention.sdpa_kernel(FLASH_ATTENTION)); fraction of the card's bf16 peak
  mae_step_448             one pretraining step as `hvm1 pretrain` runs it (bf16 autocast, mask ratio 0.95,
                           AdamW, gradient clipping 0.1), MFU = model FLOPs (3x the forward's matrix products)
                           / time / the bf16 peak; with and without --grad-checkpointing
  completion_448           VideoMAE center-0.5 completion (visualize=True), bf16 autocast
  peak memory              torch.cuda.max_memory_allocated per path, printed beside the README's figure for
                           the MAE step (weights + gradients + AdamW state + bf16 copies + activations of
                           --clips clips: 26 GB checkpointed / 59 GB plain at the published 32 clips per GPU)

The card's bf16 dense peak is taken from --peak-tflops, or from a small table of known cards by name
(H100 SXM 989, H100 PCIe 756, H200 989, A100 312, L40S 362, A10 125, RTX 4090 165); unknown cards print
the measured rate of a large bf16 matrix product as the reference instead.

Usage: python benchmarks/bench_gpu.py [--clips 4] [--repeats 5] [--peak-tflops T]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from hvm1.devices import resolve_precision
from hvm1.models import get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import mae_flops, vit_flops  # noqa: E402
from results import printed_result  # noqa: E402

KNOWN_PEAKS = {
    "H100 SXM": 989,
    "H100 80GB HBM3": 989,
    "H100 PCIe": 756,
    "H200": 989,
    "A100": 312,
    "L40S": 362,
    "A10": 125,
    "RTX 4090": 165,
}
# The README's computed per-GPU memory for MAE pretraining at 448 px (GB): fixed part and per clip.
README_MAE_FIXED_GB = 2.59 + 2.59 + 5.18 + 1.29
README_MAE_PER_CLIP_GB = {"plain": 1.48, "checkpointed": 0.44}


def card_peak(args) -> tuple[float | None, str]:
    if args.peak_tflops:
        return args.peak_tflops * 1e12, "given"
    name = torch.cuda.get_device_name()
    for key, tflops in KNOWN_PEAKS.items():
        if key in name:
            return tflops * 1e12, f"{key} table value"
    return None, "unknown card"


def bf16_matmul_rate(size: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - t0)


def random_cuda_model(config):
    from hvm1.models import build_model

    model = build_model(config, device="meta").to_empty(device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=generator)
    return model


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median seconds, peak GB allocated) of `fn` after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), torch.cuda.max_memory_allocated() / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="clips per forward / step (default 4)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak in TFLOP/s")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: skipped: this PyTorch build sees no CUDA GPU (nothing was measured)")
        return 0
    from torch.nn.attention import SDPBackend, sdpa_kernel

    peak, source = card_peak(args)
    measured = bf16_matmul_rate()
    reference = peak or measured
    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}; bf16 peak "
        f"{f'{peak / 1e12:.0f} TFLOP/s ({source})' if peak else 'unknown'}; 8192^3 bf16 product "
        f"{measured / 1e12:.0f} TFLOP/s; fractions against {'the peak' if peak else 'that product'}"
    )
    precision = resolve_precision("auto", "cuda")
    print(f"precision {precision.describe()} ({precision.reason})")
    n = args.clips
    print(f"{'path':<26} {'clips':>5} {'time s':>8} {'TFLOP/s':>8} {'fraction':>9} {'peak GB':>8}  README GB")

    def show(name, seconds, flops, peak_gb, readme=""):
        rate = flops / seconds
        print(f"{name:<26} {n:5d} {seconds:8.3f} {rate / 1e12:8.1f} {rate / reference:9.1%} {peak_gb:8.1f}  {readme}")

    for size in (224, 448):
        config = get_config("vit_huge_patch14", img_size=size)
        vit = random_cuda_model(config).eval()
        video = torch.randn(n, 3, 16, size, size, device="cuda")

        def forward(vit=vit, video=video):
            with torch.inference_mode(), precision.autocast("cuda"), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                vit(video)

        seconds, peak_gb = timed(forward, args.repeats)
        show(f"vit_forward_{size} (flash)", seconds, n * vit_flops(config), peak_gb)
        del vit, video
        torch.cuda.empty_cache()

    config = get_config("mae_vit_huge_patch14", img_size=448)
    for mode in ("plain", "checkpointed"):
        mae = random_cuda_model(config).train()
        mae.set_grad_checkpointing(mode == "checkpointed")
        optimizer = torch.optim.AdamW(mae.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
        video = torch.randn(n, 3, 16, 448, 448, device="cuda")

        def step(mae=mae, video=video, optimizer=optimizer):
            with precision.autocast("cuda"):
                loss = mae(video, mask_ratio=0.95)[0]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(mae.parameters(), 0.1)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        try:
            seconds, peak_gb = timed(step, args.repeats)
        except torch.OutOfMemoryError:
            print(f"mae_step_448 {mode}: out of memory at {n} clips")
        else:
            readme = README_MAE_FIXED_GB + n * README_MAE_PER_CLIP_GB[mode]
            show(
                f"mae_step_448 {mode} (MFU)",
                seconds,
                3 * n * mae_flops(config, 0.95),
                peak_gb,
                f"{readme:.1f} computed for {n} clips",
            )
        del mae, optimizer, video
        torch.cuda.empty_cache()

    mae = random_cuda_model(config).eval()
    video = torch.randn(n, 3, 16, 448, 448, device="cuda")

    def completion():
        with torch.inference_mode(), precision.autocast("cuda"):
            mae(video, mask_ratio=0.5, visualize=True, mask_type="center")

    seconds, peak_gb = timed(completion, args.repeats)
    show("completion_448 center-0.5", seconds, n * mae_flops(config, 0.5), peak_gb)
    return 0


if __name__ == "__main__":
    with printed_result("bench_gpu"):
        status = main()
    sys.exit(status)
