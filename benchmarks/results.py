"""The benchmarks' result files: each script writes its figures with `write_result`, and the documentation's
performance page is rendered from them by `performance_page` (at build time, never typed by hand).

A result file is `benchmarks/results/NAME.json`, the latest run of benchmark NAME (a run with other settings
may name its own variant, `bench_models-pack-fp32`). It holds the tables the script printed, the settings and
command line of the run, and where it ran: the machine and CPU model, the CPU flags that decide which kernels
run (AVX2, AVX-512, AMX, ...), the core count, the load average when it finished, the torch version, the commit
(and whether the tree had changes) and the date. `HVM1_BENCH_NOTE` adds a sentence about the conditions,
e.g. "measured beside other jobs".
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import io
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
# The CPU flags that change which matrix-multiply and attention kernels PyTorch runs.
SPEED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
)


@dataclass
class Table:
    """One table of a result: a title, the column names and the rows (numbers or text, as printed)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


def machine() -> dict[str, Any]:
    """Where this process runs: CPU model and flags, cores, memory, OS, Python, torch and its threads, GPU."""
    cpu_model, flags = platform.processor() or platform.machine(), set()
    memory_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu_model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu_model,
        "cpu_flags": [flag for flag in SPEED_FLAGS if flag in flags],
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    return info


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def write_result(
    name: str,
    tables: Sequence[Table],
    *,
    settings: dict[str, Any] | None = None,
    summary: Sequence[str] = (),
    output: str = "",
    out_dir: Path | None = None,
) -> Path:
    """Write benchmark `name`'s result file (replacing the previous run's) and say where on stdout.

    Args:
        name: the benchmark (its script's stem), or a variant of it (`bench_models-pack-fp32`).
        tables: what the script printed, as tables.
        settings: the run's settings (its parsed arguments).
        summary: sentences of figures the tables don't hold (ratios, targets met).
        output: what the script printed, kept as it is (for scripts that print a report rather than tables).
        out_dir: where the file goes (default `benchmarks/results/`).

    Returns:
        The path of the file written.
    """
    changes = [line for line in _git("status", "--porcelain").splitlines() if "benchmarks/results/" not in line]
    result = {
        "benchmark": name,
        "command": " ".join(["python", *sys.argv]),
        "settings": settings or {},
        "tables": [asdict(table) for table in tables],
        "summary": list(summary),
        "output": output,
        "machine": machine(),
        "load_average": [round(load, 2) for load in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "note": os.environ.get("HVM1_BENCH_NOTE", ""),
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "uncommitted_changes": bool(changes),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    folder = out_dir or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=1, default=str) + "\n")
    os.replace(temporary, path)
    print(f"result written to {path}")
    return path


class _Tee(io.TextIOBase):
    def __init__(self, stream: Any) -> None:
        self.stream, self.text = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.text.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def printed_result(name: str, settings: dict[str, Any] | None = None) -> Iterator[None]:
    """Write benchmark `name`'s result file with what the block prints (printed as usual too), when it ends
    without an error: for the scripts whose report is text rather than tables."""
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield
    write_result(name, [], settings=settings, output=tee.text.getvalue())


def _cell(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_result(result: dict[str, Any]) -> str:
    """One result file as markdown: a heading, where and when it ran, its tables and its summary."""
    machine_info = result.get("machine", {})
    flags = ", ".join(machine_info.get("cpu_flags", [])) or "none of " + ", ".join(SPEED_FLAGS)
    where = (
        f"{machine_info.get('cpu', '?')}, {machine_info.get('cores', '?')} cores"
        f"{', ' + str(machine_info['memory_gb']) + ' GB' if machine_info.get('memory_gb') else ''}"
        f"{'; GPU ' + machine_info['gpu'] if machine_info.get('gpu') else ''}"
    )
    load = result.get("load_average")
    lines = [
        f"## {result['benchmark']}",
        "",
        f"`{result.get('command', '')}`",
        "",
        f"- Machine: {where}; CPU flags: {flags}",
        f"- torch {machine_info.get('torch', '?')} ({machine_info.get('torch_threads', '?')} threads), "
        f"Python {machine_info.get('python', '?')}",
        f"- Commit `{result.get('commit') or '?'}`"
        f"{' with uncommitted changes' if result.get('uncommitted_changes') else ''}, {result.get('date', '?')}"
        f"{f'; load average {load[0]:.1f} at the end' if load else ''}",
    ]
    if result.get("note"):
        lines.append(f"- {result['note']}")
    for table in result.get("tables", []):
        lines += [
            "",
            f"**{table['title']}**",
            "",
            "| " + " | ".join(map(_cell, table["columns"])) + " |",
            "|" + " --- |" * len(table["columns"]),
        ]
        lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in table["rows"]]
    if result.get("summary"):
        lines.append("")
        lines += [f"- {sentence}" for sentence in result["summary"]]
    if result.get("output"):
        lines += ["", "```text", result["output"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def benchmark_scripts(folder: Path = RESULTS.parent) -> list[tuple[str, str]]:
    """Each benchmark script (`bench_*.py`, `profile_*.py`) and the first paragraph of its docstring."""
    scripts = []
    for path in sorted([*folder.glob("bench_*.py"), *folder.glob("profile_*.py")]):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        scripts.append((path.name, " ".join(doc.split("\n\n")[0].split())))
    return scripts


def performance_page(folder: Path = RESULTS) -> str:
    """The performance page: the benchmark scripts, then every result file in `folder`, by benchmark name."""
    results = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    parts = [
        "# Performance",
        "",
        "Every figure on this page is read from a result file that a benchmark script wrote "
        "(`benchmarks/results/NAME.json`) when the site was built; none is typed by hand. Each says where and "
        "when it was measured. `python benchmarks/NAME.py -h` says how to run a benchmark, and a run replaces its "
        "result file. On a shared machine compare the ratios measured side by side in one run, not the seconds.",
        "",
        "| benchmark | measures | result |",
        "| --- | --- | --- |",
    ]
    first_result = {}  # script stem -> the heading (anchor) of its first result on the page
    for result in results:
        first_result.setdefault(result["benchmark"].split("-")[0], result["benchmark"])
    for name, doc in benchmark_scripts(folder.parent):
        anchor = first_result.get(name.removesuffix(".py"))
        parts.append(f"| `{name}` | {_cell(doc)} | {f'[result](#{anchor})' if anchor else 'not run yet'} |")
    parts.append("")
    if not results:
        parts.append("No result files yet: run a benchmark script to write one.")
    parts += [render_result(result) for result in results]
    return "\n".join(parts) + "\n"
