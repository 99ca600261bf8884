"""Training commands: pretrain, finetune."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import _add_model_args, _add_precision_arg, _parse_set, _precision_for, _print_failures


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
    parser.add_argument("--weight-decay", type=float, help="AdamW weight decay (see hvm1.train.optim for the "
                        "parameters each command exempts)")
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
    _add_precision_arg(parser, default=argparse.SUPPRESS)
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


def _say_precision(args: argparse.Namespace, config) -> None:
    """Print (rank 0 only) the autocast precision the training job will resolve on its device."""
    import os

    import torch

    if int(os.environ.get("RANK", "0")) == 0:
        device = config.device if config.device not in (None, "auto") else ("cuda" if torch.cuda.is_available() else "cpu")
        _precision_for(args, device, config.precision)


def _run_training(args: argparse.Namespace, job) -> int:
    """Run `job(on_record)` with a progress bar on the console; print the outcome."""
    from tqdm import tqdm

    from ..train import TrainingError

    bar = tqdm(unit="step", dynamic_ncols=True, disable=None)

    def on_record(record: dict[str, Any]) -> None:
        if record["kind"] == "train":
            bar.update(record["step"] - bar.n)
            bar.set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                            clips_s=f"{record['clips_per_s']:.1f}")
        elif record["kind"] == "epoch":
            bar.write(f"epoch {record['epoch']}: mean training loss {record['loss']:.4f} ({record['steps']} steps)")
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
    # A file skipped in every epoch is named once (metrics.jsonl has a line per skip, with the step).
    unique = list({item.path: item for item in result.skipped}.values())
    failed = _print_failures(unique)
    val_skipped = (result.last_eval or {}).get("skipped", 0)
    if val_skipped:  # each was logged above as it was skipped
        print(f"{val_skipped} validation files could not be read and were skipped", file=sys.stderr)
    return 1 if failed or val_skipped else 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from ..train import PretrainConfig, pretrain

    sources = [name for name in ("model", "checkpoint", "arch") if getattr(args, name, None)]
    if len(sources) != 1:
        raise ValueError("give exactly one of --model NAME, --checkpoint FILE and --arch NAME")
    source = str(args.checkpoint) if getattr(args, "checkpoint", None) else getattr(args, "model", None)
    config = _train_config(PretrainConfig, args, model=source, overrides=_parse_set(args.set))
    _say_precision(args, config)
    return _run_training(args, lambda on_record: pretrain(args.data, config, on_record=on_record))


def _cmd_finetune(args: argparse.Namespace) -> int:
    from ..train import FinetuneConfig, finetune

    source = str(args.checkpoint) if getattr(args, "checkpoint", None) else getattr(args, "model", None)
    config = _train_config(FinetuneConfig, args, model=source, overrides=_parse_set(args.set))
    _say_precision(args, config)
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    from ..train import FinetuneConfig, PretrainConfig

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
    fine.add_argument("--random-erasing", type=float,
                      help="probability of erasing a random rectangle per frame (0: off, as the published runs)")
    fine.add_argument("--mixup", type=float, help="mixup alpha (0: off)")
    fine.add_argument("--cutmix", type=float, help="cutmix alpha (0: off)")
    fine.add_argument("--select", choices=("top1", "top5"), help="the val metric of the best checkpoint")
    fine.add_argument("--eval-batch-size", type=int, help="validation clips per batch")
    _add_train_args(fine)
    _show_defaults(fine, FinetuneConfig)
    fine.set_defaults(func=_cmd_finetune, set=[])


