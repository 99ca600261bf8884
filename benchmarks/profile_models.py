"""Where the time of each model path goes, per op (torch.profiler), in float32 and in bf16 autocast.

Paths as in bench_models.py (ViT-H/14 forward, MAE forward at mask 0.9, center-0.5 completion; batch 1, 16
frames of 224 px, random weights). `--depth` cuts the encoder to fewer blocks (each block is the same work,
so the shares per op hold for the full 32; the MAE decoder keeps its 4). Prints, per path and precision, the
ops by self CPU time with their share of the path, and the share of matrix products (mm/addmm/bmm/linear
and SDPA's flash kernel) against everything else (copies, casts, GELU, LayerNorm, softmax, adds). Runs as
the commands do: freed memory kept for reuse, bf16 with the linear weights packed once
(`hvm1.inference.prepare_for_inference`).

`--block` instead times each step of one ViT-H/14 block at 2049 tokens by wall clock (LayerNorms, the input
cast, q, k, v, attention, proj, the residual adds, fc1, GELU, fc2; median of `--repeats`), with each step's
matrix-product rate where it has one, and sweeps the attention's head dimension at the same tokens and heads:
attention time grows linearly with the head dimension, and what it would take at head dimension 0 is the work
that does not depend on it (the softmax over every query-key score, and the kernel's bookkeeping).

`--attention` instead compares SDPA with attention written as two matrix products and a softmax, at ViT-H's 16
heads of 80 channels and 103, 206, 1025 and 2049 tokens: forward alone (inference) and forward + backward
(training), milliseconds (median of `--repeats`), and each one's relative error against float32 SDPA.

Usage: python benchmarks/profile_models.py [--depth 8] [--top 12] [--paths vit,mae,complete] [--precisions fp32,bf16]
       python benchmarks/profile_models.py --block [--tokens 2049] [--repeats 10] [--precisions fp32,bf16]
       python benchmarks/profile_models.py --attention [--repeats 10] [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from hvm1.devices import keep_freed_memory, resolve_precision
from hvm1.inference import prepare_for_inference
from hvm1.models import get_config
from hvm1.models.layers import Block

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import random_model  # noqa: E402
from results import printed_result  # noqa: E402

MATMUL_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::matmul",
    "aten::linear",
    "aten::_flash_attention_forward",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "mkldnn",
    "onednn",
)


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
    print(
        f"  {chosen.describe()}: {total / 1e6:.2f} s of self CPU time; matrix products {matmul / total:.1%}, "
        f"the rest {1 - matmul / total:.1%}"
    )
    for e in events[:top]:
        print(
            f"    {e.key:<52} {e.count:6d} calls {e.self_cpu_time_total / 1e3:10.1f} ms "
            f"{e.self_cpu_time_total / total:6.1%}"
        )


_sdpa = torch.nn.functional.scaled_dot_product_attention


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def profile_block(precision: str, repeats: int, tokens: int = 2049) -> None:
    """Wall time of each step of one ViT-H/14 block (see the module docstring), then the head-dimension sweep."""
    chosen = resolve_precision(precision, "cpu")
    cfg = get_config("vit_huge_patch14")
    dim, heads = cfg.embed_dim, cfg.num_heads
    block = Block(dim, heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.layer_norm_eps).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.02, generator=generator)
    block = prepare_for_inference(block, chosen)
    attn, mlp = block.attn, block.mlp
    x = torch.randn(1, tokens, dim)
    with torch.inference_mode(), chosen.autocast("cpu"):
        h1 = block.norm1(x)
        q, k, v = (attn._heads(layer(h1)) for layer in (attn.q, attn.k, attn.v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=attn.scale)
        out = out.transpose(1, 2).reshape(1, tokens, dim)
        proj = attn.proj(out)
        y = x + proj
        h2 = block.norm2(y)
        f1 = mlp.fc1(h2)
        g = torch.nn.functional.gelu(f1)
        f2 = mlp.fc2(g)
        product = 2 * tokens * dim
        steps = [
            ("norm1", lambda: block.norm1(x), 0),
            ("cast to product dtype", lambda: h2.to(chosen.dtype), 0),
            ("q", lambda: attn.q(h1), product * dim),
            ("k", lambda: attn.k(h1), product * dim),
            ("v", lambda: attn.v(h1), product * dim),
            (
                "attention (SDPA)",
                lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=attn.scale),
                4 * tokens * tokens * dim,
            ),
            ("proj", lambda: attn.proj(out), product * dim),
            ("residual add 1", lambda: x + proj, 0),
            ("norm2", lambda: block.norm2(y), 0),
            ("fc1", lambda: mlp.fc1(h2), product * 4 * dim),
            ("GELU", lambda: torch.nn.functional.gelu(f1), 0),
            ("fc2", lambda: mlp.fc2(g), product * 4 * dim),
            ("residual add 2", lambda: y + f2, 0),
        ]
        whole = _median_ms(lambda: block(x), repeats)
        times = [(name, _median_ms(fn, repeats), flops) for name, fn, flops in steps]
        dims = (32, 64, 96, 128)
        sweep = []
        for d in dims:
            qd, kd, vd = (torch.randn(1, heads, tokens, d, dtype=chosen.dtype) for _ in range(3))
            sweep.append(_median_ms(lambda qd=qd, kd=kd, vd=vd: _sdpa(qd, kd, vd), repeats))
    print(
        f"\none ViT-H/14 block, {tokens} tokens, {chosen.describe()}: {whole:.1f} ms the whole block, "
        f"{sum(t for _, t, _ in times):.1f} ms the steps one by one"
    )
    for name, ms, flops in times:
        rate = f"{flops / ms / 1e6:8.0f} GFLOP/s" if flops else ""
        print(f"    {name:<24} {ms:8.2f} ms {ms / whole:6.1%}  {rate}")
    slope = statistics.linear_regression(dims, sweep).slope
    intercept = statistics.linear_regression(dims, sweep).intercept
    print(
        f"  attention at {tokens} tokens x {heads} heads by head dimension: "
        + ", ".join(f"{d}: {ms:.1f} ms" for d, ms in zip(dims, sweep))
        + f"; fitted {intercept:.1f} ms + {slope:.3f} ms per dimension: {intercept:.1f} ms "
        f"({intercept / sweep[1]:.0%} of head dimension 64's) does not depend on it"
    )


def _explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return torch.matmul(scores.softmax(dim=-1), v)


def compare_attention(precision: str, repeats: int) -> None:
    """SDPA against explicit attention (see the module docstring)."""
    dtype = resolve_precision(precision, "cpu").dtype
    print(f"\nattention, {precision}, 16 heads x 80: ms (relative error against float32 SDPA)")
    for tokens in (103, 206, 1025, 2049):
        generator = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 16, tokens, 80, generator=generator) for _ in range(3))
        reference = _sdpa(q, k, v)
        cells = []
        for name, fn in (("sdpa", _sdpa), ("explicit", _explicit_attention)):
            ql, kl, vl = (t.to(dtype) for t in (q, k, v))
            with torch.inference_mode():
                forward_ms = _median_ms(lambda fn=fn, ql=ql, kl=kl, vl=vl: fn(ql, kl, vl), repeats)
                error = ((fn(ql, kl, vl).float() - reference).norm() / reference.norm()).item()
            qg, kg, vg = (t.detach().requires_grad_(True) for t in (ql, kl, vl))
            grad = torch.ones_like(qg)
            both_ms = _median_ms(
                lambda fn=fn, qg=qg, kg=kg, vg=vg, grad=grad: fn(qg, kg, vg).backward(grad), max(3, repeats // 3)
            )
            cells.append(f"{name} forward {forward_ms:7.2f}, with backward {both_ms:7.2f} ({error:.1e})")
        print(f"  {tokens:5d} tokens: " + ";  ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=8, help="encoder blocks (default 8; ViT-H has 32)")
    parser.add_argument("--top", type=int, default=12, help="ops shown per path")
    parser.add_argument("--paths", default="vit,mae,complete")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--block", action="store_true", help="time the steps of one block instead (see above)")
    parser.add_argument("--attention", action="store_true", help="compare SDPA with explicit attention instead")
    parser.add_argument(
        "--tokens",
        type=int,
        default=2049,
        help="with --block: tokens (2049: a 16 x 224 clip; 206: the MAE encoder at mask 0.9)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="with --block or --attention: timed runs (median)")
    args = parser.parse_args()
    if args.attention:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        for precision in args.precisions.split(","):
            compare_attention(precision, args.repeats)
        return
    if args.block:
        keep_freed_memory()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        for precision in args.precisions.split(","):
            profile_block(precision, args.repeats, args.tokens)
        return
    vit = random_model(get_config("vit_huge_patch14", depth=args.depth))
    mae = random_model(get_config("mae_vit_huge_patch14", depth=args.depth))
    video = torch.randn(1, 3, 16, 224, 224)
    paths = {
        "vit": ("ViT-H/14 forward", lambda: vit(video)),
        "mae": ("MAE forward, random mask 0.9", lambda: mae(video, mask_ratio=0.9)),
        "complete": ("MAE center-0.5 completion", lambda: mae(video, 0.5, visualize=True, mask_type="center")),
    }
    reuse = keep_freed_memory()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; encoder depth {args.depth}; freed memory "
        f"{'reused' if reuse else 'returned to the OS'}"
    )
    for precision in args.precisions.split(","):
        for model in (vit, mae):  # as the commands run them: linear weights prepared once (a no-op for fp32)
            prepare_for_inference(model, resolve_precision(precision, "cpu"))
        for key in args.paths.split(","):
            label, fn = paths[key]
            print(f"\n{label}")
            profile_path(fn, precision, args.top)


if __name__ == "__main__":
    variant = "-block" if "--block" in sys.argv else "-attention" if "--attention" in sys.argv else ""
    with printed_result("profile_models" + variant):
        main()
