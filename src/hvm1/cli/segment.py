"""Video object segmentation: `hvm1 propagate` (label propagation, DAVIS-2017 scores)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .command import print_skipped
from .common import (
    _add_autorotate_arg,
    _add_device_arg,
    _add_model_args,
    _add_precision_arg,
    _model_from_args,
    _precision_for,
    _say_on_interrupt,
)

# Each command's one-line help, as `hvm1 -h` lists it without importing what the commands need.
COMMANDS = {
    "propagate": "segment a video from its first frame's mask by label propagation (DAVIS-2017 scores)",
}


def _frame_progress(enabled: bool = True):
    """A progress callback (sequence, frames done, frames in it) drawing a bar per sequence on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def show(name: str, done: int, total: int) -> None:
        if name not in bars:
            bars[name] = tqdm(total=total, desc=name, unit="frame", disable=not enabled, dynamic_ncols=True)
        bar = bars[name]
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return show


def _cmd_propagate(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..segment import PropagationConfig, propagate_davis, propagate_video

    config = PropagationConfig(
        short_side=args.short_side, n_last_frames=args.n_last_frames,
        size_mask_neighborhood=args.size_mask_neighborhood, topk=args.topk, temperature=args.temperature,
        clip_frames=args.num_frames,
    )
    source = args.source
    if source.is_dir():
        if args.mask:
            raise ValueError(f"--mask is for a video file; {source} is a folder, whose first annotations are used")
        listing = source / "ImageSets" / "2017" / f"{args.split}.txt"
        if args.sequences is None and not listing.is_file():
            raise ValueError(f"{source} is not a DAVIS-2017 folder: no {listing.relative_to(source)}")
    elif not args.mask:
        raise ValueError(f"{source} is a video file: name its first frame's mask with --mask FIRST.png")
    elif not source.is_file():
        raise ValueError(f"{source}: no such file or folder")
    device = resolve_device(args.device)
    model = _model_from_args(args, model_type="vit").to(device)
    precision = _precision_for(args, device, model=model)
    out_dir = args.out_dir
    _say_on_interrupt(f"the masks written so far are in {out_dir}")
    progress = _frame_progress()
    if source.is_dir():
        report = propagate_davis(
            model, source, out_dir, config, split=args.split, resolution=args.resolution,
            sequences=args.sequences.split(",") if args.sequences else None, animate=args.animate,
            progress=progress, precision=precision,
        )
    else:
        report = propagate_video(
            model, source, args.mask, out_dir, config, num_frames=args.max_frames,
            sampling_rate=args.sampling_rate, animate=args.animate, progress=progress, precision=precision,
            autorotate=args.autorotate,
        )
    for name, masks in report.masks.items():
        overlays = ", ".join(str(path) for path in report.overlays[name])
        print(f"{name}: {len(masks)} masks in {masks[0].parent}; overlay {overlays}")
    for name, reason in report.unscored.items():
        print(f"{name}: not scored ({reason}), left out of the global means")
    if report.scores:
        summary = report.summary
        print("  ".join(f"{column} {value:.3f}" for column, value in summary.items()))
        print(f"wrote {report.tables[0]} and {report.tables[1]}")
    elif source.is_dir():
        print("no sequence has a scored frame: nothing scored, no tables written", file=sys.stderr)
    return 1 if print_skipped(report.failures) else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from ..segment import PropagationConfig

    defaults = PropagationConfig()
    propagate = sub.add_parser(
        "propagate", help=COMMANDS["propagate"],
        description="Label propagation with a ViT's patch features, as the published evaluation does it. "
                    "SOURCE is a DAVIS-2017 folder (JPEGImages/480p, Annotations/480p, ImageSets/2017) or a "
                    "video file with --mask. Writes OUT/SEQ/NNNNN.png (indexed, DAVIS palette), "
                    "OUT/SEQ/overlay.jpg and, for fully annotated sequences, the DAVIS tables in OUT.",
    )
    propagate.add_argument("source", type=Path, metavar="DAVIS_DIR|VIDEO")
    propagate.add_argument("--mask", type=Path, metavar="FIRST.png",
                           help="the first frame's mask for a video file (indexed or greyscale PNG: pixel = object id)")
    _add_model_args(propagate)
    propagate.add_argument("--out-dir", type=Path, required=True, metavar="OUT", help="where masks and tables go")
    _add_device_arg(propagate)
    _add_precision_arg(propagate)
    propagate.add_argument("--split", default="val", help="DAVIS: the ImageSets/2017 list to run (default val)")
    propagate.add_argument("--resolution", default="480p", help="DAVIS: the frame folder (default 480p)")
    propagate.add_argument("--sequences", metavar="A,B", help="DAVIS: only these sequences (default: the split's)")
    propagate.add_argument("--max-frames", type=int, default=60, metavar="K",
                           help="video: propagate through the first K frames read (default 60)")
    propagate.add_argument("--sampling-rate", type=int, default=1, metavar="R",
                           help="video: every R-th frame at 30 fps from the start (default 1)")
    propagate.add_argument("--short-side", "--img-size", dest="short_side", type=int, default=defaults.short_side, metavar="PX",
                           help=f"frames' short side before the features (default {defaults.short_side}; the long "
                                f"side: the largest multiple of 64 at or below the proportional length)")
    propagate.add_argument("--num-frames", type=int, metavar="T",
                           help="each frame is repeated into a clip of T frames (default: the model's, 16 for HVM-1)")
    propagate.add_argument("--n-last-frames", type=int, default=defaults.n_last_frames, metavar="N",
                           help=f"recent predictions in the context, besides the first frame "
                                f"(default {defaults.n_last_frames})")
    propagate.add_argument("--size-mask-neighborhood", type=int, default=defaults.size_mask_neighborhood,
                           metavar="P", help=f"context patches at most P rows and columns away "
                                             f"(default {defaults.size_mask_neighborhood}; 0: all)")
    propagate.add_argument("--topk", type=int, default=defaults.topk, metavar="K",
                           help=f"context patches kept per target patch (default {defaults.topk})")
    propagate.add_argument("--temperature", type=float, default=defaults.temperature,
                           help=f"affinity temperature (default {defaults.temperature})")
    propagate.add_argument("--animate", choices=("mp4", "gif"), help="also write OUT/SEQ/overlay.mp4|gif")
    _add_autorotate_arg(propagate, "a video")
    propagate.set_defaults(func=_cmd_propagate)
