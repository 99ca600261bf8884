"""Embeddings and evaluation commands: embed, evaluate, probe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..settings import parse_overrides
from .command import print_skipped
from .common import (
    _add_device_arg,
    _add_download_arg,
    _add_model_args,
    _add_precision_arg,
    _add_size_args,
    _out_dir,
    _precision_for,
    _say_on_interrupt,
    _sized_preprocessing,
)

# Each command's one-line help, as `hvm1 -h` lists it without importing what the commands need.
COMMANDS = {
    "embed": "one embedding per video, into a .npz or .parquet file (resumable)",
    "evaluate": "accuracy of a finetuned model on labelled videos or images",
    "probe": "linear, kNN or attentive probe on embeddings from `hvm1 embed`",
}


def _load_eval_model(args: argparse.Namespace):
    """The ViT of `args` on the CPU (a command moves it to its device), loaded with
    `hvm1.zoo.load_for_inputs` (name and preprocessing at the size built, `--set` included)."""
    from ..zoo import load_for_inputs

    return load_for_inputs(args.checkpoint or args.model, model_type="vit",
                           full_download=getattr(args, "full_download", False), **parse_overrides(args.set))


def _clip_progress(label: str, enabled: bool = True, unit: str = "clip"):
    """A progress callback (clips done, clips in all) drawing a bar with clips (`unit`s) per second on stderr."""
    from tqdm import tqdm

    bar = None

    def show(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit=unit, disable=not enabled, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return show


def _print_metrics(predictions) -> None:
    metrics = predictions.metrics
    classes = predictions.logits.shape[1]
    # With 5 classes or fewer the true class is always among the top 5: 100% says nothing.
    top5 = f"{metrics.top5:.2f}%" if classes > 5 else f"n/a ({classes} classes)"
    print(f"top-1 {metrics.top1:.2f}%  top-5 {top5}  mean per-class {metrics.mean_class_accuracy:.2f}%  "
          f"loss {metrics.loss:.4f}  ({metrics.count} examples)")


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
        print("lowest per-class top-1: " + "; ".join(f"{named(row.index)} {row.top1:.1f}% of {row.count}"
                                                      for row in worst))
    pairs = predictions.confused_pairs(SHOWN_CONFUSIONS)
    if pairs:
        print("most confused (true -> predicted, examples):")
        for pair in pairs:
            print(f"  {named(pair.true)} -> {named(pair.predicted)}: {pair.count}")


def _cmd_embed(args: argparse.Namespace) -> int:
    import os

    from ..data import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, check_stride, list_files
    from ..devices import resolve_device
    from ..eval import embed_videos

    if args.stride is not None:
        check_stride(args.stride)  # before loading the model
    listing = list_files(args.paths, IMAGE_EXTENSIONS if args.images else VIDEO_EXTENSIONS)
    if not listing.files:
        kind = "images" if args.images else "videos"
        raise ValueError(f"no {kind} in {', '.join(map(str, args.paths))}: nothing to embed")
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main and listing.classes is None and len(args.paths) > 1 and any(_has_subfolders(path) for path in args.paths):
        print(f"note: {len(args.paths)} paths are named, so the videos get no labels (label -1): labels come from "
              f"one folder of class subfolders or one CSV; embed each set into its own file to keep them",
              file=sys.stderr)
    loaded = _load_eval_model(args)
    model, name = loaded.model, loaded.source
    preprocessing = _sized_preprocessing(args, loaded.preprocessing, model)
    device = resolve_device(args.device)
    precision = _precision_for(args, device, say=is_main, model=model)
    _say_on_interrupt(lambda: _embed_kept(args.output))
    result = embed_videos(
        model, listing, args.output, preprocessing=preprocessing, model_name=name, pool=args.pool,
        num_clips=args.num_clips, keep_clips=args.keep_clips, sampling_rate=args.sampling_rate,
        batch_size=args.batch_size, num_workers=args.num_workers, device=device, precision=precision,
        layer=args.layer, progress=_clip_progress("embed", enabled=is_main, unit="video" if args.stride else "clip"),
        full_frame=args.full_frame, images=args.images, stride=args.stride,
    )
    if not is_main:
        return 0
    rows = len(result.embeddings) if result.embeddings is not None else 0
    if args.stride:
        videos = len(set(result.embeddings.paths)) if result.embeddings is not None else 0
        print(f"{args.output}: {rows} windows every {args.stride:g} s of {videos} videos ({result.embedded} embedded "
              f"now, {result.reused} already there)")
        for path, frames in result.padded:
            print(f"note: {path} is shorter than one window: one window, its last {frames} frames repeat the last "
                  f"frame", file=sys.stderr)
    else:
        print(f"{args.output}: {rows} {'images' if args.images else 'videos'} ({result.embedded} embedded now, "
              f"{result.reused} already there)")
    return 1 if print_skipped(result.skipped) else 0


def _has_subfolders(path: Path) -> bool:
    return path.is_dir() and any(entry.is_dir() for entry in path.iterdir())


def _embed_kept(output: Path) -> str:
    parts = output.with_name(output.name + ".parts")
    if any(parts.glob("part-*.npz")):
        return (f"the embeddings saved so far (a chunk at a time) are in {parts}: run the same command again "
                f"to embed only the rest")
    return f"no chunk of embeddings was saved yet ({output} and {parts} hold nothing new)"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..eval import evaluate, parse_views

    loaded = _load_eval_model(args)
    model, name = loaded.model, loaded.source
    preprocessing = _sized_preprocessing(args, loaded.preprocessing, model)
    device = resolve_device(args.device)
    precision = _precision_for(args, device, model=model)
    _say_on_interrupt("nothing was written (predictions.csv and summary.json are written when every file is done)")
    predictions = evaluate(
        model, args.data, preprocessing=preprocessing, image_mode=True if args.images else None,
        views=parse_views(args.views) if args.views else None, sampling_rate=args.sampling_rate,
        batch_size=args.batch_size, num_workers=args.num_workers, device=device, precision=precision,
        model_name=name, progress=_clip_progress("evaluate"), full_frame=args.full_frame,
    )
    files = predictions.write(_out_dir(args, "evaluate"))
    _print_metrics(predictions)
    _print_confusions(predictions)
    print(f"wrote {', '.join(map(str, files[:-1]))} and {files[-1]}")
    return 1 if print_skipped(predictions.skipped) else 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from ..eval import load_embeddings, probe

    if args.method == "attentive":
        predictions = _attentive_probe(args)
    else:
        predictions = probe(
            load_embeddings(args.train), load_embeddings(args.test), method=args.method, shots=args.shots,
            seed=args.seed, k=args.k, weight_decay=args.weight_decay,
        )
    predictions.settings.update(train=str(args.train), test=str(args.test))
    voters = predictions.settings.get("train_videos", 0)
    if args.method == "knn" and args.k > voters:
        print(f"note: --k {args.k} is more than the {voters} training videos: every one of them votes (k = {voters})",
              file=sys.stderr)
    _print_metrics(predictions)
    if args.out_dir:
        files = predictions.write(args.out_dir)
        print(f"wrote {', '.join(map(str, files[:-1]))} and {files[-1]}")
    return 0


def _attentive_probe(args: argparse.Namespace):
    """Train the attentive-probe grid on memory-mapped token files, print the grid, return the predictions."""
    from ..devices import resolve_device
    from ..eval import load_embeddings
    from ..eval.attentive import attentive_probe

    def tokens(path):
        return load_embeddings(path, mmap=True)

    predictions = attentive_probe(
        tokens(args.train), tokens(args.test), val=tokens(args.val) if args.val else None, shots=args.shots,
        seed=args.seed, lrs=args.lrs, weight_decays=args.weight_decays, depth=args.depth, num_heads=args.heads,
        epochs=args.epochs, batch_size=args.batch_size, device=resolve_device(args.device),
        progress=_clip_progress("attentive probe", unit="epoch"),
    )
    settings = predictions.settings
    print(f"{'lr':>8} {'wd':>8} {'loss':>8} {'val top-1':>9}")
    for row in settings["grid"]:
        chosen = " <" if (row["lr"], row["weight_decay"]) == (settings["lr"], settings["weight_decay"]) else ""
        print(f"{row['lr']:>8g} {row['weight_decay']:>8g} {row['train_loss']:>8.4f} {row['val_top1']:>8.2f}%{chosen}")
    return predictions


def _add_loader_args(parser: argparse.ArgumentParser) -> None:
    from ..eval.embed import DEFAULT_SAMPLING_RATE

    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="clips per forward pass (default 8)")
    parser.add_argument("--num-workers", type=int, default=2, metavar="W",
                        help="DataLoader processes decoding videos while the model runs (default 2; 0: none)")
    parser.add_argument("--sampling-rate", type=int, default=DEFAULT_SAMPLING_RATE, metavar="R",
                        help=f"take every R-th frame at 30 fps (default {DEFAULT_SAMPLING_RATE}, as published)")
    _add_device_arg(parser, note="; under torchrun each rank its own GPU")
    _add_precision_arg(parser, deprecated_dtype=True)
    _add_size_args(parser)


def add_commands(sub: argparse._SubParsersAction) -> None:
    from ..eval import METHODS, POOLS

    embed = sub.add_parser("embed", help=COMMANDS["embed"],
                           description="Embed videos with a ViT; run under torchrun to share the work.")
    embed.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                       help="videos or folders (searched recursively); one folder of class subfolders or one CSV "
                            "manifest (path,label) also gives labels")
    _add_model_args(embed)
    _add_download_arg(embed)
    embed.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                       help="OUT.npz or OUT.parquet; rerunning with the same OUT adds only the videos not in it")
    embed.add_argument("--pool", choices=POOLS, default="cls",
                       help="cls: the final-normed CLS token (default); mean: mean of the patch tokens; tokens: all")
    embed.add_argument("--num-clips", type=int, default=1, metavar="K",
                       help="K clips evenly spaced over each video, averaged (default 1: the center clip)")
    embed.add_argument("--keep-clips", action="store_true", help="also store each clip's embedding")
    embed.add_argument("--stride", type=float, metavar="S",
                       help="embed windows every S seconds over each whole video instead, one row per window with "
                            "its start and end time (the video decoded once)")
    embed.add_argument("--images", action="store_true",
                       help="the files are images (.jpg .png ...), each one static clip read as `evaluate --images` "
                            "reads it")
    embed.add_argument("--layer", type=int, metavar="K",
                       help="pool block K's tokens (0-based, negative from the end), final norm applied (default: "
                            "the final output)")
    _add_loader_args(embed)
    embed.set_defaults(func=_cmd_embed)

    evaluate = sub.add_parser("evaluate", help=COMMANDS["evaluate"],
                              description="Multi-view evaluation; predictions.csv and summary.json go to DIR.")
    evaluate.add_argument("data", type=Path, metavar="DATA",
                          help="a folder of class subfolders (label: sorted index) or a CSV manifest (path,label)")
    _add_model_args(evaluate)
    _add_download_arg(evaluate)
    evaluate.add_argument("--views", metavar="CLIPSxCROPS",
                          help="clips over time x crops (1 or 3) per video, logits averaged (default 2x3)")
    evaluate.add_argument("--images", action="store_true",
                          help="image mode: DATA holds images (default for the imagenet-2pt models)")
    evaluate.add_argument("--out-dir", type=Path, metavar="DIR",
                          help="where the files go (default: a new folder hvm1-evaluate-DATE-* in the temp folder)")
    _add_loader_args(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    probe = sub.add_parser("probe", help=COMMANDS["probe"])
    probe.add_argument("--train", type=Path, required=True, metavar="FILE", help="labelled training embeddings")
    probe.add_argument("--test", type=Path, required=True, metavar="FILE", help="labelled test embeddings")
    probe.add_argument("--method", choices=(*METHODS, "attentive"), default="linear",
                       help="linear: logistic regression (default); knn: k nearest neighbours by cosine similarity; "
                            "attentive: a query cross-attending over --pool tokens embeddings")
    probe.add_argument("--shots", type=int, metavar="K", help="train on K videos per class (default: all)")
    probe.add_argument("--seed", type=int, default=0, help="seeds the draw of --shots (default 0)")
    probe.add_argument("--k", type=int, default=20, help="neighbours for knn (default 20)")
    probe.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty of the linear probe (default 1e-4)")
    from ..eval.attentive import DEFAULT_LRS, DEFAULT_WEIGHT_DECAYS

    attentive = probe.add_argument_group("attentive probe")
    attentive.add_argument("--val", type=Path, metavar="FILE",
                           help="labelled validation tokens that pick the best of the grid (default: 20%% of each "
                                "class of --train held out with --seed)")
    attentive.add_argument("--lrs", nargs="+", type=float, default=list(DEFAULT_LRS), metavar="LR",
                           help=f"learning rates of the grid (default {' '.join(map(str, DEFAULT_LRS))})")
    attentive.add_argument("--weight-decays", nargs="+", type=float, default=list(DEFAULT_WEIGHT_DECAYS), metavar="WD",
                           help=f"weight decays of the grid (default {' '.join(map(str, DEFAULT_WEIGHT_DECAYS))})")
    attentive.add_argument("--depth", type=int, default=1,
                           help="blocks: depth - 1 self-attention blocks, then the cross-attention (default 1)")
    attentive.add_argument("--heads", type=int, default=16, help="attention heads (default 16)")
    attentive.add_argument("--epochs", type=int, default=20, help="passes over the training tokens (default 20)")
    attentive.add_argument("--batch-size", type=int, default=32, help="videos per step (default 32)")
    _add_device_arg(attentive)
    probe.add_argument("--out-dir", type=Path, metavar="DIR", help="also write predictions.csv and summary.json")
    probe.set_defaults(func=_cmd_probe)


