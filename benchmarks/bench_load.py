"""Claim: loading `mae_hvm1_none` holds at most 1.2x its weights in peak memory and takes at most 1/8 of the
time of the published loader, on a full-size checkpoint in the published format.

    python benchmarks/bench_load.py [FOLDER] [--keep]

Writes a published-format training checkpoint of the `mae_hvm1_none` architecture into FOLDER (default: a new
temporary folder under /tmp; skipped with a message when it has less than 10 GB free): random float32 weights
of the published shapes (from the test data: tests/fixtures/reference/vith14_state_dict_shapes.json) plus AdamW state
for every
parameter, `epoch`, `scaler` and an `argparse.Namespace` of training arguments. Then it loads the file in two
fresh processes, so each peak RSS is that loader's alone:
- published: `torch.load(weights_only=False)` of the whole file, build the model normally (random
  initialisation on CPU), `load_state_dict(strict=True)`, as the published `load_model` does;
- hvm1: `hvm1.load_model(path)`.
Peak RSS is the child's VmHWM; load time is the call alone (imports excluded). After loading, each child
touches every page of the weights (timed: hvm1's stay memory-mapped until first read) and sums them (a
checksum, which must agree between the two), so the peak RSS counts a model that is fully in memory, not
lazily mapped pages. The file is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from results import Table, write_result

# The published state-dict shapes, in the test data (tests/reference_data.py: REFERENCE); a plain path, so that
# the measured loader processes import nothing more than they need.
SHAPES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference" / "vith14_state_dict_shapes.json"
ARCHITECTURE = "mae@224"  # the architecture of mae_hvm1_none
MIN_FREE_BYTES = 10 * 10**9
GB = 10**9


def write_published_checkpoint(path: Path, shapes: dict[str, list[int]]) -> int:
    """Write a published-format checkpoint with random weights of `shapes`; returns the weights' bytes."""
    generator = torch.Generator().manual_seed(0)
    model = {key: torch.randn(shape, generator=generator) * 0.02 for key, shape in shapes.items()}
    # AdamW moments of every parameter. Their values never matter to a loader (hvm1 never reads them, the
    # published path copies them whole), so they are left uninitialised: the writer then holds only the weights.
    state = {
        index: {"step": torch.tensor(1000.0), "exp_avg": torch.empty(shape), "exp_avg_sq": torch.empty(shape)}
        for index, shape in enumerate(shapes.values())
    }
    optimizer = {
        "state": state,
        "param_groups": [
            {
                "lr": 1e-5,
                "betas": (0.9, 0.95),
                "eps": 1e-8,
                "weight_decay": 0.05,
                "amsgrad": False,
                "maximize": False,
                "foreach": None,
                "capturable": False,
                "differentiable": False,
                "fused": None,
                "params": list(range(len(shapes))),
            }
        ],
    }
    args = argparse.Namespace(
        model="mae_vit_huge_patch14",
        batch_size=4,
        accum_iter=1,
        epochs=100000,
        input_size=224,
        num_frames=16,
        t_patch_size=2,
        pred_t_dim=16,
        sampling_rate=8,
        repeat_aug=16,
        mask_ratio=0.9,
        norm_pix_loss=False,
        sep_pos_embed=True,
        cls_embed=True,
        lr=1e-4,
        weight_decay=0.05,
        clip_grad=0.1,
        num_workers=16,
        output_dir="./outputs",
        seed=0,
        resume="",
        start_epoch=0,
        world_size=4,
        dist_url="env://",
    )
    scaler = {
        "scale": 65536.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 0,
    }
    torch.save({"model": model, "optimizer": optimizer, "epoch": 41, "scaler": scaler, "args": args}, path)
    return sum(t.numel() * t.element_size() for t in model.values())


def scratch_folder(folder: Path | None, prefix: str) -> Path | None:
    """The folder to write a full-size checkpoint into (a new one under /tmp named `prefix...` when `folder` is
    None), or None after printing why the benchmark is skipped: less than 10 GB free (a new folder is removed)."""
    made = folder is None
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")) if made else folder
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free >= MIN_FREE_BYTES:
        return folder
    print(f"skipped: {folder} has {free / GB:.1f} GB free, the benchmark needs {MIN_FREE_BYTES / GB:.0f} GB")
    if made:
        folder.rmdir()
    return None


