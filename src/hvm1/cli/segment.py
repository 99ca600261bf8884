"""Video object segmentation: `hvm1 propagate` (label propagation, DAVIS-2017 scores)."""

from __future__ import annotations

import sys

from .command import Command, print_skipped


def _show_propagation(report) -> int:
    for name, masks in report.masks.items():
        overlays = ", ".join(str(path) for path in report.overlays[name])
        print(f"{name}: {len(masks)} masks in {masks[0].parent}; overlay {overlays}")
    for name, reason in report.unscored.items():
        print(f"{name}: not scored ({reason}), left out of the global means")
    if report.scores:
        print("  ".join(f"{column} {value:.3f}" for column, value in report.summary.items()))
        print(f"wrote {report.tables[0]} and {report.tables[1]}")
    elif report.davis:
        print("no sequence has a scored frame: nothing scored, no tables written", file=sys.stderr)
    return 1 if print_skipped(report.skipped) else 0


COMMANDS = {
    "propagate": Command(
        help="segment a video from its first frame's mask by label propagation (DAVIS-2017 scores)",
        description="Label propagation with a ViT's patch features, as the published evaluation does it. "
        "SOURCE is a DAVIS-2017 folder (JPEGImages/480p, Annotations/480p, ImageSets/2017) or a "
        "video file with --mask. Writes OUT/SEQ/NNNNN.png (indexed, DAVIS palette), "
        "OUT/SEQ/overlay.jpg and, for fully annotated sequences, the DAVIS tables in OUT.",
        config="hvm1.segment.runs:PropagateConfig",
        run="hvm1.segment.runs:propagate_command",
        show=_show_propagation,
    ),
}
