"""How close each model path runs to the machine's matrix-multiply roofline, in float32 and in bf16, in one process.

Two rooflines: the rate of 4096 x 4096 matrix products on all cores in float32 and in bfloat16 (the median of
repeated products, so one lucky or unlucky product does not set it). Each timed run of a path is bracketed by
roofline measurements right before and right after it, in its own precision, and its fraction is taken
against their mean; the printed fraction is the median over `--repeats` such runs (the machines are shared:
a roofline taken minutes apart would drift). FLOPs count 2 per multiply-add of every matrix product: linear
layers, patch embedding, attention's QK^T and AV; nothing else.

Paths (batch 1, random weights, ViT-H/14, 16 frames of 224 px, as published), each in fp32 and in bf16
(autocast, what `--precision auto` runs on a CPU with bf16 units):
  vit_forward      VideoViT forward (logits-free encoder)
  mae_forward_0.9  VideoMAE forward, random masking at 0.9 (what pretraining runs)
  mae_center_0.5   VideoMAE forward with visualize=True, center masking at 0.5 (a completion)
Targets on AVX-512 machines: fp32 >= 90%, 80%, 90%; bf16 >= 75% (ViT forward, completion).

Like the `hvm1` command, the script keeps freed memory for reuse (`hvm1.devices.keep_freed_memory`) and
runs bf16 with the linear layers' weights prepared once, packed in oneDNN's layout
(`hvm1.inference.prepare_for_inference`);
`--default-malloc` measures glibc's default instead (run both to compare: the page faults column shows the
difference).

The `ceiling` column is the fraction a path could reach with this PyTorch's attention kernel: its attention
calls (`scaled_dot_product_attention` at the path's shapes, timed alone, in the same precision) as measured,
and every other matrix product at the roofline with nothing else taking any time. A target above the
ceiling cannot be met by work outside the attention kernel.

`--pack-fp32` also packs the float32 linear weights (`hvm1.inference.pack_linear_layers(model,
torch.float32)`, which the commands do not do: see the README's "Performance").

Usage: python benchmarks/bench_models.py [--repeats 3] [--precisions fp32,bf16] [--paths ...] [--default-malloc]
       [--pack-fp32]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from hvm1.devices import cpu_bf16_units, keep_freed_memory, resolve_precision
from hvm1.inference import pack_linear_layers, prepare_for_inference
from hvm1.models import MAEConfig, build_model, get_config
from hvm1.models.masking import num_kept

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import SPEED_FLAGS, Table, machine, write_result  # noqa: E402

# (name, fp32 target, bf16 target); None: no target.
TARGETS = {"vit_forward": (0.90, 0.75), "mae_forward_0.9": (0.80, None), "mae_center_0.5": (0.90, 0.75)}


def cpu_description() -> str:
    """The CPU model and which of the flags that decide matrix-product speed it has (Linux /proc/cpuinfo)."""
    info = machine()
    model, flags = info["cpu"], set(info["cpu_flags"])
    shown = " ".join(flag if flag in flags else f"-{flag}" for flag in SPEED_FLAGS)
    return f"{model}; {shown}; torch bf16 units: {', '.join(cpu_bf16_units()) or 'none'}"


def matmul_rate(size: int = 4096, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Median GFLOP/s of (size x size) @ (size x size) products in `dtype` on all cores."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
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


def attention_shapes(cfg, mask_ratio: float | None) -> list[tuple[int, int, int, int]]:
    """(calls, tokens, heads, head dim) of the attention calls of one forward: the ViT's blocks (mask_ratio
    None) or the MAE encoder's blocks on the kept tokens plus its decoder's on all of them."""
    if mask_ratio is None:
        return [(cfg.depth, cfg.num_patches + 1, cfg.num_heads, cfg.embed_dim // cfg.num_heads)]
    kept = num_kept(cfg.num_patches, mask_ratio)
    return [
        (cfg.depth, kept + 1, cfg.num_heads, cfg.embed_dim // cfg.num_heads),
        (cfg.decoder_depth, cfg.num_patches + 1, cfg.decoder_num_heads, cfg.decoder_embed_dim // cfg.decoder_num_heads),
    ]


def attention_seconds(shapes, dtype: torch.dtype, repeats: int = 3) -> float:
    """Wall time of the attention calls `shapes` (see `attention_shapes`) alone: batch 1, random q, k, v in
    `dtype`, each shape's median call times its count."""
    total = 0.0
    with torch.inference_mode():
        for calls, tokens, heads, dim in shapes:
            q, k, v = (torch.randn(1, heads, tokens, dim, dtype=dtype) for _ in range(3))
            torch.nn.functional.scaled_dot_product_attention(q, k, v)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                torch.nn.functional.scaled_dot_product_attention(q, k, v)
                times.append(time.perf_counter() - t0)
            total += calls * statistics.median(times)
    return total


def attention_flops(shapes) -> int:
    return sum(calls * 4 * tokens * tokens * heads * dim for calls, tokens, heads, dim in shapes)


def random_model(config):
    """A model with small random weights, without the slow published initialisation."""
    model = build_model(config, device="meta").to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=generator)
    return model.eval()


