"""Training commands: pretrain, finetune."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from typing import Any

from ..settings import parse_overrides
from .command import plural, print_skipped
from .common import _add_model_args, _precision_for, _say_on_interrupt

# Each command's one-line help, as `hvm1 -h` lists it without importing what the commands need.
COMMANDS = {
    "pretrain": "continue (or start) MAE pretraining on videos; published recipe by default",
    "finetune": "finetune a ViT for video (or image) classification, few-shot; published recipe by default",
}


def _int_or_pair(text: str) -> int | tuple[int, int]:
    low, sep, high = text.partition(",")
    return (int(low), int(high)) if sep else int(low)


def _flag_kind(hint: Any) -> dict[str, Any]:
    """argparse settings for a config field of type `hint` (None in a union only means 'not given')."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] if union else [hint]
    if len(kinds) == 1 and typing.get_origin(kinds[0]) is tuple:
        (item, *_), size = typing.get_args(kinds[0]), len(typing.get_args(kinds[0]))
        return {"type": item, "nargs": size}
    if len(kinds) == 2 and int in kinds and typing.get_origin(kinds[1 - kinds.index(int)]) is tuple:
        return {"type": _int_or_pair}
    if len(kinds) == 1 and kinds[0] in (int, float, str):
        return {"type": kinds[0]}
    raise TypeError(f"no command-line flag for a config field of type {hint}")


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _add_config_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """A flag per field of `config_class` (`hvm1.train.config.setting`): `--name-with-dashes` and the
    published `--name_with_underscores`, plus the field's aliases; the help is the field's, with its default.
    Booleans are switches (`--no-NAME` for one that defaults to on). Unset flags keep the library default."""
    from ..settings import setting_info

    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        info = setting_info(config_class, field.name)
        if not info["flag"]:
            continue
        dashed = field.name.replace("_", "-")
        help_text = info["help"]
        if hints[field.name] is bool:
            prefix = "no-" if field.default else ""
            names = [f"--{prefix}{dashed}", *([f"--{prefix.replace('-', '_')}{field.name}"] if "_" in field.name else [])]
            action = "store_false" if field.default else "store_true"
            parser.add_argument(*names, *info["aliases"], dest=field.name, action=action,
                                help=f"do not {help_text}" if field.default else help_text)
            continue
        names = [f"--{dashed}", *([f"--{field.name}"] if "_" in field.name else []), *info["aliases"]]
        if field.default not in (dataclasses.MISSING, None):
            help_text += f" (default {_shown(field.default)})"
        parser.add_argument(*names, dest=field.name, required=field.default is dataclasses.MISSING,
                            metavar=info["metavar"], choices=info["choices"], help=help_text,
                            **_flag_kind(hints[field.name]))


def _train_config(cls, args: argparse.Namespace, **values: Any):
    """`cls` from the flags given (the others keep the library defaults) and `values`."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    given = {name: tuple(value) if isinstance(value, list) else value for name, value in given.items()}
    return cls(**(given | values))


def _say_precision(args: argparse.Namespace, config) -> None:
    """Print (rank 0 only) the autocast precision the training job will resolve on its device."""
    import os

    from ..devices import resolve_device

    if int(os.environ.get("RANK", "0")) == 0:
        _precision_for(args, resolve_device(config.device), config.precision)


def _training_kept(out_dir: str) -> str:
    from pathlib import Path

    from ..train.checkpointing import LAST

    last = Path(out_dir) / LAST
    if last.is_file():
        return (f"the last checkpoint saved, {last}, is complete (a save cut short leaves only a temporary "
                f"file): run the same command with --resume auto to continue from it")
    return f"no checkpoint was saved yet in {out_dir}: nothing to resume from"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def _progress(print_every: int):
    """The `on_record` of a training job: on a terminal a bar with the total and the time left, elsewhere
    (batch jobs, logs) a plain line at the first step, every `print_every` steps and the last; epoch and
    validation lines either way. Returns (on_record, close)."""
    import time

    from tqdm import tqdm

    live = sys.stderr.isatty()
    state: dict[str, Any] = {"bar": None, "start": None}

    def on_record(record: dict[str, Any]) -> None:
        if record["kind"] == "train":
            step, total = record["step"], record["total_steps"]
            if state["start"] is None:  # this call's first step: the clock starts here, after any resume
                state["start"] = (time.monotonic() - record["step_s"], step - 1)
                if live:
                    state["bar"] = tqdm(total=total, initial=step - 1, unit="step", dynamic_ncols=True)
            began, first = state["start"]
            left = (time.monotonic() - began) / (step - first) * (total - step)
            if state["bar"] is not None:
                state["bar"].update(step - state["bar"].n)
                state["bar"].set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.4f}",
                                         lr=f"{record['lr']:.2e}", clips_s=f"{record['clips_per_s']:.1f}")
            elif step == first + 1 or step % print_every == 0 or step == total:
                print(f"step {step}/{total}  epoch {record['epoch']}  loss {record['loss']:.4f}  "
                      f"lr {record['lr']:.2e}  {record['clips_per_s']:.1f} clips/s  {_clock(left)} left",
                      file=sys.stderr, flush=True)
        elif record["kind"] == "epoch":
            tqdm.write(f"epoch {record['epoch']}: mean training loss {record['loss']:.4f} "
                       f"({plural(record['steps'], 'step')})", file=sys.stderr)
        elif record["kind"] == "eval":
            tqdm.write(f"epoch {record['epoch']}: val top-1 {record['top1']:.2f}%, top-5 {record['top5']:.2f}%, "
                       f"loss {record['loss']:.4f} ({plural(record['clips'], 'clip')})", file=sys.stderr)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    return on_record, close


def _stopped_by(result, config) -> str:
    """Which limit ended a run, in the flags' words."""
    epochs = f"--epochs {config.epochs} ({plural(result.steps_per_epoch, 'step')} an epoch)"
    if result.stopped_by == "max_steps":
        return f"--max-steps {config.max_steps} came before the end of {epochs}"
    if config.max_steps is not None:
        return f"the end of {epochs} came before --max-steps {config.max_steps}"
    return f"the end of {epochs}"