def load_published(path: Path) -> torch.nn.Module:
    """The published loader: unpickle everything into memory, random-init the model, copy the weights in."""
    from hvm1.models import create_model

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = create_model("mae_vit_huge_patch14")
    model.load_state_dict(checkpoint["model"], strict=True)
    return model.eval()


def load_hvm1(path: Path) -> torch.nn.Module:
    import hvm1

    return hvm1.load_model(path)


LOADERS = {"published": load_published, "hvm1": load_hvm1}


def peak_rss() -> int:
    """This process's peak resident memory in bytes. VmHWM, not `ru_maxrss`: the latter survives exec, so a
    child spawned by a big parent would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # no /proc: kB on Linux, an upper bound


def measure(loader: str, path: Path) -> None:
    """In a child process: load, read every weight, print seconds, peak RSS and the checksum as one JSON line."""
    start = time.perf_counter()
    model = LOADERS[loader](path)
    seconds = time.perf_counter() - start
    tensors = list(model.state_dict().values())
    for tensor in tensors:  # one float per 4 KiB page: the cost of bringing every weight into memory
        float(tensor.reshape(-1)[::1024].sum())
    read_seconds = time.perf_counter() - start - seconds
    checksum = sum(float(t.sum(dtype=torch.float64)) for t in tensors)
    print(json.dumps({"seconds": seconds, "read_seconds": read_seconds, "peak_rss": peak_rss(), "checksum": checksum}))


def run_child(loader: str, path: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--measure", loader, str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"the {loader} loader failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="where to write the ~7.7 GB checkpoint")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint file afterwards")
    parser.add_argument("--measure", nargs=2, metavar=("LOADER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], Path(args.measure[1]))
        return 0
    if not SHAPES.is_file():
        print(f"skipped: the published shapes are not at {SHAPES} (the test data of the repository)")
        return 0
    made_folder = args.folder is None
    folder = scratch_folder(args.folder, "hvm1-bench-load-")
    if folder is None:
        return 0
    path = folder / "hvm1_none.pth"
    try:
        start = time.perf_counter()
        weights = write_published_checkpoint(path, json.loads(SHAPES.read_text())[ARCHITECTURE])
        file_size = path.stat().st_size
        print(
            f"wrote {path}: {file_size / GB:.2f} GB file, {weights / GB:.2f} GB of float32 weights "
            f"({time.perf_counter() - start:.0f} s)"
        )
        published = run_child("published", path)
        ours = run_child("hvm1", path)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            if made_folder:
                shutil.rmtree(folder, ignore_errors=True)
    if abs(published["checksum"] - ours["checksum"]) > 1e-6 * max(1.0, abs(published["checksum"])):
        raise SystemExit(f"the loaders disagree: checksums {published['checksum']} and {ours['checksum']}")
    print(f"{'loader':<10} {'load s':>8} {'+ read all s':>13} {'peak RSS GB':>12} {'RSS / weights':>14}")
    for name, result in (("published", published), ("hvm1", ours)):
        print(
            f"{name:<10} {result['seconds']:>8.2f} {result['read_seconds']:>13.2f} "
            f"{result['peak_rss'] / GB:>12.2f} {result['peak_rss'] / weights:>13.2f}x"
        )
    rss_ratio = ours["peak_rss"] / weights
    speedup = published["seconds"] / ours["seconds"]
    # hvm1's weights stay memory-mapped until first read; count that read too, for a fair second figure.
    speedup_read = (published["seconds"] + published["read_seconds"]) / (ours["seconds"] + ours["read_seconds"])
    summary = (
        f"hvm1 peak RSS {rss_ratio:.2f}x the weights (target <= 1.2x: {'met' if rss_ratio <= 1.2 else 'NOT met'}); "
        f"load {speedup:.1f}x faster than published (target >= 8x: {'met' if speedup >= 8 else 'NOT met'}), "
        f"{speedup_read:.1f}x counting the first read of every weight"
    )
    print(summary)
    table = Table(
        f"loading a {file_size / GB:.2f} GB published-format file ({weights / GB:.2f} GB of weights)",
        ["loader", "load s", "+ read all s", "peak RSS GB", "RSS / weights"],
        [
            [
                name,
                round(result["seconds"], 2),
                round(result["read_seconds"], 2),
                round(result["peak_rss"] / GB, 2),
                f"{result['peak_rss'] / weights:.2f}x",
            ]
            for name, result in (("published", published), ("hvm1", ours))
        ],
    )
    write_result(
        "bench_load", [table], settings={key: str(value) for key, value in vars(args).items()}, summary=[summary]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
