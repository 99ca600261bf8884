"""Parts of a CPU pretraining step, side by side in one process (`mae_vit_base_patch16`, 16 x 224 px, mask 0.9).

1. adamw     one AdamW step over the model's parameters with random gradients: the per-tensor loop (PyTorch's
             default on the CPU) against the fused kernel `hvm1.train.optim.make_optimizer` uses; milliseconds,
             median of --repeats, and the largest difference between the two after those steps
2. workers   `hvm1.train.pretrain` for 3 epochs on the real videos in tests/fixtures/videos (batch 2, one data
             worker, bf16 where `auto` picks it): the workers forked again at every epoch (the plain DataLoader
             arguments) against `hvm1.train.loop.worker_options` (persistent, spawned on the CPU); each step's
             seconds from metrics.jsonl, the first step of each epoch apart from the others
3. profile   one bare training step (forward, backward, fused AdamW; bf16 autocast, batch 2, random clips)
             under torch.profiler: the shares of attention's forward and backward, the matrix products and the
             optimizer in its self CPU time

Usage: python benchmarks/bench_train_parts.py [--parts adamw,workers,profile] [--repeats 6]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from results import write_result

from fixtures import VIDEOS

ARCH = "mae_vit_base_patch16"


def adamw(repeats: int) -> list[str]:
    from hvm1.models import build_model, get_config

    model = build_model(get_config(ARCH))
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=generator) * 1e-3 for p in model.parameters()]
    results, times = {}, {}
    for kind in ("loop", "fused"):
        params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
        for param, grad in zip(params, grads):
            param.grad = grad.clone()
        groups = [{"params": params[::2], "weight_decay": 0.05}, {"params": params[1::2], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), foreach=False, fused=kind == "fused")
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            optimizer.step()
            seconds.append(time.perf_counter() - start)
        results[kind], times[kind] = params, statistics.median(seconds[1:])
    diff = max((a - b).abs().max().item() for a, b in zip(results["loop"], results["fused"]))
    count = sum(p.numel() for p in model.parameters())
    line = (
        f"adamw: {count / 1e6:.1f} M parameters; loop {times['loop'] * 1e3:.0f} ms, fused "
        f"{times['fused'] * 1e3:.0f} ms a step ({times['loop'] / times['fused']:.1f}x); largest difference "
        f"after {repeats} steps {diff:.1e}"
    )
    print(line)
    return [line]


def workers() -> list[str]:
    from hvm1.train import PretrainConfig, loop, pretrain, read_metrics

    chosen = loop.worker_options
    plain = lambda num_workers, device: {"num_workers": num_workers}  # noqa: E731
    lines = [
        "workers: pretraining, 3 epochs of 2 steps, batch 2, 1 worker; step seconds (first of each epoch | others)"
    ]
    print(lines[0])
    for name, options in (("forked every epoch", plain), ("persistent, spawned", chosen)):
        loop.worker_options = options
        try:
            with tempfile.TemporaryDirectory() as out_dir:
                config = PretrainConfig(
                    out_dir=out_dir,
                    arch=ARCH,
                    epochs=3,
                    batch_size=2,
                    repeat_aug=1,
                    num_workers=1,
                    save_every=10**9,
                    tensorboard=False,
                    device="cpu",
                )
                start = time.perf_counter()
                pretrain(VIDEOS, config)
                total = time.perf_counter() - start
                records = read_metrics(out_dir)
        finally:
            loop.worker_options = chosen
        firsts = [r["step_s"] for r in records if r["step"] % 2 == 1][1:]  # the run's very first step left out
        others = [r["step_s"] for r in records if r["step"] % 2 == 0]
        lines.append(
            f"{name}: {', '.join(f'{s:.2f}' for s in firsts)} | {', '.join(f'{s:.2f}' for s in others)}"
            f" (whole run {total:.1f} s)"
        )
        print(f"  {lines[-1]}", flush=True)
    return lines


def profile() -> list[str]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from hvm1.devices import keep_freed_memory, resolve_precision
    from hvm1.models import build_model, get_config

    keep_freed_memory()
    torch.manual_seed(0)
    model = build_model(get_config(ARCH)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    video = torch.randn(2, 3, 16, 224, 224)
    precision = resolve_precision("auto", "cpu")

    def step() -> None:
        with precision.autocast("cpu"):
            loss = model(video, mask_ratio=0.9)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(), step()
    seconds = min(_timed(step) for _ in range(2))
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)

    def share(*keys: str, exclude: str = "\0") -> float:
        return (
            sum(e.self_cpu_time_total for e in events if any(k in e.key for k in keys) and exclude not in e.key) / total
        )

    line = (
        f"profile: one bare {precision.describe()} step, batch 2: {seconds:.2f} s; of its self CPU time "
        f"attention backward {share('flash_attention_for_cpu_backward'):.0%}, attention forward "
        f"{share('flash_attention_for_cpu', exclude='backward'):.0%}, matrix products "
        f"{share('aten::mm', 'aten::addmm', 'aten::bmm'):.0%}, AdamW {share('adamw'):.0%}, copies and casts "
        f"{share('aten::copy_'):.0%}"
    )
    print(line)
    return [line]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="adamw,workers,profile")
    parser.add_argument("--repeats", type=int, default=6, help="AdamW steps of each kind")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {ARCH}")
    summary = []
    for name in args.parts.split(","):
        if name == "workers" and not VIDEOS.is_dir():
            print(f"workers: skipped, {VIDEOS} not found")
            continue
        summary += {"adamw": lambda: adamw(args.repeats), "workers": workers, "profile": profile}[name]()
    write_result("bench_train_parts", [], settings=vars(args), summary=summary)


if __name__ == "__main__":
    main()