def _run_training(args: argparse.Namespace, config, job) -> int:
    """Run `job(on_record)` with progress on the console; print the outcome."""
    import os

    from ..train import TrainingError

    _say_on_interrupt(lambda: _training_kept(args.out_dir))
    on_record, close = _progress(args.print_every)
    try:
        result = job(on_record)
    except TrainingError as error:
        close()
        print(f"hvm1 {args.command}: stopped: {error}", file=sys.stderr)
        return 2
    close()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # ranks other than 0 write and print nothing
    if result.stopped_by == "nothing_left":
        print(f"nothing left to do: {result.last_checkpoint} is at step {result.steps} of {result.total_steps} "
              f"({_stopped_by(result, config)}); raise --epochs or --max-steps to train further. No file was "
              f"changed.")
        return 0
    print(f"{plural(len(result.losses), 'step')} trained ({result.steps} of {result.total_steps} in all), stopped "
          f"by {_stopped_by(result, config)}; last checkpoint {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint {result.best_checkpoint} (val {args.select if 'select' in args else 'top1'} "
              f"{result.best_value:.2f}%)")
    # A file skipped in every epoch is named once (metrics.jsonl has a line per skip, with the step).
    unique = list({item.path: item for item in result.skipped}.values())
    failed = print_skipped(unique)
    val_skipped = (result.last_eval or {}).get("skipped", 0)
    if val_skipped:  # each was logged above as it was skipped
        print(f"{plural(val_skipped, 'validation file')} could not be read and {'was' if val_skipped == 1 else 'were'} "
              f"skipped", file=sys.stderr)
    return 1 if failed or val_skipped else 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from ..train import PretrainConfig, pretrain

    sources = [name for name in ("model", "checkpoint", "arch") if getattr(args, name, None)]
    if len(sources) != 1:
        raise ValueError("give exactly one of --model NAME, --checkpoint FILE and --arch NAME")
    source = str(args.checkpoint) if getattr(args, "checkpoint", None) else getattr(args, "model", None)
    config = _train_config(PretrainConfig, args, model=source, overrides=parse_overrides(args.set))
    _say_precision(args, config)
    return _run_training(args, config, lambda on_record: pretrain(args.data, config, on_record=on_record))


def _cmd_finetune(args: argparse.Namespace) -> int:
    from ..train import FinetuneConfig, finetune

    source = str(args.checkpoint) if getattr(args, "checkpoint", None) else getattr(args, "model", None)
    config = _train_config(FinetuneConfig, args, model=source, overrides=parse_overrides(args.set))
    _say_precision(args, config)
    return _run_training(args, config, lambda on_record: finetune(args.train, args.val, config, on_record=on_record))


def _add_print_every(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-every", type=int, default=10, metavar="N",
                        help="where stderr is no terminal (batch jobs, logs): a progress line every N steps "
                             "(default 10); on a terminal, a bar")


def add_commands(sub: argparse._SubParsersAction) -> None:
    from ..train import FinetuneConfig, PretrainConfig

    pre = sub.add_parser(
        "pretrain", argument_default=argparse.SUPPRESS,
        help=COMMANDS["pretrain"],
        description="MAE pretraining; defaults are the published recipe. Run under torchrun for several GPUs.",
    )
    pre.add_argument("data", nargs="+", help="video files or folders (searched recursively)")
    _add_model_args(pre, required=False)
    _add_config_flags(pre, PretrainConfig)
    _add_print_every(pre)
    pre.set_defaults(func=_cmd_pretrain, set=[])
    fine = sub.add_parser(
        "finetune", argument_default=argparse.SUPPRESS,
        help=COMMANDS["finetune"],
        description="Finetuning for classification; defaults are the published recipe. Run under torchrun for "
                    "several GPUs.",
    )
    fine.add_argument("train", help="a folder of class subfolders, or a path,label CSV")
    fine.add_argument("--val", required=True, help="validation data, as TRAIN")
    _add_model_args(fine, required=True)
    _add_config_flags(fine, FinetuneConfig)
    _add_print_every(fine)
    fine.set_defaults(func=_cmd_finetune, set=[])
