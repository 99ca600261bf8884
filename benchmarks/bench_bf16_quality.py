"""How far bf16 results are from float32 ones: bf16 autocast and bf16 weights against float32, in one process.

For each model and path the same inputs run in float32 (the reference), under bf16 autocast (weights stay
float32, matrix products in bf16, LayerNorm / softmax / residual stream in float32) and with bf16 weights
(everything in bf16). Printed per path:
  rel_err   ||y - y_fp32|| / ||y_fp32|| over the whole output
  cos_min   the smallest cosine similarity of one clip's output with its float32 output
  top1      the fraction of clips whose arg-max class is the float32 one (logits only)
  psnr_dB   PSNR of the completed (masked-out) pixels against the float32 completion, pixels in [0, 1]
            after un-normalising (completion only)
  time_s    the path's time in this run (the machine may be shared: compare within a column only)

Models: the tiny reference models of tests/fixtures/reference (published-format checkpoints, 7-class head;
64 random clips plus the reference clips) and full-size random-weight ViT-H/14 (a 174-class head, as the
SSv2 models) and its MAE at 16 x 224 px (--clips random clips; normal(0, 0.02) weights, the scale of the
published initialisation).

Usage: python benchmarks/bench_bf16_quality.py [--clips 2] [--skip-huge]
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import hvm1
from hvm1.devices import cpu_bf16_units
from hvm1.models import get_config
from hvm1.viz import complete_clip
from hvm1.zoo import VIDEO_MEAN, VIDEO_STD

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import random_model  # noqa: E402
from results import Table, write_result  # noqa: E402

from fixtures import REFERENCE


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.double() - ref.double()).norm() / ref.double().norm())


def cos_min(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(y.double().flatten(1), ref.double().flatten(1), dim=1).min())


def top1(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.argmax(-1) == ref.argmax(-1)).double().mean())


def psnr(completion: torch.Tensor, ref: torch.Tensor, removed: torch.Tensor) -> float:
    """PSNR (dB) of the removed pixels of `completion` against `ref`, both (N, C, T, H, W) normalised."""
    mean = torch.tensor(VIDEO_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(VIDEO_STD).view(1, 3, 1, 1, 1)
    a = (completion * std + mean).clamp(0, 1)
    b = (ref * std + mean).clamp(0, 1)
    where = removed.unsqueeze(1).expand_as(a)  # (N, C, T, H, W)
    mse = float(((a - b)[where] ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def variants(model: torch.nn.Module):
    """(name, model, precision) for float32, bf16 autocast and bf16 weights."""
    return [
        ("fp32", model, "fp32"),
        ("bf16 autocast", model, "bf16"),
        ("bf16 weights", copy.deepcopy(model).to(torch.bfloat16), "fp32"),
    ]


def run_vit(vit, video: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(embeddings, logits, seconds): final-normed CLS token and the head's logits, float32 on the CPU."""
    from hvm1.devices import resolve_precision

    t0 = time.perf_counter()
    with torch.inference_mode(), resolve_precision(precision, "cpu").autocast("cpu"):
        features = vit.forward_features(video.to(next(vit.parameters()).dtype))
        embedding = vit.forward_head(features, pre_logits=True)
        logits = vit.forward_head(features)
    return embedding.float(), logits.float(), time.perf_counter() - t0


def run_completion(mae, video: torch.Tensor, precision: str):
    t0 = time.perf_counter()
    completion = complete_clip(mae, video, "center", 0.5, precision=precision)
    return completion, time.perf_counter() - t0


