"""Linear weights packed once in oneDNN's layout (`hvm1.inference.pack_linear_layers`) against the plain
layers, on the CPU, side by side in one process.

1. products   one linear layer of ViT-H/14's shapes (1280 x 1280, 1280 -> 5120, 5120 -> 1280) at 206 tokens
              (the MAE encoder at mask 0.9) and 2049 (a whole 16 x 224 clip): bf16 as autocast runs it
              (weights cast once, `F.linear`) against the packed bf16 weight, and float32 `F.linear` (MKL)
              against the packed float32 weight; GFLOP/s, median of --repeats, the two taking turns
2. forward    ViT-H/14 forward, 16 x 224 px, bf16 autocast: linear weights cast once against packed (the same
              model, the packed copies dropped and made again between turns); median of --rounds
3. first      claim: the first bf16 forward of a fresh model, which packs its weights, takes at most 1.5x a
              later one. A MAE-H/14 completion (mask 0.9, bf16 autocast), three forwards in a row, each mode in
              a fresh process (as the `hvm1` command starts: freed memory kept, large allocations on
              transparent huge pages) and the modes taking turns for --rounds:
                autocast       float32 weights under autocast, nothing packed (what packing saves later)
                first-use      the library's default: the first call packs every layer, one per core, one thread
                               each
                first-use-1    the same, one layer after another with the intra-op threads (the old cost)
                first-use-4k   the default without huge pages (THP_MEM_ALLOC_ENABLE=0): 4 KB page faults
                ahead          the commands' way: packing begins in the background when the model is prepared
                               (here the first forward follows at once, so there is nothing to hide it behind)
                now            packed up front by `prepare_for_inference(..., pack="now")` (its seconds apart)
              first / later = the first forward over the median of the next two; with `now`, the packing
              seconds are added to its first forward. --depth N builds the encoder with N blocks instead of
              32 (same widths), for a quick run on a shared machine.

4. costs      where a packing's time goes, for MAE-H/14's linear weights (random float32), each step in a fresh
              process on every core (one weight per thread, as `pack_layers` does): converting them to bf16 in
              new tensors, converting them into one reused scratch tensor per thread, reordering bf16 weights
              into oneDNN's layout alone, and the whole packing (`pack_now`); then, in a model packed up front,
              what each linear layer's first call costs against its third (oneDNN makes a primitive, with its
              JIT kernels, for each new shape); and a one-pass packing tried and not used: one 5120 x 1280
              weight copied from float32 straight into the packed tensor's memory through a view in oneDNN's
              AB16b32a2b layout (timed only where that is the layout oneDNN picks here, and only when its bytes
              equal oneDNN's), against the cast then the reorder, on one thread.

Usage: python benchmarks/bench_packing.py [--repeats 15] [--rounds 3] [--parts products,forward,first,costs]
       [--depth N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hvm1.devices import keep_freed_memory, resolve_precision
from hvm1.inference import (
    PackedLinear,
    PackingGroup,
    can_pack_linear_weights,
    pack_linear_layers,
    pack_now,
    prepare_for_inference,
    unpack_linear_layers,
)
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
                    cells.append(
                        f"{name} {rate['plain']:5.0f} / {rate['packed']:5.0f} "
                        f"({rate['packed'] / rate['plain'] - 1:+.0%})"
                    )
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
    print(
        f"forward: ViT-H/14 bf16, weights cast {cast:.2f} s, packed {packed:.2f} s ({1 - packed / cast:.0%} "
        f"less); runs {', '.join(f'{a:.2f}/{b:.2f}' for a, b in zip(times['cast'], times['packed']))}"
    )


FIRST_MODES = ("autocast", "first-use", "ahead", "first-use-1", "first-use-4k", "now")


def first_child(mode: str, depth: int) -> None:
    """In a fresh process: build a MAE-H/14 with random weights, prepare it as `mode` says and time three
    completions; print a JSON line (prepare seconds, forward seconds, page faults of each forward)."""
    import json
    import os
    import resource

    if mode == "first-use-4k":
        os.environ["THP_MEM_ALLOC_ENABLE"] = "0"
    keep_freed_memory()  # before any tensor: as the hvm1 command does
    bf16 = resolve_precision("bf16", "cpu")
    mae = random_model(get_config("mae_vit_huge_patch14", depth=depth))
    video = torch.randn(1, 3, 16, 224, 224)

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    start = time.perf_counter()
    if mode != "autocast":
        prepare_for_inference(mae, bf16, pack=mode if mode in ("now", "ahead") else "first_use")
        if mode == "first-use-1":
            for layer in mae.modules():
                if isinstance(layer, PackedLinear):
                    layer.group = PackingGroup([layer], 1)  # each packs alone, at its own first call
    prepare = time.perf_counter() - start
    seconds, faulted = [], []
    with torch.inference_mode(), bf16.autocast("cpu"):
        for _ in range(3):
            before = faults()
            seconds.append(_seconds(lambda: mae(video, mask_ratio=0.9, visualize=True)))
            faulted.append(faults() - before)
    print(json.dumps({"mode": mode, "prepare": prepare, "forwards": seconds, "faults": faulted}))


def first(rounds: int, depth: int) -> None:
    import json
    import subprocess

    print(
        f"first: MAE-H/14 ({depth} encoder blocks) completion at mask 0.9, bf16 autocast, three forwards of a "
        "fresh model, each mode in a fresh process (s)"
    )
    print(
        f"  {'mode':<13} {'prepare':>8} {'forward 1':>10} {'forward 2':>10} {'forward 3':>10} {'first/later':>12} "
        f"{'faults 1st':>11}"
    )
    ratios: dict[str, list[float]] = {}
    unpacked: list[float] = []  # `now`: its first forward alone (the packing left out) / a later one
    packing: list[float] = []  # `now`: the packing alone / a later forward
    bound: list[float] = []  # autocast's first forward / a later packed forward (first-use's), in one round
    for _ in range(rounds):
        autocast_first = packed_later = None  # this round's
        for mode in FIRST_MODES:
            command = [sys.executable, __file__, "--first-child", mode, "--depth", str(depth)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            later = statistics.median(run["forwards"][1:])
            ratio = (run["prepare"] + run["forwards"][0]) / later
            ratios.setdefault(mode, []).append(ratio)
            if mode == "autocast":
                autocast_first = run["forwards"][0]
            if mode == "first-use":
                packed_later = later
            if mode == "now":
                unpacked.append(run["forwards"][0] / later)
                packing.append(run["prepare"] / later)
            print(
                f"  {mode:<13} {run['prepare']:>8.2f} "
                + " ".join(f"{s:>10.2f}" for s in run["forwards"])
                + f" {ratio:>11.2f}x {run['faults'][0]:>11d}",
                flush=True,
            )
        if autocast_first is not None and packed_later is not None:
            bound.append(autocast_first / packed_later)
    for mode, values in ratios.items():
        print(
            f"{mode}: first forward (with any packing up front) / a later one: "
            + ", ".join(f"{value:.2f}x" for value in values)
            + f" (median {statistics.median(values):.2f}x)"
        )
    autocast = statistics.median(ratios["autocast"])
    default = statistics.median(ratios["first-use"])
    ahead = statistics.median(ratios["ahead"])
    print(
        f"claim: the first forward packing at first use is {default:.2f}x a later one, packing ahead with nothing "
        f"to do meanwhile {ahead:.2f}x (target at most 1.5x; the commands pack ahead while decoding their first "
        "video: bench_complete.py measures that)"
    )
    print(
        f"floor: packed up front, the first forward alone is {statistics.median(unpacked):.2f}x a later one, and "
        f"the packing alone {statistics.median(packing):.2f}x a later forward; a fresh model's first forward "
        f"without packing (autocast) is {autocast:.2f}x its own later ones"
    )
    if bound:
        print(
            "bound: a fresh model's first forward that packs nothing (autocast casts and oneDNN reorders each "
            f"weight inside the call, keeping nothing) is {statistics.median(bound):.2f}x a later packed forward "
            "(median over rounds): what any packing that happens inside the first call starts from"
        )


COST_STEPS = ("cast-new", "cast-scratch", "reorder", "pack")


def costs_child(step: str) -> None:
    """In a fresh process: one step of packing MAE-H/14's linear weights (see part 4); print its seconds (JSON)."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    keep_freed_memory()
    mae = random_model(get_config("mae_vit_huge_patch14"))
    weights = [m.weight.detach() for m in mae.modules() if isinstance(m, torch.nn.Linear)]
    if step == "pack":
        prepare_for_inference(mae, resolve_precision("bf16", "cpu"))
        seconds = _seconds(lambda: pack_now(mae))
    else:
        if step == "reorder":
            weights = [w.to(torch.bfloat16) for w in weights]  # before the clock
        largest = max(w.numel() for w in weights)
        scratch = threading.local()

        def convert(weight: torch.Tensor) -> torch.Tensor:
            if step == "cast-new":
                return weight.to(torch.bfloat16)
            if step == "reorder":
                return torch.ops.mkldnn._reorder_linear_weight(weight, None)
            if not hasattr(scratch, "tensor"):
                scratch.tensor = torch.empty(largest, dtype=torch.bfloat16)
            return scratch.tensor[: weight.numel()].view(weight.shape).copy_(weight)

        workers = torch.get_num_threads()
        torch.set_num_threads(1)  # each thread converts whole weights, as pack_layers does
        with ThreadPoolExecutor(workers) as pool:
            results: list[torch.Tensor] = []
            seconds = _seconds(lambda: results.extend(pool.map(convert, weights)))
    print(json.dumps({"step": step, "seconds": seconds}))


