"""Embeddings and evaluation commands: embed, evaluate, probe."""

from __future__ import annotations

import sys

from .command import Command, plural, print_skipped


def _print_metrics(predictions) -> None:
    metrics = predictions.metrics
    classes = predictions.logits.shape[1]
    # With 5 classes or fewer the true class is always among the top 5: 100% says nothing.
    top5 = f"{metrics.top5:.2f}%" if classes > 5 else f"n/a ({classes} classes)"
    print(
        f"top-1 {metrics.top1:.2f}%  top-5 {top5}  mean per-class {metrics.mean_class_accuracy:.2f}%  "
        f"loss {metrics.loss:.4f}  ({metrics.count} examples)"
    )


# How many of the most confused pairs of classes `hvm1 evaluate` prints (summary.json has more).
SHOWN_CONFUSIONS = 5


def _print_confusions(predictions) -> None:
    """The classes with the lowest accuracy and the most confused pairs, by name where the classes have names."""

    def named(index: int) -> str:
        name = predictions.class_name(index)
        return f"{name} ({index})" if name else f"class {index}"

    per_class = predictions.per_class()
    if len(per_class) > 1:
        worst = sorted(per_class, key=lambda row: (row.top1, row.index))[:SHOWN_CONFUSIONS]
        print(
            "lowest per-class top-1: "
            + "; ".join(f"{named(row.index)} {row.top1:.1f}% of {row.count}" for row in worst)
        )
    pairs = predictions.confused_pairs(SHOWN_CONFUSIONS)
    if pairs:
        print("most confused (true -> predicted, examples):")
        for pair in pairs:
            print(f"  {named(pair.true)} -> {named(pair.predicted)}: {pair.count}")


def _show_embed(report) -> int:
    from ..distributed import launch_rank

    if launch_rank() != 0:
        return 0
    result = report.result
    rows = len(result.embeddings) if result.embeddings is not None else 0
    if report.stride:
        videos = len(set(result.embeddings.paths)) if result.embeddings is not None else 0
        windows = f"{plural(rows, 'window')} every {report.stride:g} s of {plural(videos, 'video')}"
        print(f"{report.output}: {windows} ({result.embedded} embedded now, {result.reused} already there)")
    else:
        print(
            f"{report.output}: {plural(rows, 'image' if report.images else 'video')} ({result.embedded} embedded now, "
            f"{result.reused} already there)"
        )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 1 if print_skipped(report.skipped) else 0


def _show_evaluation(report) -> int:
    _print_metrics(report.predictions)
    _print_confusions(report.predictions)
    files = report.written
    print(f"wrote {', '.join(map(str, files[:-1]))} and {files[-1]}")
    return 1 if print_skipped(report.skipped) else 0


def _show_probe(report) -> int:
    settings = report.predictions.settings
    if "grid" in settings:
        print(f"{'lr':>8} {'wd':>8} {'loss':>8} {'val top-1':>9}")
        for row in settings["grid"]:
            chosen = " <" if (row["lr"], row["weight_decay"]) == (settings["lr"], settings["weight_decay"]) else ""
            print(
                f"{row['lr']:>8g} {row['weight_decay']:>8g} {row['train_loss']:>8.4f} {row['val_top1']:>8.2f}%{chosen}"
            )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    _print_metrics(report.predictions)
    if report.written:
        print(f"wrote {', '.join(map(str, report.written[:-1]))} and {report.written[-1]}")
    return 0


COMMANDS = {
    "embed": Command(
        help="one embedding per video, into a .npz or .parquet file (resumable)",
        description="Embed videos with a ViT; run under torchrun to share the work.",
        config="hvm1.eval.commands:EmbedConfig",
        run="hvm1.eval.commands:embed_command",
        show=_show_embed,
    ),
    "evaluate": Command(
        help="accuracy of a finetuned model on labelled videos or images",
        description="Multi-view evaluation; predictions.csv and summary.json go to DIR.",
        config="hvm1.eval.commands:EvaluateConfig",
        run="hvm1.eval.commands:evaluate_command",
        show=_show_evaluation,
    ),
    "probe": Command(
        help="linear, kNN or attentive probe on embeddings from `hvm1 embed`",
        config="hvm1.eval.commands:ProbeConfig",
        run="hvm1.eval.commands:probe_command",
        show=_show_probe,
    ),
}
