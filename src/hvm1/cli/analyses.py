"""What researchers measure with the models: completion scores against baselines, feature maps."""

from __future__ import annotations

import math
import sys

from .command import Command, print_skipped
from .viz import show_pictures


def _format_metric(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _show_scores(report) -> int:
    from ..eval.scores import summarise

    if report.scores:
        summary = summarise(report.scores)
        width = max([len("method"), *(len(s.method) for s in summary)])
        print(f"{'mask_type':<9} {'ratio':>5}  {'method':<{width}} {'loss':>8} {'psnr':>7} {'ssim':>6}")
        for s in summary:
            print(f"{s.mask_type:<9} {s.mask_ratio:>5.2f}  {s.method:<{width}} {_format_metric(s.loss, 4):>8} "
                  f"{_format_metric(s.psnr, 2):>7} {_format_metric(s.ssim, 4):>6}")
        for file in report.written:
            print(file)
    print(f"{report.videos - len(report.skipped)} of {report.videos} videos scored into {report.out_dir}",
          file=sys.stderr)
    return 1 if print_skipped(report.skipped) else 0


COMMANDS = {
    "score": Command(
        help="score MAE completions (loss, PSNR, SSIM on removed patches) against baselines",
        description="For each video, mask type and mask ratio: the models' and the baselines' (mean, nearest "
                    "visible frame, interpolation in time) errors on the removed patches, on shared seeded masks. "
                    "Writes OUT/scores.csv and OUT/scores.png and prints the mean over videos.",
        config="hvm1.eval.scores:ScoreConfig", run="hvm1.eval.scores:score", show=_show_scores,
    ),
    "pca": Command(
        help="feature maps: a ViT's patch tokens reduced by PCA to 3 components, drawn as colours",
        description="Frames over their feature maps (one PCA over all time steps, each component min-max scaled "
                    "to [0, 1] as R, G, B), one picture per video; --joint fits one PCA across all videos.",
        config="hvm1.viz.pca:PcaConfig", run="hvm1.viz.pca:pca", show=show_pictures,
    ),
}
