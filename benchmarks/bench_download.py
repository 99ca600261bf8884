"""Claim: a first load of `mae_hvm1_none` by name fetches about a third of its file (the weights alone) and
takes correspondingly less time than downloading the whole file, over loopback.

    python benchmarks/bench_download.py [FOLDER] [--keep] [--repeat N]

Writes a full-size published-format checkpoint of the `mae_hvm1_none` architecture into FOLDER as
`bench_load.py` does (random float32 weights of the published shapes plus AdamW state for every parameter;
skipped with a message when FOLDER has less than 10 GB free), serves it on 127.0.0.1 with the tests' fake hub
(`tests/hub_server.py`: range requests answered 206, body bytes counted), and times `hvm1.load_model` by name
in fresh child processes with an empty Hugging Face cache each:
- whole: `load_model("mae_hvm1_none", full_download=True)`, the whole file through `hf_hub_download`, then its
  SHA-256 check, then the load;
- slim: `load_model("mae_hvm1_none")`, the central directory, `data.pkl` and the model's storages in parallel
  range requests, each record's CRC-32 check, then the load.
The time is the call alone (imports excluded), network transfer, checks, cache writes and the load together;
the bytes are what the server sent. Each child sums every weight (a checksum, which must agree between the two).
The server runs in this process and the client in the child, so neither holds the other's interpreter lock;
both share the machine's cores. The caches are removed after each run, and the file at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_load import ARCHITECTURE, GB, SHAPES, scratch_folder, write_published_checkpoint  # noqa: E402
from results import Table, write_result  # noqa: E402

MODEL = "mae_hvm1_none"
FILENAME = "hvm1_none.pth"
REPO = "eminorhan/hvm-1"
MODES = ("whole", "slim")


def measure(mode: str) -> None:
    """In a child process (the environment points the hub client at the server): load by name, print JSON."""
    import torch

    import hvm1

    start = time.perf_counter()
    model = hvm1.load_model(MODEL, full_download=mode == "whole")
    seconds = time.perf_counter() - start
    checksum = sum(float(t.sum(dtype=torch.float64)) for t in model.state_dict().values())
    print(json.dumps({"seconds": seconds, "checksum": checksum}))


def run_child(mode: str, endpoint: str, hf_home: Path) -> dict[str, float]:
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_TOKEN", None)
    result = subprocess.run(
        [sys.executable, __file__, "--measure", mode], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode:
        raise SystemExit(f"the {mode} load failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="where to write the ~7.7 GB checkpoint and caches")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint file afterwards")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="N rounds of whole then slim")
    parser.add_argument("--measure", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0
    if not SHAPES.is_file():
        print(f"skipped: the published shapes are not at {SHAPES} (the test data of the repository)")
        return 0
    from hub_server import FakeHub

    made_folder = args.folder is None
    folder = scratch_folder(args.folder, "hvm1-bench-download-")
    if folder is None:
        return 0
    path = folder / FILENAME
    hub = FakeHub()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        start = time.perf_counter()
        weights = write_published_checkpoint(path, json.loads(SHAPES.read_text())[ARCHITECTURE])
        size = path.stat().st_size
        hub.files[(REPO, FILENAME)] = path
        hub.etag(path)  # the server's SHA-256 of the file, computed once before any timing
        print(
            f"wrote {path}: {size / GB:.2f} GB file, {weights / GB:.2f} GB of float32 weights "
            f"({time.perf_counter() - start:.0f} s); serving it at {hub.url}"
        )
        for _ in range(args.repeat):
            for mode in MODES:
                cache = Path(tempfile.mkdtemp(prefix=f"hf-{mode}-", dir=folder))
                before = hub.bytes_sent()
                try:
                    result = run_child(mode, hub.url, cache)
                finally:
                    shutil.rmtree(cache, ignore_errors=True)
                result["bytes"] = hub.bytes_sent() - before
                results[mode].append(result)
    finally:
        hub.stop()
        if not args.keep:
            path.unlink(missing_ok=True)
            if made_folder:
                shutil.rmtree(folder, ignore_errors=True)
    checksums = {r["checksum"] for mode in MODES for r in results[mode]}
    if max(checksums) - min(checksums) > 1e-6 * max(1.0, abs(max(checksums))):
        raise SystemExit(f"the loads disagree: checksums {sorted(checksums)}")
    print(f"{'first load':<11} {'GB fetched':>11} {'of the file':>12} {'seconds':>9} {'GB/s':>6}")
    best = {}
    table = Table(
        f"first load of a {size / GB:.2f} GB published-format file over loopback, an empty cache each time",
        ["first load", "GB fetched", "of the file", "seconds", "GB/s"],
    )
    for mode in MODES:
        best[mode] = min(results[mode], key=lambda r: r["seconds"])
        for r in results[mode]:
            print(
                f"{mode:<11} {r['bytes'] / GB:>11.2f} {r['bytes'] / size:>11.1%} {r['seconds']:>9.1f} "
                f"{r['bytes'] / GB / r['seconds']:>6.2f}"
            )
            table.rows.append(
                [
                    mode,
                    round(r["bytes"] / GB, 2),
                    f"{r['bytes'] / size:.1%}",
                    round(r["seconds"], 1),
                    round(r["bytes"] / GB / r["seconds"], 2),
                ]
            )
    fraction = best["slim"]["bytes"] / size
    summary = (
        f"slim fetches {fraction:.1%} of the file (target <= 36%: {'met' if fraction <= 0.36 else 'NOT met'}), "
        f"{best['whole']['bytes'] / best['slim']['bytes']:.2f}x fewer bytes, first load "
        f"{best['whole']['seconds'] / best['slim']['seconds']:.2f}x faster than the whole-file download "
        f"(best of {args.repeat} each)"
    )
    print(summary)
    write_result(
        "bench_download", [table], settings={key: str(value) for key, value in vars(args).items()}, summary=[summary]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
