"""What `hvm1 surprise`'s paired evaluation says of synthetic impossible events, for the tiny MAEs and the baselines.

Twelve pairs are built from the real test videos (`tests/fixtures/videos`) as the tests build them
(`tests/eval/event_videos.py`): a square cut from one video slides across 3 s of another; in the impossible
twin it vanishes (6 pairs) or jumps (6 pairs) at 1.5 s. `hvm1.eval.surprise.surprise_videos` then reads every
window (stride 0.5 s, the last half of each window hidden) with each tiny reference MAE
(`tests/fixtures/reference/tiny`, `tiny_b`: untrained, perturbed weights), fp32, and prints per method (the model,
the `mean` and `nearest_frame` baselines, the model's excess over the best baseline) and aggregation over
windows (max, mean) the relative accuracy with its 95% bootstrap interval and the AUROC; the same figures go to
benchmarks/results/surprise_pairs.json (`results.write_result`).

Usage: python benchmarks/surprise_pairs.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from results import Table, write_result

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# (background video, start in seconds, event); the square is cut from cup.mp4, or from box.mp4 over cup.mp4.
PAIRS = [("vtest.avi", start, event) for start, event in zip((0, 10, 20, 30, 40, 50), ("vanish", "jump") * 3)]
PAIRS += [("box.mp4", start, event) for start, event in zip((0, 3, 6, 9), ("vanish", "jump") * 2)]
PAIRS += [("cup.mp4", start, event) for start, event in zip((0, 4), ("vanish", "jump"))]


def build_pairs(folder: Path) -> Path:
    """Write the pairs' videos and `pairs.csv` into `folder`; returns the pairs file."""
    sys.path.insert(0, str(ROOT / "tests" / "eval"))
    from event_videos import event_pair

    rows = []
    for background, start, event in PAIRS:
        thing = FIXTURES / "videos" / ("box.mp4" if background == "cup.mp4" else "cup.mp4")
        possible, impossible = event_pair(
            FIXTURES / "videos" / background, thing, folder / "videos", event, start=float(start)
        )
        rows.append(f"videos/{possible.name},videos/{impossible.name},{event}")
    (folder / "pairs.csv").write_text("possible,impossible,group\n" + "\n".join(rows) + "\n")
    return folder / "pairs.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, help="where the videos and each model's outputs go (default: a temp folder)"
    )
    args = parser.parse_args()
    from hvm1.eval.paired import read_pairs
    from hvm1.eval.surprise import surprise_videos
    from hvm1.zoo import load_model

    work = args.work or Path(tempfile.mkdtemp(prefix="surprise-pairs-"))
    pairs = read_pairs(build_pairs(work))
    tables = []
    for name in ("tiny", "tiny_b"):
        folder = FIXTURES / "reference" / name
        config = json.loads((folder / "config.json").read_text())
        model = load_model(
            folder / "mae_checkpoint.pth",
            model_type="mae",
            num_heads=config["num_heads"],
            decoder_num_heads=config["decoder_num_heads"],
        )
        report = surprise_videos(model, [], work / name, model_name=name, pairs=pairs, precision="fp32")
        if report.skipped:
            raise SystemExit(f"{name}: could not read {[s.path for s in report.skipped]}")
        windows = sum(len(v.windows) for v in report.videos)
        table = Table(
            f"{name}: {len(pairs)} pairs (6 vanish, 6 jump), {windows} windows",
            ["method", "by", "relative accuracy", "95% interval", "AUROC", "vanish", "jump"],
        )
        print(table.title)
        print(f"  {'method':<26} {'by':<4} {'accuracy':>8} {'95% interval':>14} {'AUROC':>6}  vanish  jump")
        for f in report.figures:
            method = name if f.method == "model" else f.method
            interval = f"[{f.interval.low:.2f}, {f.interval.high:.2f}]"
            print(
                f"  {method:<26} {f.aggregation:<4} {f.accuracy:>8.3f} {interval:>14} {f.auroc:>6.3f}  "
                f"{f.groups['vanish']:>6.3f} {f.groups['jump']:>5.3f}"
            )
            table.rows.append(
                [
                    method,
                    f.aggregation,
                    round(f.accuracy, 3),
                    interval,
                    round(f.auroc, 3),
                    round(f.groups["vanish"], 3),
                    round(f.groups["jump"], 3),
                ]
            )
        tables.append(table)
    write_result("surprise_pairs", tables, settings={"work": str(work), "pairs": len(pairs)})


if __name__ == "__main__":
    main()
