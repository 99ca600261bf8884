"""The `hvm1` command line: parse arguments, call the library, print.

Each command is a `_cmd_*` function registered in `_build_parser`; the library does the work and
logs, this module decides what the user sees.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .devices import DEVICE_CHOICES


# ---- shared by every command that loads a model ------------------------------------------------------------

def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_set(values: list[str]) -> dict[str, Any]:
    """`--set FIELD=VALUE` items as config overrides; values that look like an int, float or bool become one."""
    overrides = {}
    for item in values or []:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise ValueError(f"--set expects FIELD=VALUE (e.g. --set num_heads=4), got {item!r}")
        overrides[field.strip()] = _parse_value(value.strip())
    return overrides


def _add_model_args(
    parser: argparse.ArgumentParser, *, required: bool = True, model_aliases: Sequence[str] = ()
) -> None:
    """Add `--model NAME` / `--checkpoint FILE` (one of them) and `--set FIELD=VALUE` to a command.

    `model_aliases` are further spellings of `--model` (a published script's, e.g. `--model_name`).
    """
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--model", *model_aliases, dest="model", metavar="NAME",
                        help="a zoo model name (see `hvm1 list`); downloaded once")
    source.add_argument("--checkpoint", metavar="FILE", type=Path,
                        help="a checkpoint file: a published .pth or a .safetensors from `hvm1 convert`")
    _add_set_arg(parser)


def _add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="set an architecture field the checkpoint can't tell (e.g. num_heads=4); repeatable")


def _model_from_args(args: argparse.Namespace, **kwargs: Any):
    """The model `--model` / `--checkpoint` and `--set` ask for, loaded with `hvm1.load_model(**kwargs)`."""
    from .zoo import load_model

    return load_model(args.checkpoint or args.model, **kwargs, **_parse_set(args.set))


# ---- the model zoo: list, info, convert --------------------------------------------------------------------

def _cmd_list(args: argparse.Namespace) -> int:
    from .zoo import MODELS, cached_path

    header = ("name", "type", "pretraining", "finetuning", "size", "classes", "cached")
    rows = [
        (e.name, e.model_type, e.pretraining, e.finetuning, f"{e.img_size}px", str(e.num_classes or "-"),
         "yes" if cached_path(e.name) else "no")
        for e in MODELS.values()
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .hub import file_url
    from .zoo import cached_path, get_model_entry, load_model

    entry = get_model_entry(args.name)
    pre = entry.preprocessing
    model = load_model(entry.name, pretrained=False, device="meta")
    parts = "MAE: encoder and decoder" if entry.model_type == "mae" else "encoder"
    head = f" + {entry.num_classes}-class head" if entry.num_classes else ""
    cached = cached_path(entry.name)
    lines = {
        "name": entry.name,
        "type": f"{entry.model_type} (ViT-H/14 {parts}{head})",
        "pretraining": entry.pretraining,
        "finetuning": entry.finetuning,
        "file": f"{entry.filename} in the hub repo {entry.repo_id}",
        "url": file_url(entry.repo_id, entry.filename),
        "cached": str(cached) if cached else "no",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
        "input": f"{pre.num_frames} frames of {pre.img_size}x{pre.img_size}"
                 f"{' (one image repeated)' if pre.single_image else ''}, short side resized to {pre.resize_size}, "
                 f"center crop",
        "mean / std": f"{pre.mean} / {pre.std}",
    }
    if entry.top1 is not None:
        lines["published top-1"] = f"{entry.top1}% (validation, single view)"
    lines["architecture"] = " ".join(f"{k}={v}" for k, v in entry.config.to_dict().items())
    width = max(map(len, lines))
    for key, value in lines.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .zoo import convert

    path = convert(args.source, args.output, dtype=args.dtype, model_type=args.model_type, **_parse_set(args.set))
    print(f"wrote {path}: {args.dtype}, {path.stat().st_size / 1e9:.2f} GB (weights and config, no optimizer state)")
    return 0


def _add_zoo_commands(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("list", help="the published models, and which are cached")
    listing.set_defaults(func=_cmd_list)
    info = sub.add_parser("info", help="one published model: file, architecture, preprocessing")
    info.add_argument("name", help="a zoo model name (see `hvm1 list`)")
    info.set_defaults(func=_cmd_info)
    convert = sub.add_parser(
        "convert", help="write a model's weights and full config to one .safetensors file (no optimizer state)"
    )
    convert.add_argument("source", metavar="NAME_OR_PATH", help="a zoo model name or a checkpoint file")
    convert.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.safetensors",
                         help="the file to write (replaced atomically if it exists)")
    convert.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                         help="weight precision of the file (bfloat16 halves it; default float32)")
    convert.add_argument("--model-type", choices=("vit", "mae"),
                         help="vit: the encoder alone from an MAE checkpoint (default: what the file holds)")
    _add_set_arg(convert)
    convert.set_defaults(func=_cmd_convert)


# ---- the main job: completion pictures and attention maps ---------------------------------------------------

# The published checkpoint files are about this size each (two thirds of it AdamW state that is never read).
_PUBLISHED_FILE_SIZE = "about 7.6 GB"


def _add_video_run_args(parser: argparse.ArgumentParser, command: str) -> None:
    """Video selection, model, device and output options shared by `complete` and `attention`."""
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="video files or folders (searched recursively); none: a synthetic sample clip")
    parser.add_argument("--video-dir", "--video_dir", dest="video_dirs", action="append", default=[], type=Path,
                        metavar="DIR", help="a folder of videos, like a PATH (the published spelling); repeatable")
    _add_model_args(parser, model_aliases=("--model_name",))
    parser.add_argument("--num-vids", "--num_vids", type=int, metavar="K",
                        help="draw K of the videos at random with --seed (default: all of them)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the draw of videos and the random masks (default 0)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help=f"where the pictures go (default: a new folder hvm1-{command}-DATE-* in the temp folder)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default) picks cuda, then mps, then cpu")
    parser.add_argument("--img-size", "--img_size", type=int, metavar="N",
                        help="the image size the model must take (default: the model's own)")


def _load_viz_model(args: argparse.Namespace, model_type: str):
    """The model of `args` as `model_type`, its name for file names, and its preprocessing."""
    from .devices import resolve_device
    from .zoo import cached_path, get_model_entry

    device = resolve_device(args.device)
    zoo_name = args.model if args.model and not Path(args.model).is_file() else None
    if zoo_name:
        entry = get_model_entry(zoo_name)
        if args.img_size and args.img_size != entry.img_size:
            raise ValueError(f"model {entry.name!r} takes {entry.img_size} px frames, not --img-size {args.img_size}")
        _model_from_args(args, model_type=model_type, pretrained=False, device="meta")  # fails before downloading
        if cached_path(entry.name) is None:
            print(f"downloading {entry.filename} ({_PUBLISHED_FILE_SIZE}) from {entry.repo_id} once, into the "
                  f"Hugging Face cache", file=sys.stderr)
    model = _model_from_args(args, model_type=model_type, device=device)
    file = None if zoo_name else Path(args.checkpoint or args.model)
    if args.img_size and args.img_size != model.config.img_size:
        raise ValueError(f"{file} holds a model of {model.config.img_size} px frames, not --img-size {args.img_size}")
    return model, zoo_name or file.stem, _preprocessing_as_built(zoo_name or file, model)


def _preprocessing_as_built(source, model):
    """The preprocessing of a zoo name or file (a converted file records its zoo model's mean/std), at the
    image size and frame count of the model as built (`--set` included)."""
    import dataclasses

    from .zoo import preprocessing_for

    return dataclasses.replace(
        preprocessing_for(source), img_size=model.config.img_size, num_frames=model.config.num_frames
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
    import time

    from .viz import SAMPLE_NAME, make_sample_clip, select_videos

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix=f"hvm1-{command}-{time.strftime('%Y%m%d-%H%M%S')}-"))
    paths = [*args.paths, *args.video_dirs]
    with tempfile.TemporaryDirectory(prefix="hvm1-sample-") as scratch:
        if paths:
            videos = select_videos(paths, args.num_vids, args.seed)
        else:
            print("no videos named: using a synthetic sample clip of moving shapes", file=sys.stderr)
            videos = [make_sample_clip(Path(scratch) / SAMPLE_NAME)]
        report = run(videos, out_dir, _progress_bar(command))
    for written in report.written:
        for file in written.files:
            print(file)
    print(f"{len(report.written)} of {len(videos)} videos written to {out_dir}", file=sys.stderr)
    if report.failures:
        print(f"{len(report.failures)} could not be read and were skipped:", file=sys.stderr)
        for failure in report.failures:
            print(f"  {failure.video}: {failure.reason}", file=sys.stderr)
        return 1
    return 0


def _cmd_complete(args: argparse.Namespace) -> int:
    from .viz import complete_videos, default_mask_ratio

    mask_ratio = default_mask_ratio(args.mask_type) if args.mask_ratio is None else args.mask_ratio
    model, name, preprocessing = _load_viz_model(args, "mae")
    return _run_on_videos(args, "complete", lambda videos, out_dir, progress: complete_videos(
        model, videos, out_dir, model_name=name, preprocessing=preprocessing, mask_type=args.mask_type,
        mask_ratio=mask_ratio, seed=args.seed, scale_each=args.scale_each, animate=args.animate, progress=progress,
    ))


def _cmd_attention(args: argparse.Namespace) -> int:
    from .viz import attention_videos

    model, name, preprocessing = _load_viz_model(args, "vit")
    return _run_on_videos(args, "attention", lambda videos, out_dir, progress: attention_videos(
        model, videos, out_dir, model_name=name, preprocessing=preprocessing, heads=args.heads, progress=progress,
    ))


def _add_viz_commands(sub: argparse._SubParsersAction) -> None:
    complete = sub.add_parser(
        "complete", help="mask videos and let an MAE complete them: one picture per video (original, masked, completion)"
    )
    _add_video_run_args(complete, "complete")
    complete.add_argument("--mask-type", "--mask_type", choices=("random", "temporal", "center"), default="random",
                          help="which tokens to remove (default random)")
    complete.add_argument("--mask-ratio", "--mask_ratio", type=float, metavar="R",
                          help="the fraction of tokens removed (default 0.9 for random, 0.5 for temporal and center)")
    complete.add_argument("--scale-each", action="store_true",
                          help="stretch each frame from its own min to max (the published look) instead of true colours")
    complete.add_argument("--animate", choices=("mp4", "gif"),
                          help="also write original | masked | completion side by side over time, beside the picture")
    complete.set_defaults(func=_cmd_complete)
    attention = sub.add_parser(
        "attention", help="draw a ViT's last-block CLS attention over the frames: one picture per video"
    )
    _add_video_run_args(attention, "attention")
    attention.add_argument("--heads", choices=("mean", "each"), default="mean",
                           help="one row averaged over heads (default), or a row per head")
    attention.set_defaults(func=_cmd_attention)


# ---- embeddings and evaluation: embed, evaluate, probe ------------------------------------------------------

def _load_eval_model(args: argparse.Namespace):
    """The ViT of `args` on the CPU (a command moves it to its device), its name, and its preprocessing
    (the zoo entry's or the file's, at the size and frames of the model as built, `--set` included)."""
    model = _model_from_args(args, model_type="vit", dtype=args.dtype)
    name = args.model or str(args.checkpoint.resolve())
    return model, name, _preprocessing_as_built(args.model or args.checkpoint, model)


def _clip_progress(label: str, enabled: bool = True):
    """A progress callback (clips done, clips in all) drawing a bar with clips per second on stderr."""
    from tqdm import tqdm

    bar = None

    def show(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="clip", disable=not enabled, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return show


def _print_skipped(skipped) -> None:
    if skipped:
        print(f"{len(skipped)} could not be read and were skipped:", file=sys.stderr)
        for item in skipped:
            print(f"  {item.path}: {item.reason}", file=sys.stderr)


def _print_metrics(predictions) -> None:
    metrics = predictions.metrics
    print(f"top-1 {metrics.top1:.2f}%  top-5 {metrics.top5:.2f}%  mean per-class {metrics.mean_class_accuracy:.2f}%  "
          f"loss {metrics.loss:.4f}  ({metrics.count} examples)")


def _cmd_embed(args: argparse.Namespace) -> int:
    import os

    from .devices import resolve_device
    from .eval import embed_videos

    model, name, preprocessing = _load_eval_model(args)
    is_main = int(os.environ.get("RANK", "0")) == 0
    result = embed_videos(
        model, args.paths, args.output, preprocessing=preprocessing, model_name=name, pool=args.pool,
        num_clips=args.num_clips, keep_clips=args.keep_clips, sampling_rate=args.sampling_rate,
        batch_size=args.batch_size, num_workers=args.num_workers, device=resolve_device(args.device),
        progress=_clip_progress("embed", enabled=is_main),
    )
    if not is_main:
        return 0
    rows = len(result.embeddings) if result.embeddings is not None else 0
    print(f"{args.output}: {rows} videos ({result.embedded} embedded now, {result.reused} already there)")
    _print_skipped(result.skipped)
    return 1 if result.skipped else 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .devices import resolve_device
    from .eval import default_out_dir, evaluate, parse_views

    model, name, preprocessing = _load_eval_model(args)
    out_dir = args.out_dir or default_out_dir(name, args.data)
    predictions = evaluate(
        model, args.data, preprocessing=preprocessing, image_mode=True if args.images else None,
        views=parse_views(args.views) if args.views else None, sampling_rate=args.sampling_rate,
        batch_size=args.batch_size, num_workers=args.num_workers, device=resolve_device(args.device),
        model_name=name, progress=_clip_progress("evaluate"),
    )
    files = predictions.write(out_dir)
    _print_metrics(predictions)
    print(f"wrote {files[0]} and {files[1]}")
    _print_skipped(predictions.skipped)
    return 1 if predictions.skipped else 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from .eval import load_embeddings, probe

    predictions = probe(
        load_embeddings(args.train), load_embeddings(args.test), method=args.method, shots=args.shots,
        seed=args.seed, k=args.k, weight_decay=args.weight_decay,
    )
    predictions.settings.update(train=str(args.train), test=str(args.test))
    _print_metrics(predictions)
    if args.out_dir:
        files = predictions.write(args.out_dir)
        print(f"wrote {files[0]} and {files[1]}")
    return 0


def _add_loader_args(parser: argparse.ArgumentParser) -> None:
    from .eval.embed import DEFAULT_SAMPLING_RATE

    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="clips per forward pass (default 8)")
    parser.add_argument("--num-workers", type=int, default=2, metavar="W",
                        help="DataLoader processes decoding videos while the model runs (default 2; 0: none)")
    parser.add_argument("--sampling-rate", type=int, default=DEFAULT_SAMPLING_RATE, metavar="R",
                        help=f"take every R-th frame at 30 fps (default {DEFAULT_SAMPLING_RATE}, as published)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default) picks cuda, then mps, then cpu; under torchrun each rank its own GPU")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="weights and compute (default float32; bfloat16 halves memory and time on GPUs)")


def _add_eval_commands(sub: argparse._SubParsersAction) -> None:
    from .eval import METHODS, POOLS

    embed = sub.add_parser("embed", help="one embedding per video, into a .npz or .parquet file (resumable)",
                           description="Embed videos with a ViT; run under torchrun to share the work.")
    embed.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                       help="videos or folders (searched recursively); one folder of class subfolders or one CSV "
                            "manifest (path,label) also gives labels")
    _add_model_args(embed)
    embed.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                       help="OUT.npz or OUT.parquet; rerunning with the same OUT adds only the videos not in it")
    embed.add_argument("--pool", choices=POOLS, default="cls",
                       help="cls: the final-normed CLS token (default); mean: mean of the patch tokens; tokens: all")
    embed.add_argument("--num-clips", type=int, default=1, metavar="K",
                       help="K clips evenly spaced over each video, averaged (default 1: the center clip)")
    embed.add_argument("--keep-clips", action="store_true", help="also store each clip's embedding")
    _add_loader_args(embed)
    embed.set_defaults(func=_cmd_embed)

    evaluate = sub.add_parser("evaluate", help="accuracy of a finetuned model on labelled videos or images",
                              description="Multi-view evaluation; predictions.csv and summary.json go to DIR.")
    evaluate.add_argument("data", type=Path, metavar="DATA",
                          help="a folder of class subfolders (label: sorted index) or a CSV manifest (path,label)")
    _add_model_args(evaluate)
    evaluate.add_argument("--views", metavar="CLIPSxCROPS",
                          help="clips over time x crops (1 or 3) per video, logits averaged (default 2x3)")
    evaluate.add_argument("--images", action="store_true",
                          help="image mode: DATA holds images (default for the imagenet-2pt models)")
    evaluate.add_argument("--out-dir", type=Path, metavar="DIR",
                          help="where the files go (default: a new folder eval_MODEL_DATA here)")
    _add_loader_args(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    probe = sub.add_parser("probe", help="linear or kNN probe on embeddings from `hvm1 embed`")
    probe.add_argument("--train", type=Path, required=True, metavar="FILE", help="labelled training embeddings")
    probe.add_argument("--test", type=Path, required=True, metavar="FILE", help="labelled test embeddings")
    probe.add_argument("--method", choices=METHODS, default="linear",
                       help="linear: logistic regression (default); knn: k nearest neighbours by cosine similarity")
    probe.add_argument("--shots", type=int, metavar="K", help="train on K videos per class (default: all)")
    probe.add_argument("--seed", type=int, default=0, help="seeds the draw of --shots (default 0)")
    probe.add_argument("--k", type=int, default=20, help="neighbours for knn (default 20)")
    probe.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty of the linear probe (default 1e-4)")
    probe.add_argument("--out-dir", type=Path, metavar="DIR", help="also write predictions.csv and summary.json")
    probe.set_defaults(func=_cmd_probe)


# ---- training: pretrain, finetune ----------------------------------------------------------------------------

def _pair(kind):
    def parse(text: str):
        low, sep, high = text.partition(",")
        return (kind(low), kind(high)) if sep else kind(low)
    return parse


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    """The flags every training command shares (see `hvm1.train.TrainConfig`); unset flags keep its defaults."""
    parser.add_argument("--out-dir", required=True, help="the run folder: config, metrics.jsonl, checkpoints")
    parser.add_argument("--epochs", type=int, help="passes over the data")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--batch-size", type=int, help="videos per micro-batch per process")
    parser.add_argument("--accum-iter", type=int, help="micro-batches per optimizer step")
    parser.add_argument("--lr", type=float, help="learning rate (finetune: blr x total batch / 256 unless given)")
    parser.add_argument("--min-lr", type=float, help="final learning rate of --lr-schedule cosine")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), help="after warmup")
    parser.add_argument("--warmup-steps", type=int, help="linear warmup steps")
    parser.add_argument("--weight-decay", type=float, help="AdamW weight decay (never on biases, norms, "
                        "position embeddings, tokens)")
    parser.add_argument("--betas", type=float, nargs=2, metavar=("B1", "B2"), help="AdamW betas")
    parser.add_argument("--clip-grad", type=float, help="gradient norm clipping (0: off)")
    parser.add_argument("--repeat-aug", type=int, help="clips drawn from each video per step")
    parser.add_argument("--sampling-rate", type=int, help="frames of a 30 fps video between sampled frames")
    parser.add_argument("--target-fps", type=float, help="the clock of --sampling-rate")
    parser.add_argument("--short-side", type=_pair(int), metavar="N|LOW,HIGH",
                        help="decode short side, or a range drawn per clip (default 256,320 at 224 px, scaled "
                        "with the image size; the image size from 448 px up)")
    parser.add_argument("--crop-scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="random resized crop area fraction")
    parser.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    parser.add_argument("--seed", type=int, help="seeds every random choice (with epoch and sample index)")
    parser.add_argument("--resume", metavar="auto|FILE", help="auto: continue from the run folder's newest "
                        "checkpoint when there is one; or a checkpoint file")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                        help="auto: bf16 autocast on CUDA, float32 on CPU")
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute block activations in backward")
    parser.add_argument("--compile", action="store_true", help="torch.compile every transformer block")
    parser.add_argument("--fsdp", action="store_true", help="shard with FSDP2 under torchrun (else DDP)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto: cuda when available")
    parser.add_argument("--save-every", type=int, help="optimizer steps between checkpoints (also every epoch)")
    parser.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                        help="don't write TensorBoard logs even when it is installed")


def _train_config(cls, args: argparse.Namespace, **values: Any):
    import dataclasses

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    for name in ("betas", "crop_scale"):
        if name in given:
            given[name] = tuple(given[name])
    if given.get("clip_grad") == 0:
        given["clip_grad"] = None
    return cls(**(given | values))


def _run_training(args: argparse.Namespace, job) -> int:
    """Run `job(on_record)` with a progress bar on the console; print the outcome."""
    from tqdm import tqdm

    from .train import TrainingError

    bar = tqdm(unit="step", dynamic_ncols=True, disable=None)

    def on_record(record: dict[str, Any]) -> None:
        if record["kind"] == "train":
            bar.update(record["step"] - bar.n)
            bar.set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                            clips_s=f"{record['clips_per_s']:.1f}")
        elif record["kind"] == "eval":
            bar.write(f"epoch {record['epoch']}: val top-1 {record['top1']:.2f}%, top-5 {record['top5']:.2f}%, "
                      f"loss {record['loss']:.4f} ({record['clips']} clips)")

    try:
        result = job(on_record)
    except TrainingError as error:
        bar.close()
        print(f"hvm1 {args.command}: stopped: {error}", file=sys.stderr)
        return 2
    bar.close()
    if result.last_checkpoint is None:
        return 0  # ranks other than 0 write and print nothing
    print(f"{result.steps} steps; last checkpoint {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint {result.best_checkpoint} (val {args.select if 'select' in args else 'top1'} "
              f"{result.best_value:.2f}%)")
    if result.skipped:
        print(f"{len(result.skipped)} unreadable files skipped (see {Path(args.out_dir) / 'metrics.jsonl'})")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from .train import PretrainConfig, pretrain

    sources = [name for name in ("model", "checkpoint", "arch") if getattr(args, name, None)]
    if len(sources) != 1:
        raise ValueError("give exactly one of --model NAME, --checkpoint FILE and --arch NAME")
    source = str(args.checkpoint) if getattr(args, "checkpoint", None) else getattr(args, "model", None)
    config = _train_config(PretrainConfig, args, model=source, overrides=_parse_set(args.set))
    return _run_training(args, lambda on_record: pretrain(args.data, config, on_record=on_record))


def _cmd_finetune(args: argparse.Namespace) -> int:
    from .train import FinetuneConfig, finetune

    source = str(args.checkpoint) if getattr(args, "checkpoint", None) else getattr(args, "model", None)
    config = _train_config(FinetuneConfig, args, model=source, overrides=_parse_set(args.set))
    return _run_training(args, lambda on_record: finetune(args.train, args.val, config, on_record=on_record))


def _show_defaults(parser: argparse.ArgumentParser, config_class) -> None:
    """Append each flag's library default to its help (the flags themselves default to 'not given')."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(config_class)
                if f.default is not dataclasses.MISSING and f.default is not None}
    for action in parser._actions:
        if action.dest in defaults and action.help and action.nargs != 0:
            value = defaults[action.dest]
            shown = " ".join(map(str, value)) if isinstance(value, tuple) else value
            action.help += f" (default {shown})"


def _add_train_commands(sub: argparse._SubParsersAction) -> None:
    from .train import FinetuneConfig, PretrainConfig

    pre = sub.add_parser(
        "pretrain", argument_default=argparse.SUPPRESS,
        help="continue (or start) MAE pretraining on videos; published recipe by default",
        description="MAE pretraining; defaults are the published recipe. Run under torchrun for several GPUs.",
    )
    pre.add_argument("data", nargs="+", help="video files or folders (searched recursively)")
    _add_model_args(pre, required=False)
    pre.add_argument("--arch", help="start from scratch with a named size, e.g. mae_vit_base_patch16")
    pre.add_argument("--mask-ratio", type=float, help="default 0.9 (0.95 at 448 px)")
    _add_train_args(pre)
    _show_defaults(pre, PretrainConfig)
    pre.set_defaults(func=_cmd_pretrain, set=[])
    fine = sub.add_parser(
        "finetune", argument_default=argparse.SUPPRESS,
        help="finetune a ViT for video (or image) classification, few-shot; published recipe by default",
        description="Finetuning for classification; defaults are the published recipe. Run under torchrun for "
                    "several GPUs.",
    )
    fine.add_argument("train", help="a folder of class subfolders, or a path,label CSV")
    fine.add_argument("--val", required=True, help="validation data, as TRAIN")
    _add_model_args(fine, required=True)
    fine.add_argument("--num-classes", type=int, help="default: the class count of TRAIN")
    fine.add_argument("--shots", type=int, help="K examples per class, drawn with --seed")
    fine.add_argument("--images", action="store_true", help="the data are images (each a static clip)")
    fine.add_argument("--blr", type=float, help="base lr: lr = blr x total batch / 256 (default 1.2e-3, 6e-4 "
                      "at 448 px)")
    fine.add_argument("--layer-decay", type=float, help="layer-wise lr decay")
    fine.add_argument("--drop-path", type=float, help="stochastic depth rate")
    fine.add_argument("--dropout", type=float, help="dropout before the head")
    fine.add_argument("--smoothing", type=float, help="label smoothing")
    fine.add_argument("--random-erasing", type=float, help="probability per frame")
    fine.add_argument("--mixup", type=float, help="mixup alpha (0: off)")
    fine.add_argument("--cutmix", type=float, help="cutmix alpha (0: off)")
    fine.add_argument("--select", choices=("top1", "top5"), help="the val metric of the best checkpoint")
    fine.add_argument("--eval-batch-size", type=int, help="validation clips per batch")
    _add_train_args(fine)
    _show_defaults(fine, FinetuneConfig)
    fine.set_defaults(func=_cmd_finetune, set=[])


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hvm1", description="The HVM-1 video models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_zoo_commands(sub)
    _add_train_commands(sub)
    _add_viz_commands(sub)
    _add_eval_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `hvm1` command line with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as error:  # user errors: a wrong name or field, a missing or corrupt file, no network
        if args.verbose:
            raise
        print(f"hvm1 {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
