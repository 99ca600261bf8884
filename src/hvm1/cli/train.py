"""Training commands: pretrain, finetune."""

from __future__ import annotations

import sys

from .command import Command, plural, print_skipped


def _stopped_by(result, config) -> str:
    """Which limit ended a run, in the flags' words."""
    epochs = f"--epochs {config.epochs} ({plural(result.steps_per_epoch, 'step')} an epoch)"
    if result.stopped_by == "max_steps":
        return f"--max-steps {config.max_steps} came before the end of {epochs}"
    if config.max_steps is not None:
        return f"the end of {epochs} came before --max-steps {config.max_steps}"
    return f"the end of {epochs}"


def _show_training(report) -> int:
    """The outcome of a run (rank 0 only; the other ranks print nothing)."""
    from ..distributed import launch_rank

    if report.stopped is not None:
        print(f"training stopped: {report.stopped}", file=sys.stderr)
        return 2
    if launch_rank() != 0:
        return 0
    result, config = report.result, report.config
    if result.stopped_by == "nothing_left":
        print(
            f"nothing left to do: {result.last_checkpoint} is at step {result.steps} of {result.total_steps} "
            f"({_stopped_by(result, config)}); raise --epochs or --max-steps to train further. No file was "
            f"changed."
        )
        return 0
    print(
        f"{plural(len(result.losses), 'step')} trained ({result.steps} of {result.total_steps} in all), stopped "
        f"by {_stopped_by(result, config)}; last checkpoint {result.last_checkpoint}"
    )
    if result.best_checkpoint is not None:
        print(
            f"best checkpoint {result.best_checkpoint} (val {getattr(config, 'select', 'top1')} "
            f"{result.best_value:.2f}%)"
        )
    failed = print_skipped(report.skipped)
    val_skipped = (result.last_eval or {}).get("skipped", 0)
    if val_skipped:  # each was logged as it was skipped
        print(
            f"{plural(val_skipped, 'validation file')} could not be read and {'was' if val_skipped == 1 else 'were'} "
            f"skipped",
            file=sys.stderr,
        )
    return 1 if failed or val_skipped else 0


COMMANDS = {
    "pretrain": Command(
        help="continue (or start) MAE pretraining on videos; published recipe by default",
        description="MAE pretraining; defaults are the published recipe. Run under torchrun for several GPUs.",
        config="hvm1.train.commands:PretrainCommand",
        run="hvm1.train.commands:pretrain_command",
        show=_show_training,
    ),
    "finetune": Command(
        help="finetune a ViT for video (or image) classification, few-shot; published recipe by default",
        description="Finetuning for classification; defaults are the published recipe. Run under torchrun for "
        "several GPUs.",
        config="hvm1.train.commands:FinetuneCommand",
        run="hvm1.train.commands:finetune_command",
        show=_show_training,
    ),
}
