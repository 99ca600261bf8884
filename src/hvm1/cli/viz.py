"""The main job's commands: completion pictures and attention maps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    _add_device_arg,
    _add_download_arg,
    _add_model_args,
    _add_precision_arg,
    _add_size_args,
    _first_use,
    _note_fewer,
    _out_dir,
    _parse_set,
    _precision_for,
    _print_failures,
    _say_on_interrupt,
    _sized_preprocessing,
)

# Each command's one-line help, as `hvm1 -h` lists it without importing what the commands need.
COMMANDS = {
    "complete": "mask videos and let an MAE complete them: one picture per video (original, masked, completion)",
    "attention": "draw a ViT's last-block CLS attention over the frames: one picture per video",
}


def _add_video_run_args(parser: argparse.ArgumentParser, command: str) -> None:
    """Video selection, model, device and output options shared by `complete` and `attention`."""
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="video files or folders (searched recursively); none: a synthetic sample clip")
    parser.add_argument("--video-dir", "--video_dir", dest="video_dirs", action="append", default=[], type=Path,
                        metavar="DIR", help="a folder of videos, like a PATH (the published spelling); repeatable")
    _add_model_args(parser, model_aliases=("--model_name",))
    _add_download_arg(parser)
    parser.add_argument("--num-vids", "--num_vids", type=int, metavar="K",
                        help="draw K of the videos at random with --seed (default: all of them)")
    seeded = "the draw of videos and the random masks" if command == "complete" else "the draw of videos (--num-vids)"
    parser.add_argument("--seed", type=int, default=0, help=f"seeds {seeded} (default 0)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help=f"where the pictures go (default: a new folder hvm1-{command}-DATE-* in the temp folder)")
    _add_device_arg(parser)
    _add_precision_arg(parser)
    if command in ("complete", "attention"):
        parser.add_argument("--no-labels", dest="labels", action="store_false",
                            help="the published picture: no row names, frame times or colour scale")
    _add_size_args(parser, published_spelling=True)


def _load_viz_model(args: argparse.Namespace, model_type: str):
    """`hvm1.zoo.load_for_inputs` with the command's flags; says on stderr what a first use downloads."""
    from ..devices import resolve_device
    from ..zoo import load_for_inputs

    def before_download(entry) -> None:
        if (first_use := _first_use(entry.name, args.full_download)) is not None:
            print(f"{first_use}, into the Hugging Face cache", file=sys.stderr)

    return load_for_inputs(
        args.checkpoint or args.model, model_type=model_type, device=resolve_device(args.device),
        full_download=args.full_download, before_download=before_download,
        **_parse_set(args.set),
    )


def _progress_bar(label: str):
    """A progress callback for `hvm1.viz` runs: one redrawn line on a terminal, a line per video otherwise."""
    stream = sys.stderr
    live = stream.isatty()

    def show(done: int, total: int, video: Path) -> None:
        if live:
            filled = round(24 * done / total)
            end = "\n" if done == total else ""
            stream.write(f"\r{label} [{'#' * filled}{'.' * (24 - filled)}] {done}/{total} {video.name[:40]:<40}{end}")
        else:
            stream.write(f"{label} {done}/{total} {video}\n")
        stream.flush()

    return show


def _run_on_videos(args: argparse.Namespace, command: str, run) -> int:
    """Select the videos (or make the sample clip), call `run(videos, out_dir, progress)`, print the summary."""
    import tempfile

    from ..data import select_videos
    from ..viz import SAMPLE_NAME, make_sample_clip

    paths = [*args.paths, *args.video_dirs]
    with tempfile.TemporaryDirectory(prefix="hvm1-sample-") as scratch:
        if paths:
            videos = select_videos(paths, args.num_vids, args.seed)
            _note_fewer(args.num_vids, len(videos))
        else:
            print("no videos named: using a synthetic sample clip of moving shapes", file=sys.stderr)
            videos = [make_sample_clip(Path(scratch) / SAMPLE_NAME)]
        out_dir = _out_dir(args, command)
        _say_on_interrupt(f"the pictures written so far are in {out_dir}")
        report = run(videos, out_dir, _progress_bar(command))
    for written in report.written:
        for file in written.files:
            print(file)
    print(f"{len(report.written)} of {len(videos)} videos written to {out_dir}", file=sys.stderr)
    return 1 if _print_failures(report.failures) else 0


def _cmd_complete(args: argparse.Namespace) -> int:
    from ..viz import complete_videos, default_mask_ratio

    mask_ratio = default_mask_ratio(args.mask_type) if args.mask_ratio is None else args.mask_ratio
    loaded = _load_viz_model(args, "mae")
    model, name = loaded.model, loaded.stem
    preprocessing = _sized_preprocessing(args, loaded.preprocessing, model)
    precision = _precision_for(args, next(model.parameters()).device, model=model)
    return _run_on_videos(args, "complete", lambda videos, out_dir, progress: complete_videos(
        model, videos, out_dir, model_name=name, preprocessing=preprocessing, mask_type=args.mask_type,
        mask_ratio=mask_ratio, seed=args.seed, scale_each=args.scale_each, animate=args.animate, labels=args.labels,
        precision=precision, progress=progress, full_frame=args.full_frame,
    ))


def _cmd_attention(args: argparse.Namespace) -> int:
    from ..viz import attention_videos

    loaded = _load_viz_model(args, "vit")
    model, name = loaded.model, loaded.stem
    preprocessing = _sized_preprocessing(args, loaded.preprocessing, model)
    precision = _precision_for(args, next(model.parameters()).device, model=model)
    return _run_on_videos(args, "attention", lambda videos, out_dir, progress: attention_videos(
        model, videos, out_dir, model_name=name, preprocessing=preprocessing, heads=args.heads, labels=args.labels,
        precision=precision, progress=progress, full_frame=args.full_frame,
    ))


def add_commands(sub: argparse._SubParsersAction) -> None:
    complete = sub.add_parser(
        "complete", help=COMMANDS["complete"]
    )
    _add_video_run_args(complete, "complete")
    complete.add_argument("--mask-type", "--mask_type", choices=("random", "temporal", "center"), default="random",
                          help="which tokens to remove: random (anywhere, default); temporal (the final frames, "
                               "all of each); center (the middle frames in time, all of each: not a spatial box)")
    complete.add_argument("--mask-ratio", "--mask_ratio", type=float, metavar="R",
                          help="the fraction of tokens removed (default 0.9 for random, 0.5 for temporal and center)")
    complete.add_argument("--scale-each", action="store_true",
                          help="stretch each frame from its own min to max (the published look) instead of true colours")
    complete.add_argument("--animate", choices=("mp4", "gif"),
                          help="also write original | masked | completion side by side over time, beside the picture")
    complete.set_defaults(func=_cmd_complete)
    attention = sub.add_parser(
        "attention", help=COMMANDS["attention"],
        description="The last block's CLS attention over the patches, one map per temporal token: a token spans "
                    "t_patch_size frames (2 for HVM-1), so 16 frames give 8 maps, each drawn over the first frame "
                    "of its token.",
    )
    _add_video_run_args(attention, "attention")
    attention.add_argument("--heads", choices=("mean", "each"), default="mean",
                           help="one row averaged over heads (default), or a row per head")
    attention.set_defaults(func=_cmd_attention)