def report(label: str, vit, mae, video: torch.Tensor) -> Table:
    """Print each bf16 variant's distance from float32, and return it as a table."""
    print(f"\n{label}: {video.shape[0]} clips of {tuple(video.shape[1:])}")
    table = Table(
        f"{label}: {video.shape[0]} clips of {tuple(video.shape[1:])}, against float32",
        ["path", "variant", "rel_err", "cos_min", "top1", "psnr_dB", "time_s"],
    )
    print(f"  {'path':<22} {'variant':<14} {'rel_err':>9} {'cos_min':>9} {'top1':>6} {'psnr_dB':>8} {'time_s':>7}")
    ref = None
    for name, model, precision in variants(vit):
        embedding, logits, seconds = run_vit(model, video, precision)
        if ref is None:
            ref = (embedding, logits)
            continue
        print(
            f"  {'vit embedding (CLS)':<22} {name:<14} {rel_err(embedding, ref[0]):9.2e} "
            f"{cos_min(embedding, ref[0]):9.6f} {'':>6} {'':>8} {seconds:7.2f}"
        )
        table.rows.append(
            [
                "vit embedding (CLS)",
                name,
                f"{rel_err(embedding, ref[0]):.2e}",
                f"{cos_min(embedding, ref[0]):.6f}",
                "",
                "",
                round(seconds, 2),
            ]
        )
        print(
            f"  {'vit logits':<22} {name:<14} {rel_err(logits, ref[1]):9.2e} {cos_min(logits, ref[1]):9.6f} "
            f"{top1(logits, ref[1]):6.0%} {'':>8}"
        )
        table.rows.append(
            [
                "vit logits",
                name,
                f"{rel_err(logits, ref[1]):.2e}",
                f"{cos_min(logits, ref[1]):.6f}",
                f"{top1(logits, ref[1]):.0%}",
                "",
                "",
            ]
        )
    ref_completion = None
    for name, model, precision in variants(mae):
        completion, seconds = run_completion(model, video, precision)
        if ref_completion is None:
            ref_completion = completion
            continue
        masked = completion.removed
        print(
            f"  {'mae completion c0.5':<22} {name:<14} "
            f"{rel_err(completion.completion, ref_completion.completion):9.2e} "
            f"{cos_min(completion.completion, ref_completion.completion):9.6f} {'':>6} "
            f"{psnr(completion.completion, ref_completion.completion, masked):8.1f} {seconds:7.2f}"
        )
        print(
            f"  {'mae loss c0.5':<22} {name:<14} "
            f"{abs(completion.loss - ref_completion.loss) / abs(ref_completion.loss):9.2e}"
        )
        table.rows.append(
            [
                "mae completion c0.5",
                name,
                f"{rel_err(completion.completion, ref_completion.completion):.2e}",
                f"{cos_min(completion.completion, ref_completion.completion):.6f}",
                "",
                round(psnr(completion.completion, ref_completion.completion, masked), 1),
                round(seconds, 2),
            ]
        )
        table.rows.append(
            [
                "mae loss c0.5",
                name,
                f"{abs(completion.loss - ref_completion.loss) / abs(ref_completion.loss):.2e}",
                "",
                "",
                "",
                "",
            ]
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2, help="random clips through the full-size models")
    parser.add_argument("--skip-huge", action="store_true", help="only the tiny reference models")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU bf16 units: "
        f"{', '.join(cpu_bf16_units()) or 'none'}"
    )
    generator = torch.Generator().manual_seed(0)
    tables = []

    tiny = REFERENCE / "tiny"
    if (tiny / "mae_checkpoint.pth").is_file():
        heads = {"num_heads": 4, "decoder_num_heads": 4}
        vit = hvm1.load_model(tiny / "vit_checkpoint.pth", **heads)
        mae = hvm1.load_model(tiny / "mae_checkpoint.pth", **heads)
        reference_clips = torch.from_numpy(np.load(tiny / "expected.npz")["video"])
        video = torch.cat([reference_clips, torch.randn(64, *reference_clips.shape[1:], generator=generator)])
        tables.append(report("tiny reference models (width 64, depth 2, 8 x 56 px)", vit, mae, video))
    else:
        print(f"\n(no tiny reference models at {tiny}: skipped)")

    if not args.skip_huge:
        vit = random_model(get_config("vit_huge_patch14", num_classes=174))
        mae = random_model(get_config("mae_vit_huge_patch14"))
        video = torch.randn(args.clips, 3, 16, 224, 224, generator=generator)
        tables.append(report("ViT-H/14 and its MAE, random weights (16 x 224 px)", vit, mae, video))
    write_result("bench_bf16_quality", tables, settings=vars(args))


if __name__ == "__main__":
    main()
