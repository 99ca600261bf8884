"""What researchers measure with the models: completion scores against baselines, feature maps."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import cast

from .common import (
    _add_autorotate_arg,
    _add_device_arg,
    _add_precision_arg,
    _add_set_arg,
    _note_fewer,
    _out_dir,
    _parse_set,
    _precision_for,
    _print_failures,
    _say_on_interrupt,
    _sized_preprocessing,
)
from .viz import _add_video_run_args

# Each command's one-line help, as `hvm1 -h` lists it without importing what the commands need.
COMMANDS = {
    "score": "score MAE completions (loss, PSNR, SSIM on removed patches) against baselines",
    "pca": "feature maps: a ViT's patch tokens reduced by PCA to 3 components, drawn as colours",
}


def _load_maes(args: argparse.Namespace) -> dict:
    """Every `--model` and `--checkpoint` of `args` as an MAE on its device, by name (zoo name or file stem)."""
    from ..devices import resolve_device
    from ..zoo import file_stem, load_model

    device = resolve_device(args.device)
    overrides = _parse_set(args.set)
    sources = [*args.models, *args.checkpoints]
    if not sources:
        raise ValueError("name at least one --model NAME or --checkpoint FILE")
    models = {}
    for source in sources:
        name = file_stem(source) if isinstance(source, Path) else source
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

    from ..data import select_videos
    from ..eval.scores import plot_scores, score_videos, write_scores
    from ..zoo import preprocessing_for
    from .viz import _progress_bar

    videos = select_videos(args.paths, args.num_vids, args.seed)
    _note_fewer(args.num_vids, len(videos))
    models = _load_maes(args)
    first_source = (args.models or args.checkpoints)[0]
    preprocessing = dataclasses.replace(preprocessing_for(first_source, next(iter(models.values()))),
                                        autorotate=args.autorotate)
    out_dir = _out_dir(args, "score")
    precision = _precision_for(args, next(next(iter(models.values())).parameters()).device, models=models.values())
    _say_on_interrupt(f"nothing was written (scores go to {out_dir} when every video is scored)")
    report = score_videos(
        models, videos, preprocessing=preprocessing, mask_types=args.mask_types, mask_ratios=args.mask_ratios,
        seed=args.seed, precision=precision, progress=_progress_bar("score"),
    )
    if report.scores:
        _print_summary(report.scores)
        print(write_scores(report.scores, out_dir / "scores.csv"))
        print(plot_scores(report.scores, out_dir / "scores.png", title=", ".join(models)))
    print(f"{len(videos) - len(report.failures)} of {len(videos)} videos scored into {out_dir}", file=sys.stderr)
    return 1 if _print_failures(report.failures) else 0


def _cmd_pca(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..models import VideoViT
    from ..viz.pca import pca_videos
    from ..zoo import load_for_inputs
    from .viz import _run_on_videos

    if args.full_frame:
        raise ValueError("--full-frame is not available for pca yet: its maps are drawn on square frames")
    loaded = load_for_inputs(args.checkpoint or args.model, model_type="vit", device=resolve_device(args.device),
                             full_download=getattr(args, "full_download", False), **_parse_set(args.set))
    model, name = cast(VideoViT, loaded.model), loaded.stem
    preprocessing = _sized_preprocessing(args, loaded.preprocessing, model)  # any size: embeddings interpolated
    precision = _precision_for(args, next(model.parameters()).device, model=model)
    if args.layer is not None:
        name = f"{name}_layer{args.layer}"
    return _run_on_videos(args, "pca", lambda videos, out_dir, progress: pca_videos(
        model, videos, out_dir, model_name=name, preprocessing=preprocessing, layer=args.layer, joint=args.joint,
        foreground_threshold=args.foreground, animate=args.animate, precision=precision, progress=progress,
    ))


def add_commands(sub: argparse._SubParsersAction) -> None:
    from ..eval.scores import DEFAULT_SCORE_RATIOS
    from ..models.masking import MASK_TYPES

    score = sub.add_parser(
        "score", help=COMMANDS["score"],
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
    _add_device_arg(score)
    _add_precision_arg(score)
    _add_autorotate_arg(score, "videos")
    score.set_defaults(func=_cmd_score)

    pca = sub.add_parser(
        "pca", help=COMMANDS["pca"],
        description="Frames over their feature maps (one PCA over all time steps, each component min-max scaled "
                    "to [0, 1] as R, G, B), one picture per video; --joint fits one PCA across all videos.",
    )
    _add_video_run_args(pca, "pca")
    pca.add_argument("--layer", type=int, metavar="K",
                     help="tokens of block K (0-based, negative from the end), final norm applied (default: the "
                          "final-normed output)")
    pca.add_argument("--joint", action="store_true",
                     help="one PCA across all the videos, so a colour means the same feature in each")
    pca.add_argument("--foreground", type=float, metavar="T",
                     help="DINOv2's foreground step: split at T (e.g. 0.5) on the scaled first component, keep the "
                          "smaller side, refit on it, draw the rest black")
    pca.add_argument("--animate", choices=("mp4", "gif"), help="also write each frame beside its map over time")
    pca.set_defaults(func=_cmd_pca)
