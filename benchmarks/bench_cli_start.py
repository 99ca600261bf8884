"""How long `hvm1 -h` takes: the lazy parser (only the command asked for builds its options, torch is not
imported) against building every command's parser, as `hvm1 -h` did before, in one run on this machine.

Each is a fresh `python` process (start-up included), run --repeats times alternately; the medians and their
ratio are printed. On a shared machine compare the ratio, not the seconds.

Usage: python benchmarks/bench_cli_start.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from results import Table, write_result

LAZY = "from hvm1.cli import main\ntry:\n    main(['-h'])\nexcept SystemExit:\n    pass"
EVERY_PARSER = "from hvm1.cli import build_parser\nbuild_parser().format_help()"


def _seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    times: dict[str, list[float]] = {"lazy (hvm1 -h now)": [], "every parser (before)": []}
    for _ in range(repeats):
        times["lazy (hvm1 -h now)"].append(_seconds(LAZY))
        times["every parser (before)"].append(_seconds(EVERY_PARSER))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:<24} median {median:.3f} s over {repeats} runs")
    ratio = f"hvm1 -h starts {medians['every parser (before)'] / medians['lazy (hvm1 -h now)']:.1f}x faster"
    print(f"ratio: {ratio}")
    table = Table(
        f"seconds to run and exit, a fresh process each (medians of {repeats} runs)",
        ["parser", "seconds"],
        [[name, round(median, 3)] for name, median in medians.items()],
    )
    write_result("bench_cli_start", [table], settings={"repeats": repeats}, summary=[ratio])


if __name__ == "__main__":
    main()
