"""The main job's commands: completion pictures and attention maps."""

from __future__ import annotations

import sys

from .command import Command, print_skipped


def show_pictures(report) -> int:
    """Print each file written (stdout) and the summary (stderr); 1 when a video was skipped."""
    for file in report.written:
        print(file)
    print(f"{len(report.pictures)} of {report.videos} videos written to {report.out_dir}", file=sys.stderr)
    return 1 if print_skipped(report.skipped) else 0


COMMANDS = {
    "complete": Command(
        help="mask videos and let an MAE complete them: one picture per video (original, masked, completion)",
        config="hvm1.viz.runs:CompleteConfig",
        run="hvm1.viz.runs:complete",
        show=show_pictures,
    ),
    "attention": Command(
        help="draw a ViT's last-block CLS attention over the frames: one picture per video",
        description="The last block's CLS attention over the patches, one map per temporal token: a token spans "
        "t_patch_size frames (2 for HVM-1), so 16 frames give 8 maps, each drawn over the first frame "
        "of its token.",
        config="hvm1.viz.runs:AttentionConfig",
        run="hvm1.viz.runs:attention",
        show=show_pictures,
    ),
}
