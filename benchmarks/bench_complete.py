"""Claim: `hvm1 complete` on the ../shared/videos files with a full-size MAE takes little more wall time than the
model's forward passes alone (loading, decoding and writing the pictures are a small overhead).

    python benchmarks/bench_complete.py [FOLDER] [--keep] [--device auto|cpu|cuda|mps] [--precisions fp32,bf16]

Writes a published-format training checkpoint of the `mae_hvm1_none` architecture (random weights plus AdamW
state and an `argparse.Namespace`, ~7.7 GB, with `bench_load.write_published_checkpoint`) into FOLDER (default:
a new temporary folder under /tmp; skipped with a message when it has less than 10 GB free). Then, on the same
machine, --repeats times: `hvm1 complete --checkpoint FILE ../shared/videos --out-dir TMP` in a fresh process
(through `hvm1.cli.main`, with `VideoMAE.forward` wrapped in a timer), measuring
- the whole command's wall time, start to exit (imports, lazy loading, decoding, the forward passes, the
  JPEG files), and
- the wall time of the model's forward passes inside that same run (the first one also pages in the
  memory-mapped weights, which is loading work the forward pass does).
Both come from one run, so on a shared machine other work stretches them alike; the best ratio counts. Each of
--precisions (`hvm1 complete --precision P`) is measured this way, the precisions taking turns.
The file is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import ARCHITECTURE, GB, MIN_FREE_BYTES, SHAPES, write_published_checkpoint  # noqa: E402
from forward_timer import time_forwards  # noqa: E402

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


def child(path: Path, out_dir: Path, device: str, precision: str) -> None:
    """In a fresh process: run `hvm1 complete` through its `main`, timing every MAE forward pass it makes, and
    print the forward seconds as the last line (JSON)."""
    from hvm1.cli import main as hvm1_main
    from hvm1.models import VideoMAE

    seconds = time_forwards(VideoMAE)
    status = hvm1_main(["complete", "--checkpoint", str(path), str(VIDEOS), "--out-dir", str(out_dir),
                        "--device", device, "--precision", precision])
    print(json.dumps({"status": status, "forward": seconds, "pictures": len(list(out_dir.iterdir()))}))


def run_command(path: Path, device: str, precision: str) -> dict:
    """One `hvm1 complete` run in a fresh process: its wall time, start to exit, and its forward passes' times."""
    with tempfile.TemporaryDirectory(prefix="hvm1-bench-complete-out-") as out_dir:
        command = [sys.executable, __file__, "--child", str(path), out_dir, device, precision]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"hvm1 complete failed:\n{result.stderr}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["status"]:
        raise SystemExit(f"hvm1 complete exited with {report['status']}:\n{result.stderr}")
    return {"wall": wall, "precision": precision, **report}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="where to write the ~7.7 GB checkpoint")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint file afterwards")
    parser.add_argument("--device", default="auto", help="the device of both runs (default auto)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of the command (default 2)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated --precision values (default fp32,bf16)")
    parser.add_argument("--child", nargs=4, metavar=("PATH", "OUT", "DEVICE", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child[2], args.child[3])
        return 0
    if not SHAPES.is_file() or not VIDEOS.is_dir():
        print(f"skipped: {SHAPES} or {VIDEOS} not found (../shared beside the checkout)")
        return 0
    made_folder = args.folder is None
    folder = Path(tempfile.mkdtemp(prefix="hvm1-bench-complete-", dir="/tmp")) if made_folder else args.folder
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        print(f"skipped: {folder} has {free / GB:.1f} GB free, the benchmark needs {MIN_FREE_BYTES / GB:.0f} GB")
        if made_folder:
            folder.rmdir()
        return 0
    path = folder / "hvm1_none.pth"
    try:
        if not path.is_file():
            start = time.perf_counter()
            write_published_checkpoint(path, json.loads(SHAPES.read_text())[ARCHITECTURE])
            print(f"wrote {path}: {path.stat().st_size / GB:.2f} GB ({time.perf_counter() - start:.0f} s)")
        precisions = args.precisions.split(",")
        runs = [run_command(path, args.device, precision) for _ in range(args.repeats) for precision in precisions]
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            if made_folder:
                shutil.rmtree(folder, ignore_errors=True)
    print(f"{'run':<4} {'precision':<9} {'whole command s':>16} {'forward passes s':>17} {'ratio':>6}   forward passes (s)")
    for index, run in enumerate(runs, start=1):
        forward = sum(run["forward"])
        print(f"{index:<4} {run['precision']:<9} {run['wall']:>16.2f} {forward:>17.2f} {run['wall'] / forward:>6.2f}   "
              + ", ".join(f"{s:.2f}" for s in run["forward"]))
    for precision in precisions:
        mine = [run for run in runs if run["precision"] == precision]
        best = min(mine, key=lambda run: run["wall"] / sum(run["forward"]))
        print(f"{precision}: {best['pictures']} pictures from {len(best['forward'])} videos, device {args.device}, "
              f"{torch.get_num_threads()} CPU threads: hvm1 complete takes {best['wall'] / sum(best['forward']):.2f}x "
              f"the time of its model's forward passes (best of {args.repeats} runs), start-up, loading, decoding "
              f"and writing included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