def timed(fn, precision) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode(), precision.autocast("cpu"):
        fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--arch", default="huge_patch14", help="size suffix of vit_* / mae_vit_* (default huge_patch14)"
    )
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path and precision (median kept)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated, of fp32, bf16")
    parser.add_argument("--paths", default=",".join(TARGETS), help="comma-separated, of " + ", ".join(TARGETS))
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc returning freed memory to the OS (the `hvm1` command keeps it for reuse)",
    )
    parser.add_argument("--pack-fp32", action="store_true", help="pack the float32 linear weights too")
    args = parser.parse_args()
    reuse = False if args.default_malloc else keep_freed_memory()

    vit_cfg = get_config(f"vit_{args.arch}", img_size=args.img_size)
    mae_cfg = get_config(f"mae_vit_{args.arch}", img_size=args.img_size)
    video = torch.randn(1, 3, vit_cfg.num_frames, args.img_size, args.img_size)
    print(f"CPU: {cpu_description()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.arch} at {args.img_size} px, "
        f"{vit_cfg.num_frames} frames, batch 1; freed memory {'reused' if reuse else 'returned to the OS'} "
        f"(faults: minor page faults per run)"
    )
    precisions = [resolve_precision(name, "cpu") for name in args.precisions.split(",")]
    roofs = {p.name: matmul_rate(dtype=p.dtype) for p in precisions}
    print("rooflines (4096^3 products): " + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in roofs.items()))

    vit = random_model(vit_cfg)
    mae = random_model(mae_cfg)
    paths = {
        "vit_forward": (lambda: vit(video), vit_flops(vit_cfg), attention_shapes(vit_cfg, None)),
        "mae_forward_0.9": (
            lambda: mae(video, mask_ratio=0.9),
            mae_flops(mae_cfg, 0.9),
            attention_shapes(mae_cfg, 0.9),
        ),
        "mae_center_0.5": (
            lambda: mae(video, mask_ratio=0.5, visualize=True, mask_type="center"),
            mae_flops(mae_cfg, 0.5),
            attention_shapes(mae_cfg, 0.5),
        ),
    }
    print(
        f"{'path':<17} {'prec':<5} {'GFLOP':>8} {'time s':>8} {'GFLOP/s':>8} {'roofline':>9} {'fraction':>9} "
        f"{'target':>7}        {'ceiling':>7} {'attn s':>7}  faults  (fractions of each run)"
    )
    table = Table(
        f"{args.arch} at {args.img_size} px, {vit_cfg.num_frames} frames, batch 1; medians of {args.repeats} "
        f"runs; fraction: of the roofline measured beside each run; ceiling: with attention's kernel as "
        f"measured alone and everything else at the roofline",
        [
            "path",
            "precision",
            "GFLOP",
            "time s",
            "GFLOP/s",
            "roofline GFLOP/s",
            "fraction",
            "target",
            "ceiling",
            "attention s",
            "page faults",
        ],
    )
    for precision in precisions:
        for model in (vit, mae):  # as the commands run them: linear weights prepared once (a no-op for fp32)
            prepare_for_inference(model, precision)
            if precision.is_float32 and args.pack_fp32:
                pack_linear_layers(model, torch.float32)
        for name in args.paths.split(","):
            fn, flops, shapes = paths[name]
            timed(fn, precision)  # warm-up at the real shapes (first calls allocate and pick kernels)
            seconds, roof, fractions, faults = [], [], [], 0
            for _ in range(args.repeats):
                before = matmul_rate(dtype=precision.dtype)
                faults -= resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                seconds.append(timed(fn, precision))
                faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                roof.append((before + matmul_rate(dtype=precision.dtype)) / 2)
                fractions.append(flops / seconds[-1] / 1e9 / roof[-1])
            faults /= args.repeats
            fraction = statistics.median(fractions)
            attention = attention_seconds(shapes, precision.dtype)
            rest = (flops - attention_flops(shapes)) / 1e9 / statistics.median(roof)
            ceiling = flops / 1e9 / statistics.median(roof) / (rest + attention)
            target = TARGETS[name][0 if precision.is_float32 else 1]
            verdict = "" if target is None else ("ok" if fraction >= target else "BELOW")
            shown = "-" if target is None else f"{target:.0%}"
            t, r = statistics.median(seconds), statistics.median(roof)
            print(
                f"{name:<17} {precision.name:<5} {flops / 1e9:8.1f} {t:8.2f} {flops / t / 1e9:8.1f} {r:9.1f} "
                f"{fraction:9.1%} {shown:>7}  {verdict:<5} {ceiling:7.1%} {attention:7.2f} {faults:7.0f}  "
                f"({', '.join(f'{f:.0%}' for f in fractions)})",
                flush=True,
            )
            table.rows.append(
                [
                    name,
                    precision.name,
                    round(flops / 1e9, 1),
                    round(t, 2),
                    round(flops / t / 1e9, 1),
                    round(r, 1),
                    f"{fraction:.1%}",
                    f"{shown} {verdict}".strip(),
                    f"{ceiling:.1%}",
                    round(attention, 2),
                    round(faults),
                ]
            )
    variant = (
        "bench_models" + ("-pack-fp32" if args.pack_fp32 else "") + ("-default-malloc" if args.default_malloc else "")
    )
    write_result(
        variant,
        [table],
        settings=vars(args),
        summary=[
            "rooflines (4096^3 products): " + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in roofs.items())
        ],
    )


if __name__ == "__main__":
    main()
