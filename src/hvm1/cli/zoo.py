"""The model zoo's commands: list, info, convert."""

from __future__ import annotations

from .command import Command


def _show_table(report) -> int:
    widths = [max(len(row[i]) for row in (report.header, *report.rows)) for i in range(len(report.header))]
    for row in (report.header, *report.rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _show_lines(report) -> int:
    if report.class_names is not None:
        for index, name in enumerate(report.class_names):
            print(f"{index}\t{name}")
        return 0
    width = max(map(len, report.lines))
    for key, value in report.lines.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _show_converted(report) -> int:
    path = report.written[0]
    print(f"wrote {path}: {report.dtype}, {path.stat().st_size / 1e9:.2f} GB (weights and config, no optimizer state)")
    return 0


COMMANDS = {
    "list": Command(
        help="the published models, and which are cached",
        config="hvm1.catalog:ListConfig",
        run="hvm1.catalog:list_models",
        show=_show_table,
    ),
    "info": Command(
        help="one published model or checkpoint file: architecture, preprocessing, parameters",
        config="hvm1.catalog:InfoConfig",
        run="hvm1.catalog:describe",
        show=_show_lines,
    ),
    "convert": Command(
        help="write a model's weights and full config to one .safetensors file (no optimizer state)",
        config="hvm1.catalog:ConvertConfig",
        run="hvm1.catalog:convert_model",
        show=_show_converted,
    ),
}
