"""What researchers measure with the models: completion scores against baselines."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..devices import DEVICE_CHOICES
from .common import _add_set_arg, _parse_set, _preprocessing_as_built, _print_failures


def _load_maes(args: argparse.Namespace) -> dict:
    """Every `--model` and `--checkpoint` of `args` as an MAE on its device, by name (zoo name or file stem)."""
    from ..devices import resolve_device
    from ..zoo import load_model

    device = resolve_device(args.device)
    overrides = _parse_set(args.set)
    sources = [*args.models, *args.checkpoints]
    if not sources:
        raise ValueError("name at least one --model NAME or --checkpoint FILE")
    models = {}
    for source in sources:
        name = Path(source).stem if isinstance(source, Path) else source
        if name in models:
            raise ValueError(f"two models are named {name!r}; scores are told apart by name")
        models[name] = load_model(source, model_type="mae", device=device, **overrides)
    return models


def _format_metric(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _print_summary(scores) -> None:
    from ..eval.scores import summarise

    summary = summarise(scores)
    width = max([len("method"), *(len(s.method) for s in summary)])
    print(f"{'mask_type':<9} {'ratio':>5}  {'method':<{width}} {'loss':>8} {'psnr':>7} {'ssim':>6}")
    for s in summary:
        print(f"{s.mask_type:<9} {s.mask_ratio:>5.2f}  {s.method:<{width}} {_format_metric(s.loss, 4):>8} "
              f"{_format_metric(s.psnr, 2):>7} {_format_metric(s.ssim, 4):>6}")


def _cmd_score(args: argparse.Namespace) -> int:
    import tempfile
    import time

    from ..eval.scores import plot_scores, score_videos, write_scores
    from ..viz import select_videos
    from .viz import _progress_bar

    videos = select_videos(args.paths, args.num_vids, args.seed)
    models = _load_maes(args)
    first_source = (args.models or args.checkpoints)[0]
    preprocessing = _preprocessing_as_built(first_source, next(iter(models.values())))
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix=f"hvm1-score-{time.strftime('%Y%m%d-%H%M%S')}-"))
    report = score_videos(
        models, videos, preprocessing=preprocessing, mask_types=args.mask_types, mask_ratios=args.mask_ratios,
        seed=args.seed, progress=_progress_bar("score"),
    )
    if report.scores:
        _print_summary(report.scores)
        print(write_scores(report.scores, out_dir / "scores.csv"))
        print(plot_scores(report.scores, out_dir / "scores.png", title=", ".join(models)))
    print(f"{len(videos) - len(report.failures)} of {len(videos)} videos scored into {out_dir}", file=sys.stderr)
    return 1 if _print_failures(report.failures) else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from ..eval.scores import DEFAULT_SCORE_RATIOS
    from ..models.masking import MASK_TYPES

    score = sub.add_parser(
        "score", help="score MAE completions (loss, PSNR, SSIM on removed patches) against baselines",
        description="For each video, mask type and mask ratio: the models' and the baselines' (mean, nearest "
                    "visible frame, interpolation in time) errors on the removed patches, on shared seeded masks. "
                    "Writes OUT/scores.csv and OUT/scores.png and prints the mean over videos.",
    )
    score.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="video files or folders (searched recursively)")
    score.add_argument("--model", dest="models", action="append", default=[], metavar="NAME",
                       help="a zoo MAE name or a checkpoint file; repeatable (all models share one token grid)")
    score.add_argument("--checkpoint", dest="checkpoints", action="append", default=[], type=Path, metavar="FILE",
                       help="a checkpoint file (named after its stem); repeatable")
    _add_set_arg(score)
    score.add_argument("--mask-types", nargs="+", choices=MASK_TYPES, default=list(MASK_TYPES), metavar="TYPE",
                       help=f"mask types to score (default: {' '.join(MASK_TYPES)})")
    score.add_argument("--mask-ratios", nargs="+", type=float, default=list(DEFAULT_SCORE_RATIOS), metavar="R",
                       help=f"mask ratios to sweep (default: {' '.join(map(str, DEFAULT_SCORE_RATIOS))})")
    score.add_argument("--num-vids", type=int, metavar="K", help="draw K of the videos at random with --seed")
    score.add_argument("--seed", type=int, default=0, help="seeds the random masks and the draw of videos (default 0)")
    score.add_argument("--out-dir", type=Path, metavar="OUT",
                       help="where scores.csv and scores.png go (default: a new folder hvm1-score-DATE-* in the temp folder)")
    score.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                       help="auto (default) picks cuda, then mps, then cpu")
    score.set_defaults(func=_cmd_score)
