"""How close each model path runs to the machine's float32 matrix-multiply roofline, measured in one process.

The roofline is the rate of 4096 x 4096 float32 matrix products on all cores (the median of repeated
products, so one lucky or unlucky product does not set it), measured right before and right after each path
and averaged (the machines are shared: a figure taken minutes apart would drift). FLOPs count 2 per multiply-add of
every matrix product: linear layers, patch embedding, attention's QK^T and AV; nothing else.

Paths (batch 1, random weights, ViT-H/14, 16 frames of 224 px, as published):
  vit_forward      VideoViT forward (logits-free encoder)
  mae_forward_0.9  VideoMAE forward, random masking at 0.9 (what pretraining runs)
  mae_center_0.5   VideoMAE forward with visualize=True, center masking at 0.5 (a completion)
Published code on a 2-core x86_64 dev machine: 88%, 58%, 75%. Targets: >= 90%, >= 70%, >= 85%.

Usage: python benchmarks/bench_models.py [--arch vit_huge_patch14] [--img-size 224] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hvm1.models import MAEConfig, build_model, get_config
from hvm1.models.masking import num_kept


def matmul_rate(size: int = 4096, repeats: int = 5) -> float:
    """Median float32 GFLOP/s of (size x size) @ (size x size) products on all cores."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        rates.append(2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def _block_flops(tokens: int, dim: int, hidden: int) -> int:
    projections = 4 * tokens * dim * dim  # q, k, v, proj
    attention = 2 * tokens * tokens * dim  # QK^T and AV over all heads
    mlp = 2 * tokens * dim * hidden
    return 2 * (projections + attention + mlp)


def vit_flops(cfg) -> int:
    """Matrix-product FLOPs of one ViT forward on one clip."""
    num_patches = cfg.num_patches
    patch = cfg.in_chans * cfg.t_patch_size * cfg.patch_size**2
    total = 2 * num_patches * patch * cfg.embed_dim
    total += cfg.depth * _block_flops(num_patches + 1, cfg.embed_dim, cfg.mlp_hidden_dim)
    return total + 2 * cfg.embed_dim * cfg.num_classes


def mae_flops(cfg: MAEConfig, mask_ratio: float) -> int:
    """Matrix-product FLOPs of one MAE forward on one clip (encoder on the kept tokens only)."""
    num_patches, kept = cfg.num_patches, num_kept(cfg.num_patches, mask_ratio)
    patch = cfg.in_chans * cfg.t_patch_size * cfg.patch_size**2
    dec, pred = cfg.decoder_embed_dim, cfg.pred_t_patch_size * cfg.patch_size**2 * cfg.in_chans
    total = 2 * kept * patch * cfg.embed_dim  # only the visible tubelets are embedded
    total += cfg.depth * _block_flops(kept + 1, cfg.embed_dim, cfg.mlp_hidden_dim)
    total += 2 * kept * cfg.embed_dim * dec
    total += cfg.decoder_depth * _block_flops(num_patches + 1, dec, int(dec * cfg.mlp_ratio))
    return total + 2 * (num_patches + 1) * dec * pred


def random_model(config):
    """A model with small random weights, without the slow published initialisation."""
    model = build_model(config, device="meta").to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=generator)
    return model.eval()


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="huge_patch14", help="size suffix of vit_* / mae_vit_* (default huge_patch14)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per path (best is kept)")
    args = parser.parse_args()

    vit_cfg = get_config(f"vit_{args.arch}", img_size=args.img_size)
    mae_cfg = get_config(f"mae_vit_{args.arch}", img_size=args.img_size)
    video = torch.randn(1, 3, vit_cfg.num_frames, args.img_size, args.img_size)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.arch} at {args.img_size} px, "
          f"{vit_cfg.num_frames} frames, batch 1")

    vit = random_model(vit_cfg)
    mae = random_model(mae_cfg)
    # Warm-up at the real shapes (first calls allocate and pick kernels).
    with torch.inference_mode():
        mae(video, mask_ratio=0.9)

    paths = [
        ("vit_forward", lambda: vit(video), vit_flops(vit_cfg), 0.90, 0.88),
        ("mae_forward_0.9", lambda: mae(video, mask_ratio=0.9), mae_flops(mae_cfg, 0.9), 0.70, 0.58),
        ("mae_center_0.5", lambda: mae(video, mask_ratio=0.5, visualize=True, mask_type="center"),
         mae_flops(mae_cfg, 0.5), 0.85, 0.75),
    ]
    print(f"{'path':<17} {'GFLOP':>8} {'time s':>8} {'GFLOP/s':>8} {'roofline':>9} {'fraction':>9} "
          f"{'target':>7} {'published':>9}")
    for name, fn, flops, target, published in paths:
        before = matmul_rate()
        seconds = timed(fn, args.repeats)
        roof = (before + matmul_rate()) / 2
        rate = flops / seconds / 1e9
        fraction = rate / roof
        verdict = "ok" if fraction >= target else "BELOW"
        print(f"{name:<17} {flops / 1e9:8.1f} {seconds:8.2f} {rate:8.1f} {roof:9.1f} {fraction:9.1%} "
              f"{target:7.0%} {published:9.0%}  {verdict}")


if __name__ == "__main__":
    main()
