"""What researchers measure with the models: completion scores against baselines, feature maps."""

from __future__ import annotations

import math
import sys

from .command import Command, plural, print_skipped
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
            print(
                f"{s.mask_type:<9} {s.mask_ratio:>5.2f}  {s.method:<{width}} {_format_metric(s.loss, 4):>8} "
                f"{_format_metric(s.psnr, 2):>7} {_format_metric(s.ssim, 4):>6}"
            )
        for file in report.written:
            print(file)
    print(
        f"{report.videos - len(report.skipped)} of {report.videos} videos scored into {report.out_dir}", file=sys.stderr
    )
    return 1 if print_skipped(report.skipped) else 0


def _show_surprise(report) -> int:
    from ..eval.surprise import MODEL

    for video in report.videos:
        peak = video.summary(MODEL)
        print(
            f"{video.video}: {plural(len(video.windows), 'window')}, model loss max {peak.max:.4f} at "
            f"{peak.peak_start:.2f}-{peak.peak_end:.2f} s, mean {peak.mean:.4f}"
        )
    for video in report.short:
        print(f"{video}: shorter than one window, read as one padded window", file=sys.stderr)
    if report.figures:
        print(f"{plural(len(report.pairs), 'pair')}: relative accuracy (95% bootstrap interval) and AUROC of surprise")
        width = max(len(f.method) for f in report.figures)
        for f in report.figures:
            print(
                f"  {f.method:<{width}} by {f.aggregation:<4} {f.accuracy:.3f} "
                f"[{f.interval.low:.3f}, {f.interval.high:.3f}]  AUROC {f.auroc:.3f}"
            )
    for file in report.written:
        print(file)
    print(f"{plural(len(report.videos), 'video')} read into {report.out_dir} ({report.precision})", file=sys.stderr)
    return 1 if print_skipped(report.skipped) else 0


COMMANDS = {
    "score": Command(
        help="score MAE completions (loss, PSNR, SSIM on removed patches) against baselines",
        description="For each video, mask type and mask ratio: the models' and the baselines' (mean, nearest "
        "visible frame, interpolation in time) errors on the removed patches, on shared seeded masks. "
        "Writes OUT/scores.csv and OUT/scores.png and prints the mean over videos.",
        config="hvm1.eval.scores:ScoreConfig",
        run="hvm1.eval.scores:score",
        show=_show_scores,
    ),
    "surprise": Command(
        help="surprise over time: an MAE's error on hidden future frames, window by window, against baselines",
        description="Windows of the model's frames every --stride seconds over each whole video (streamed); in each "
        "the last --future-frames frames (or the middle ones) are hidden and the MAE's loss on them is "
        "recorded beside the baselines' (copy the last visible frame, mean). Writes OUT/surprise.csv, a "
        "plot and an error-map MP4 per video, OUT/summary.json; with --pairs, the relative accuracy and "
        "AUROC of possible/impossible video pairs.",
        config="hvm1.eval.surprise:SurpriseConfig",
        run="hvm1.eval.surprise:surprise",
        show=_show_surprise,
    ),
    "pca": Command(
        help="feature maps: a ViT's patch tokens reduced by PCA to 3 components, drawn as colours",
        description="Frames over their feature maps (one PCA over all time steps, each component min-max scaled "
        "to [0, 1] as R, G, B), one picture per video; --joint fits one PCA across all videos.",
        config="hvm1.viz.pca:PcaConfig",
        run="hvm1.viz.pca:pca",
        show=show_pictures,
    ),
}
