"""Claim: `hvm1 complete` on the tests/fixtures/videos files with a full-size MAE takes little more wall time than the
model's forward passes alone (loading, decoding and writing the pictures are a small overhead).

    python benchmarks/bench_complete.py [FOLDER] [--keep] [--device auto|cpu|cuda|mps] [--precisions fp32,bf16]

Writes a published-format training checkpoint of the `mae_hvm1_none` architecture (random weights plus AdamW
state and an `argparse.Namespace`, ~7.7 GB, with `bench_load.write_published_checkpoint`) into FOLDER (default:
a new temporary folder under /tmp; skipped with a message when it has less than 10 GB free). Then, on the same
machine, --repeats times: `hvm1 complete --checkpoint FILE tests/fixtures/videos --out-dir TMP` in a fresh process
(through `hvm1.cli.console`, the `hvm1` command's entry point, with `VideoMAE.forward` wrapped in a timer),
measuring
- the whole command's wall time, start to exit (imports, lazy loading, decoding, the forward passes, the
  JPEG files), and
- the wall time of the model's forward passes inside that same run (the first one also pages in the
  memory-mapped weights, which is loading work the forward pass does).
Both come from one run, so on a shared machine other work stretches them alike; the best ratio counts. Each of
--precisions (`hvm1 complete --precision P`) is measured this way, the precisions taking turns.
The file is deleted at the end unless --keep.

The claim of issue 20 (bf16 packing): `--precisions fp32,auto --mask-types random,temporal,center --videos 1,4
--packing ahead,first_use,none` runs the command on the first video alone and on all four, at each mask type
(its default ratio: random 0.9, temporal 0.5, center 0.5), in float32 and in `--precision auto` (bf16 where the
CPU has bf16 units), the command as it is (`ahead`: the weights packed in the background from when the model is
prepared, while the first video is decoded; with one video, where the model is called once, nothing packed),
packed at their first use or up front however many videos (`first_use`, `now`: the command's
`prepare_for_inference` told so), or never packed (`none`: not prepared, autocast casts the weights at every
call); then prints, side by side per video count and mask type, how much
faster `auto` ran the whole command than fp32, and the first forward against the later ones (four videos).
The machine is named first: CPU model and flags, and both rooflines (4096^3 products, fp32 and bf16).

--breakdown also times, in each run, where the rest of the wall time goes: the process's start-up (Python and
its imports, up to the command's `main`), each library step the command calls (reading the checkpoint, building
and loading the model, casting its weights, waiting for a decoded video, the pictures) on the main thread and
in background threads, and the process's exit after `main` returns; and, apart, a fresh process that only
imports torch and `hvm1.cli` and exits as `hvm1` does: the start-up and exit no command can go below.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import ARCHITECTURE, GB, MIN_FREE_BYTES, SHAPES, write_published_checkpoint  # noqa: E402
from forward_timer import time_forwards  # noqa: E402
from results import printed_result  # noqa: E402

from fixtures import VIDEOS

# What --breakdown times inside `hvm1 complete`: (module, attribute, label), the attribute a function or method
# that the command reaches through that module (looked up when called), the label what the table calls it.
# Each step's seconds leave out the steps timed inside it (reading the pickle inside loading the model).
STEPS = (
    ("hvm1.zoo.loading", "load_for_inputs", "load the model: build, assign"),
    ("hvm1.checkpoint", "read_checkpoint", "load the model: read the checkpoint's pickle"),  # from load_checkpoint
    ("hvm1.zoo.loading", "read_checkpoint", "load the model: read the checkpoint's pickle"),  # preprocessing_for
    ("hvm1.inference", "prepare_for_inference", "prepare the linear layers (cast, or mark for packing)"),
    ("hvm1.viz.runs", "prefetched_clips", "wait for a decoded video"),
    ("hvm1.data", "VideoPreset.load", "decode + preprocess a video"),
    ("hvm1.viz.runs", "complete_clip", "complete_clip besides the forward"),
    ("hvm1.viz.runs", "completion_grid", "picture: grid"),
    ("hvm1.viz.runs", "completion_labels", "picture: labels"),
    ("hvm1.viz.runs", "save_jpeg", "picture: JPEG file"),
)
_NESTED = threading.local()  # per thread: the seconds of timed steps inside the step now running, a stack


def _time_calls(owner: object, attribute: str, label: str, totals: dict[str, float]) -> None:
    """Wrap `owner.attribute` (a function, or a generator function: then the time spent in each `next`) so its
    seconds, less those of the steps timed inside it, add to `totals[label + thread]`, thread ' (main)' or
    ' (background)' by the thread that called it."""
    original = getattr(owner, attribute)

    def enter() -> float:
        if not hasattr(_NESTED, "stack"):
            _NESTED.stack = []
        _NESTED.stack.append(0.0)
        return time.perf_counter()

    def leave(start: float) -> None:
        seconds = time.perf_counter() - start
        inside = _NESTED.stack.pop()
        if _NESTED.stack:
            _NESTED.stack[-1] += seconds
        where = " (main)" if threading.current_thread() is threading.main_thread() else " (background)"
        totals[label + where] = totals.get(label + where, 0.0) + seconds - inside

    def timed(*args, **kwargs):
        start = enter()
        try:
            return original(*args, **kwargs)
        finally:
            leave(start)

    def timed_generator(*args, **kwargs) -> Iterator:
        items = original(*args, **kwargs)
        while True:
            start = enter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                leave(start)
            yield item

    import inspect

    setattr(owner, attribute, timed_generator if inspect.isgeneratorfunction(original) else timed)


def _instrument(totals: dict[str, float]) -> None:
    import importlib

    for module_name, attribute, label in STEPS:
        owner: object = importlib.import_module(module_name)
        *classes, name = attribute.split(".")
        for class_name in classes:
            owner = getattr(owner, class_name)
        _time_calls(owner, name, label, totals)


def child(
    path: Path,
    out_dir: Path,
    device: str,
    precision: str,
    breakdown: bool,
    mask_type: str = "random",
    videos: Path = VIDEOS,
    packing: str = "ahead",
) -> None:
    """In a fresh process: run `hvm1 complete` through its entry point, timing every MAE forward pass it makes (and
    with `breakdown` the `STEPS`), and print the seconds as the last line (JSON)."""
    entered = time.time()
    import hvm1.inference
    from hvm1.cli import console
    from hvm1.models import VideoMAE

    seconds = time_forwards(VideoMAE)
    if packing == "none":  # nothing prepared: autocast casts every weight at every call
        hvm1.inference.prepare_for_inference = lambda model, precision, pack="ahead": model
    elif packing != "ahead":  # the command's way is "ahead"; this packs as asked instead, one video or several
        import hvm1.viz.runs

        prepare, for_run = hvm1.inference.prepare_for_inference, hvm1.viz.runs.precision_for_run
        hvm1.inference.prepare_for_inference = lambda model, precision, pack="ahead": prepare(
            model, precision, pack=packing
        )
        hvm1.viz.runs.precision_for_run = lambda name, device, models, progress, calls=None: for_run(
            name, device, models, progress
        )
    steps: dict[str, float] = {}
    if breakdown:
        _instrument(steps)
    sys.argv = [
        "hvm1",
        "complete",
        "--checkpoint",
        str(path),
        str(videos),
        "--out-dir",
        str(out_dir),
        "--device",
        device,
        "--precision",
        precision,
        "--mask-type",
        mask_type,
    ]
    status = console()
    print(
        json.dumps(
            {
                "status": status,
                "forward": seconds,
                "pictures": len(list(out_dir.iterdir())),
                "entered": entered,
                "returned": time.time(),
                "steps": steps,
            }
        )
    )


def run_command(
    path: Path,
    device: str,
    precision: str,
    breakdown: bool = False,
    mask_type: str = "random",
    videos: Path = VIDEOS,
    packing: str = "ahead",
) -> dict:
    """One `hvm1 complete` run in a fresh process: its wall time, start to exit, and its forward passes' times."""
    with tempfile.TemporaryDirectory(prefix="hvm1-bench-complete-out-") as out_dir:
        command = [
            sys.executable,
            __file__,
            "--child",
            str(path),
            out_dir,
            device,
            precision,
            mask_type,
            str(videos),
            packing,
        ]
        command += ["--breakdown"] if breakdown else []
        spawned = time.time()
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        exited = time.time()
    if result.returncode:
        raise SystemExit(f"hvm1 complete failed:\n{result.stderr}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["status"]:
        raise SystemExit(f"hvm1 complete exited with {report['status']}:\n{result.stderr}")
    label = precision if precision == "fp32" or packing == "ahead" else f"{precision}/{packing}"
    return {
        "wall": wall,
        "precision": label,
        "mask_type": mask_type,
        "start-up": report["entered"] - spawned,
        "exit": exited - report["returned"],
        **report,
    }


# A process that imports what `hvm1 complete` cannot do without and exits as the command does.
BARE = "import time\nimport torch\nimport hvm1.cli\nprint(time.time(), flush=True)\nhvm1.cli.leave_quickly()"


def bare_process_seconds(repeats: int = 5) -> tuple[float, float]:
    """Medians over `repeats` fresh processes of `BARE`: seconds from spawn to torch and `hvm1.cli` imported,
    and from then to the process's exit."""
    start_ups, exits = [], []
    for _ in range(repeats):
        spawned = time.time()
        result = subprocess.run([sys.executable, "-c", BARE], check=True, capture_output=True, text=True)
        exited = time.time()
        imported = float(result.stdout.split()[0])
        start_ups.append(imported - spawned)
        exits.append(exited - imported)
    return statistics.median(start_ups), statistics.median(exits)


def print_breakdown(runs: list[dict]) -> None:
    """Each run's wall time split into start-up, the timed steps, the forward passes and the rest."""
    labels = ["process start-up (python, imports before main)"]
    labels += [
        label + where
        for label in dict.fromkeys(label for _, _, label in STEPS)
        for where in (" (main)", " (background)")
        if any(label + where in run["steps"] for run in runs)
    ]
    labels += ["forward passes (main)", "rest of main (main)", "process exit after main", "whole command"]
    columns = [f"{index} {run['precision']}" for index, run in enumerate(runs, start=1)]
    print(f"{'breakdown, seconds':<58}" + "".join(f"{column:>10}" for column in columns))
    clip_step = "complete_clip besides the forward (main)"
    for label in labels:
        values = []
        for run in runs:
            steps = dict(run["steps"])
            steps[clip_step] = steps.get(clip_step, 0.0) - sum(run["forward"])  # the forward is timed apart
            main_steps = sum(seconds for name, seconds in steps.items() if name.endswith("(main)"))
            value = {
                "process start-up (python, imports before main)": run["start-up"],
                "forward passes (main)": sum(run["forward"]),
                "rest of main (main)": run["returned"] - run["entered"] - main_steps - sum(run["forward"]),
                "process exit after main": run["exit"],
                "whole command": run["wall"],
            }.get(label, steps.get(label, 0.0))
            values.append(value)
        print(f"{label:<58}" + "".join(f"{value:>10.3f}" for value in values))
    print(
        "(main): on the command's main thread, in its wall time; (background): in a background thread, "
        "overlapping the main thread's work"
    )
    start_up, exit_seconds = bare_process_seconds()
    print(
        f"floor: a process that imports torch and hvm1.cli and exits as hvm1 does (median of 5): start-up "
        f"{start_up:.3f} s, exit {exit_seconds:.3f} s"
    )
    for precision in dict.fromkeys(run["precision"] for run in runs):
        forward = min(sum(run["forward"]) for run in runs if run["precision"] == precision)
        print(
            f"{precision}: with that alone on top of {forward:.2f} s of forward passes, the ratio could be no "
            f"lower than {(forward + start_up + exit_seconds) / forward:.2f}x; without the process's start-up "
            f"and exit, the runs above are "
            + ", ".join(
                f"{(run['wall'] - run['start-up'] - run['exit']) / sum(run['forward']):.2f}x"
                for run in runs
                if run["precision"] == precision
            )
        )


def first_videos(count: int, folder: Path) -> Path:
    """A folder under `folder` holding links to the first `count` videos of tests/fixtures/videos (by name)."""
    videos = sorted(path for path in VIDEOS.iterdir() if path.suffix in (".mp4", ".avi"))[:count]
    chosen = folder / f"videos-{count}"
    chosen.mkdir(exist_ok=True)
    for video in videos:
        link = chosen / video.name
        if not link.exists():
            link.symlink_to(video)
    return chosen


def print_comparison(runs: list[dict]) -> None:
    """Side by side per video count and mask type: each configuration's best whole-command time, fp32's over it,
    and the first forward over the median of the later ones."""
    print(
        f"\n{'videos':>6} {'mask':<9} {'run':<14} {'whole s':>8} {'fp32 / this':>12} {'first fwd s':>12} "
        f"{'later fwd s':>12} {'first / later':>14}"
    )
    for count, mask_type in dict.fromkeys((run["videos"], run["mask_type"]) for run in runs):
        mine = [run for run in runs if run["videos"] == count and run["mask_type"] == mask_type]
        best = {
            label: min((run for run in mine if run["precision"] == label), key=lambda run: run["wall"])
            for label in dict.fromkeys(run["precision"] for run in mine)
        }
        fp32 = best.get("fp32")
        for label, run in best.items():
            later = statistics.median(run["forward"][1:]) if len(run["forward"]) > 1 else None
            print(
                f"{count:>6} {mask_type:<9} {label:<14} {run['wall']:>8.2f} "
                f"{fp32['wall'] / run['wall'] if fp32 else float('nan'):>11.2f}x {run['forward'][0]:>12.2f} "
                + (f"{later:>12.2f} {run['forward'][0] / later:>13.2f}x" if later else f"{'-':>12} {'-':>14}")
            )
    print("fp32 / this: how many times faster than fp32 the whole command ran (best of the repeats, taking turns)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="where to write the ~7.7 GB checkpoint")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint file afterwards")
    parser.add_argument("--device", default="auto", help="the device of both runs (default auto)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of the command (default 2)")
    parser.add_argument(
        "--precisions", default="fp32,bf16", help="comma-separated --precision values (default fp32,bf16)"
    )
    parser.add_argument("--mask-types", default="random", help="comma-separated --mask-type values (default random)")
    parser.add_argument(
        "--videos", default="4", help="comma-separated counts of tests/fixtures/videos files (default 4)"
    )
    parser.add_argument(
        "--packing",
        default="ahead",
        help="comma-separated, of ahead (the command as it is), first_use, now, none (never packed): when bf16 "
        "weights are packed (default ahead)",
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="also time start-up, each step of the command, and exit (see above)"
    )
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, out, device, precision, mask_type, videos, packing = args.child
        child(Path(path), Path(out), device, precision, args.breakdown, mask_type, Path(videos), packing)
        return 0
    if not SHAPES.is_file() or not VIDEOS.is_dir():
        print(f"skipped: {SHAPES} or {VIDEOS} not found (the repository's test data)")
        return 0
    # The default run writes bench_complete.json; one of other video counts or mask types a variant of it.
    variant = "" if args.videos == "4" and args.mask_types == "random" else f"-videos{args.videos.replace(',', '_')}"
    with printed_result("bench_complete" + variant, vars(args)):
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_models import cpu_description, matmul_rate

    print(f"CPU: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"rooflines (4096^3 products): fp32 {matmul_rate(repeats=3):.0f} GFLOP/s, "
        f"bf16 {matmul_rate(repeats=3, dtype=torch.bfloat16):.0f} GFLOP/s",
        flush=True,
    )
    made_folder = args.folder is None
    folder = Path(tempfile.mkdtemp(prefix="hvm1-bench-complete-", dir="/tmp")) if made_folder else args.folder
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    path = folder / "hvm1_none.pth"
    if free < MIN_FREE_BYTES and not path.is_file():
        print(f"skipped: {folder} has {free / GB:.1f} GB free, the benchmark needs {MIN_FREE_BYTES / GB:.0f} GB")
        if made_folder:
            folder.rmdir()
        return 0
    configurations = [
        (precision, packing)
        for precision in args.precisions.split(",")
        for packing in (["ahead"] if precision == "fp32" else args.packing.split(","))
    ]
    runs = []
    try:
        if not path.is_file():
            start = time.perf_counter()
            write_published_checkpoint(path, json.loads(SHAPES.read_text())[ARCHITECTURE])
            print(f"wrote {path}: {path.stat().st_size / GB:.2f} GB ({time.perf_counter() - start:.0f} s)")
        for count in (int(text) for text in args.videos.split(",")):
            videos = first_videos(count, folder)
            for mask_type in args.mask_types.split(","):
                for _ in range(args.repeats):
                    for precision, packing in configurations:
                        run = run_command(path, args.device, precision, args.breakdown, mask_type, videos, packing)
                        runs.append({**run, "videos": count})
                        print(
                            f"  {count} videos, {mask_type}, {run['precision']}: {run['wall']:.2f} s whole, "
                            f"forwards {', '.join(f'{s:.2f}' for s in run['forward'])}",
                            flush=True,
                        )
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
        if made_folder and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    precisions = list(dict.fromkeys(run["precision"] for run in runs))
    print(
        f"{'run':<4} {'precision':<9} {'whole command s':>16} {'forward passes s':>17} {'ratio':>6}"
        "   forward passes (s)"
    )
    for index, run in enumerate(runs, start=1):
        forward = sum(run["forward"])
        print(
            f"{index:<4} {run['precision']:<9} {run['wall']:>16.2f} {forward:>17.2f} {run['wall'] / forward:>6.2f}   "
            + ", ".join(f"{s:.2f}" for s in run["forward"])
        )
    for precision in precisions:
        mine = [run for run in runs if run["precision"] == precision]
        best = min(mine, key=lambda run: run["wall"] / sum(run["forward"]))
        print(
            f"{precision}: {best['pictures']} pictures from {len(best['forward'])} videos, device {args.device}, "
            f"{torch.get_num_threads()} CPU threads: hvm1 complete takes {best['wall'] / sum(best['forward']):.2f}x "
            f"the time of its model's forward passes (best of {args.repeats} runs), start-up, loading, decoding "
            f"and writing included"
        )
    print_comparison(runs)
    if args.breakdown:
        print_breakdown(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
