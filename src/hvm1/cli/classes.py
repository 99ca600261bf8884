"""What a finetuned model sees: classify (top classes by name, per file or per window) and reproduce (the
published evaluations on local data)."""

from __future__ import annotations

import sys

from .command import Command, plural, print_skipped

# How many skipped examples `hvm1 reproduce` names on the console (skipped.csv has them all).
SHOWN_SKIPPED = 10
# How many leading classes `hvm1 classify --stride` names per video (the plot shows more).
SHOWN_LEADING = 3


def show_classes(report) -> int:
    """`hvm1 classify`: each file's top classes as a table (file, rank, class name, probability; the file named
    once), or with a stride each video's windows and leading classes; then the files written, the notes and
    the skipped inputs. Returns 1 when an input was skipped."""
    if report.result.settings.get("stride") is not None:
        _show_timelines(report)
    else:
        header = ("file", "rank", "class", "probability")
        rows = [
            (item.path if ranked.rank == 1 else "", str(ranked.rank), ranked.name, f"{100 * ranked.probability:.2f}%")
            for item in report.result.files
            for ranked in item.top
        ]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3].rjust(widths[3])]
            print("  ".join(cells).rstrip())
        print(f"wrote {' and '.join(map(str, report.written))}")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 1 if print_skipped(report.skipped) else 0


def _show_timelines(report) -> None:
    from ..eval import leading_classes

    names = report.result.names
    for item in report.timelines:
        leading = ", ".join(names[index] for index in leading_classes(item.timeline.values, SHOWN_LEADING))
        print(f"{item.path}: {plural(len(item.timeline), 'window')}; leading classes {leading}")
        print(f"  {item.plot}\n  {item.video}")
    print(f"wrote {report.written[0]} (each window's top classes)")


def show_reproduced(report) -> int:
    """`hvm1 reproduce`: the table with its protocol (as reproduce.md has it), the files written, and the first
    skipped examples (all in skipped.csv). Returns 1 when an example was skipped."""
    from ..eval.reproduce import TABLE_MARKDOWN

    print((report.out_dir / TABLE_MARKDOWN).read_text(), end="")
    print(f"wrote {', '.join(map(str, report.written))}")
    if report.skipped:
        shown = report.skipped[:SHOWN_SKIPPED]
        print_skipped(shown)
        if len(report.skipped) > len(shown):
            print(
                f"  ... and {len(report.skipped) - len(shown)} more (all of them in {report.written[-1]})",
                file=sys.stderr,
            )
    return 1 if report.skipped else 0


COMMANDS = {
    "classify": Command(
        help="the top-k class names of a finetuned model for each video or image, with probabilities",
        description="Top-k class names per file (softmax of the logits averaged over evaluate's views), or with "
        "--stride per window of each whole video; classes.csv and classes.json (windows.csv, plots "
        "and annotated MP4s) go to DIR.",
        config="hvm1.eval.classify:ClassifyConfig",
        run="hvm1.eval.classify:classify",
        show=show_classes,
    ),
    "reproduce": Command(
        help="a pretraining's published evaluations (SSv2, Kinetics, ImageNet, DAVIS) on local data, against the "
        "published figures",
        description="Each data folder is optional; the table (reproduce.md, reproduce.csv) goes to DIR.",
        config="hvm1.eval.reproduce:ReproduceConfig",
        run="hvm1.eval.reproduce:reproduce",
        show=show_reproduced,
    ),
}