def costs(rounds: int) -> None:
    import json
    import subprocess

    print(f"costs: MAE-H/14's linear weights, each step in a fresh process on every core (s; median of {rounds})")
    for step in COST_STEPS:
        values = []
        for _ in range(rounds):
            command = [sys.executable, __file__, "--costs-child", step]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            values.append(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
        label = {
            "cast-new": "float32 -> bf16, new tensors",
            "cast-scratch": "float32 -> bf16, one reused scratch per thread",
            "reorder": "bf16 -> oneDNN's layout (new memory)",
            "pack": "the packing (pack_now: scratch cast, then reorder)",
        }[step]
        print(f"  {label:<52} {statistics.median(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})")
    first_calls()
    one_pass()


def first_calls() -> None:
    """A MAE-H/14 packed up front: each linear layer's first call against its third, over three completions."""
    bf16 = resolve_precision("bf16", "cpu")
    mae = random_model(get_config("mae_vit_huge_patch14"))
    prepare_for_inference(mae, bf16, pack="now")
    started: dict[str, float] = {}
    calls: dict[str, list[float]] = {}
    for name, layer in mae.named_modules():
        if isinstance(layer, PackedLinear):
            layer.register_forward_pre_hook(lambda m, a, n=name: started.__setitem__(n, time.perf_counter()))
            layer.register_forward_hook(
                lambda m, a, o, n=name: calls.setdefault(n, []).append(time.perf_counter() - started[n])
            )
    video = torch.randn(1, 3, 16, 224, 224)
    with torch.inference_mode(), bf16.autocast("cpu"):
        forwards = [_seconds(lambda: mae(video, mask_ratio=0.9, visualize=True)) for _ in range(3)]
    totals = [sum(times[i] for times in calls.values()) for i in range(3)]
    print(
        "first calls: a MAE-H/14 packed up front, completions at mask 0.9: forwards "
        + ", ".join(f"{s:.3f}" for s in forwards)
        + " s; its linear layers "
        + ", ".join(f"{s:.3f}" for s in totals)
        + " s"
    )
    slowest = sorted(calls.items(), key=lambda item: item[1][2] - item[1][0])[:6]
    for name, times in slowest:
        print(f"  {name:<34} first call {times[0] * 1e3:6.1f} ms, third {times[2] * 1e3:5.1f} ms")


def one_pass(repeats: int = 10) -> None:
    """The one-pass packing tried and not used (see part 4), on one thread."""
    import ctypes

    from hvm1.inference import pack_weight

    def memory(packed: torch.Tensor) -> torch.Tensor:  # the packed tensor's bytes, as a plain bf16 tensor
        size = torch.ops.mkldnn._nbytes(packed)
        buffer = (ctypes.c_uint8 * size).from_address(torch.ops.mkldnn.data_ptr(packed))
        return torch.frombuffer(buffer, dtype=torch.bfloat16)

    rows, cols = 5120, 1280
    weight = torch.randn(rows, cols)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = pack_weight(weight, torch.bfloat16)
        packed = pack_weight(torch.zeros(rows, cols), torch.bfloat16)
        if torch.ops.mkldnn._nbytes(packed) != rows * cols * 2:
            print("one pass: the packed weight is padded here; not timed")
            return
        view = memory(packed).view(rows // 32, cols // 32, 16, 32, 2)
        source = weight.view(rows // 32, 32, cols // 32, 16, 2).permute(0, 2, 3, 1, 4)

        def copy() -> None:
            view.copy_(source)

        copy()
        if not torch.equal(memory(packed), memory(reference)):
            print("one pass: oneDNN's layout here is not AB16b32a2b; not timed")
            return
        both = {"one pass": copy, "cast then reorder": lambda: pack_weight(weight, torch.bfloat16)}
        medians = {name: statistics.median(_seconds(fn) for _ in range(repeats)) for name, fn in both.items()}
    finally:
        torch.set_num_threads(threads)
    print(
        f"one pass: a {rows} x {cols} weight, float32 straight into the packed memory (same bytes as oneDNN's) "
        f"{medians['one pass'] * 1e3:.1f} ms, cast then reorder {medians['cast then reorder'] * 1e3:.1f} ms "
        f"({medians['one pass'] / medians['cast then reorder']:.2f}x), one thread, median of {repeats}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per product and mode")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the model comparisons")
    parser.add_argument("--parts", default="products,forward,first,costs")
    parser.add_argument("--depth", type=int, default=32, help="the MAE's encoder blocks in part first (default 32)")
    parser.add_argument("--first-child", metavar="MODE", choices=FIRST_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--costs-child", metavar="STEP", choices=COST_STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_child:
        first_child(args.first_child, args.depth)
        return
    if args.costs_child:
        costs_child(args.costs_child)
        return
    if not (can_pack_linear_weights(torch.bfloat16) and can_pack_linear_weights(torch.float32)):
        print("skipped: this PyTorch build has no oneDNN to pack with")
        return
    keep_freed_memory()
    parts = {
        "products": lambda: products(args.repeats),
        "forward": lambda: forward(args.rounds),
        "first": lambda: first(args.rounds, args.depth),
        "costs": lambda: costs(args.rounds),
    }
    chosen = args.parts.split(",")
    # A run of some parts only, or of a smaller model, writes a variant of the result file.
    variant = "" if set(chosen) == set(parts) else "-" + "-".join(chosen)
    variant += "" if args.depth == 32 else f"-depth{args.depth}"
    with printed_result(f"bench_packing{variant}", vars(args)):
        print(f"CPU: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
        for name in chosen:
            parts[name]()


if __name__ == "__main__":
    main()
