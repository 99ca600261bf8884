"""Linear weights packed once in oneDNN's layout (`hvm1.inference.pack_linear_layers`) against the plain
layers, on the CPU, side by side in one process.

1. products   one linear layer of ViT-H/14's shapes (1280 x 1280, 1280 -> 5120, 5120 -> 1280) at 206 tokens
              (the MAE encoder at mask 0.9) and 2049 (a whole 16 x 224 clip): bf16 as autocast runs it
              (weights cast once, `F.linear`) against the packed bf16 weight, and float32 `F.linear` (MKL)
              against the packed float32 weight; GFLOP/s, median of --repeats, the two taking turns
2. forward    ViT-H/14 forward, 16 x 224 px, bf16 autocast: linear weights cast once against packed (the same
              model, the packed copies dropped and made again between turns); median of --rounds
3. first      a MAE-H/14 completion (mask 0.9, bf16 autocast) on a fresh model, three forwards in a row:
              float32 weights under autocast (the plain layers) against the weights packed at their first
              call (what `hvm1.inference.prepare_for_inference` sets up): what the first call costs and the later
              ones save; --rounds fresh models of each, taking turns

Usage: python benchmarks/bench_packing.py [--repeats 15] [--rounds 3] [--parts products,forward,first]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hvm1.devices import keep_freed_memory, resolve_precision
from hvm1.inference import can_pack_linear_weights, pack_linear_layers, prepare_for_inference, unpack_linear_layers
from hvm1.models import get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import cpu_description, random_model  # noqa: E402
from results import printed_result  # noqa: E402

SHAPES = ((1280, 1280), (1280, 5120), (5120, 1280))  # (in, out)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def products(repeats: int) -> None:
    print("products: GFLOP/s, median of", repeats, "(plain / packed, packed's gain)")
    with torch.inference_mode():
        for tokens in (206, 2049):
            for inputs, outputs in SHAPES:
                flops = 2 * tokens * inputs * outputs
                cells = []
                for dtype in (torch.bfloat16, torch.float32):
                    layer = pack_linear_layers(torch.nn.Linear(inputs, outputs).to(dtype), dtype)
                    x = torch.randn(1, tokens, inputs, dtype=dtype)
                    plain = lambda layer=layer, x=x: F.linear(x, layer.weight, layer.bias)  # noqa: E731
                    packed = lambda layer=layer, x=x: layer(x)  # noqa: E731
                    plain(), packed()  # warm-up; packs
                    times: dict[str, list[float]] = {"plain": [], "packed": []}
                    for _ in range(repeats):
                        times["plain"].append(_seconds(plain))
                        times["packed"].append(_seconds(packed))
                    rate = {k: flops / statistics.median(v) / 1e9 for k, v in times.items()}
                    name = "bf16" if dtype == torch.bfloat16 else "fp32"
                    cells.append(f"{name} {rate['plain']:5.0f} / {rate['packed']:5.0f} "
                                 f"({rate['packed'] / rate['plain'] - 1:+.0%})")
                print(f"  {tokens:5d} tokens, {inputs:4d} -> {outputs:4d}:  " + "   ".join(cells), flush=True)


def forward(rounds: int) -> None:
    bf16 = resolve_precision("bf16", "cpu")
    vit = random_model(get_config("vit_huge_patch14"))
    for module in vit.modules():  # the weights cast once: what the commands did before packing
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)
    video = torch.randn(1, 3, 16, 224, 224)
    times: dict[str, list[float]] = {"cast": [], "packed": []}
    with torch.inference_mode(), bf16.autocast("cpu"):
        vit(video)
        for _ in range(rounds):
            unpack_linear_layers(vit)
            times["cast"].append(_seconds(lambda: vit(video)))
            pack_linear_layers(vit, torch.bfloat16)
            vit(video)  # packs
            times["packed"].append(_seconds(lambda: vit(video)))
    cast, packed = statistics.median(times["cast"]), statistics.median(times["packed"])
    print(f"forward: ViT-H/14 bf16, weights cast {cast:.2f} s, packed {packed:.2f} s ({1 - packed / cast:.0%} "
          f"less); runs {', '.join(f'{a:.2f}/{b:.2f}' for a, b in zip(times['cast'], times['packed']))}")


def first(rounds: int) -> None:
    bf16 = resolve_precision("bf16", "cpu")
    config = get_config("mae_vit_huge_patch14")
    video = torch.randn(1, 3, 16, 224, 224)
    print("first: MAE-H/14 completion at mask 0.9, bf16, three forwards of a fresh model (s)")
    for _ in range(rounds):
        for mode in ("plain", "packed"):
            mae = random_model(config)
            if mode == "packed":
                prepare_for_inference(mae, bf16)
            with torch.inference_mode(), bf16.autocast("cpu"):
                seconds = [_seconds(lambda mae=mae: mae(video, mask_ratio=0.9, visualize=True)) for _ in range(3)]
            print(f"  {mode:<7} {', '.join(f'{s:.2f}' for s in seconds)}  (sum {sum(seconds):.2f})", flush=True)
            del mae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per product and mode")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the model comparisons")
    parser.add_argument("--parts", default="products,forward,first")
    args = parser.parse_args()
    if not (can_pack_linear_weights(torch.bfloat16) and can_pack_linear_weights(torch.float32)):
        print("skipped: this PyTorch build has no oneDNN to pack with")
        return
    keep_freed_memory()
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    parts = {"products": lambda: products(args.repeats), "forward": lambda: forward(args.rounds),
             "first": lambda: first(args.rounds)}
    for name in args.parts.split(","):
        parts[name]()


if __name__ == "__main__":
    with printed_result("bench_packing"):
        main()
