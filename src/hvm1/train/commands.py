"""`hvm1 pretrain` and `hvm1 finetune` as commands: the job configs plus what the command line names (the data,
`--model` / `--checkpoint`, `--set`), and the run reported through the one progress protocol."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import setting

from .checkpointing import LAST
from .finetuning import FinetuneConfig, finetune
from .loop import TrainingError, TrainResult
from .pretraining import PretrainConfig, pretrain

__all__ = ["FinetuneCommand", "PretrainCommand", "TrainReport", "finetune_command", "pretrain_command"]

_SOURCE_HELP = "a checkpoint file to start from: a published .pth, a run's checkpoint or a .safetensors"
_SET_HELP = "set an architecture field (e.g. num_heads=4, drop_path_rate=0.2); repeatable"


@dataclass(kw_only=True)
class PretrainCommand(PretrainConfig):
    """`hvm1 pretrain`: `PretrainConfig` plus the videos and where the model comes from (one of `model`,
    `checkpoint` and `arch`)."""

    data: tuple[str, ...] = setting(
        positional=True, metavar="DATA", help="video files or folders (searched recursively)"
    )
    model: str | None = setting(None, metavar="NAME", help="a zoo MAE to continue, e.g. mae_hvm1_none")
    checkpoint: Path | None = setting(None, metavar="FILE", help=_SOURCE_HELP)
    overrides: dict[str, Any] = setting(default_factory=dict, option="--set", metavar="FIELD=VALUE", help=_SET_HELP)
    print_every: int = setting(
        10,
        metavar="N",
        help="where stderr is no terminal (batch jobs, logs): a progress line every N steps; on a terminal, a bar",
    )


@dataclass(kw_only=True)
class FinetuneCommand(FinetuneConfig):
    """`hvm1 finetune`: `FinetuneConfig` plus the training and validation data and the model to start from."""

    train: str = setting(positional=True, metavar="TRAIN", help="a folder of class subfolders, or a path,label CSV")
    val: str = setting(metavar="VAL", help="validation data, as TRAIN")
    model: str | None = setting(None, metavar="NAME", help="a zoo model to finetune, e.g. vit_hvm1_none")
    checkpoint: Path | None = setting(None, metavar="FILE", help=_SOURCE_HELP)
    overrides: dict[str, Any] = setting(default_factory=dict, option="--set", metavar="FIELD=VALUE", help=_SET_HELP)
    print_every: int = setting(
        10,
        metavar="N",
        help="where stderr is no terminal (batch jobs, logs): a progress line every N steps; on a terminal, a bar",
    )


@dataclass
class TrainReport(Report):
    """What a training command did.

    Attributes:
        result: The run's `TrainResult` (None when it stopped on a `TrainingError`).
        config: The job's config.
        stopped: The `TrainingError`'s message, when one stopped the run.
    """

    result: TrainResult | None = None
    config: PretrainConfig | FinetuneConfig | None = None
    stopped: str | None = None


def _job_config(command: Any, job_class: type, source: str | None) -> Any:
    """The job's own config (`job_class`) from the command's, with `model` the one source named."""
    values = {field.name: getattr(command, field.name) for field in dataclasses.fields(job_class)}
    return job_class(**(values | {"model": source}))


def _source(command: PretrainCommand | FinetuneCommand, *, arch: bool) -> str | None:
    named = [name for name in ("model", "checkpoint", *(("arch",) if arch else ())) if getattr(command, name)]
    if len(named) != 1 and (arch or named):
        choices = "--model NAME, --checkpoint FILE and --arch NAME" if arch else "--model NAME and --checkpoint FILE"
        raise ValueError(f"give exactly one of {choices}")
    if not named:
        raise ValueError("name the model to finetune: --model NAME or --checkpoint FILE")
    return str(command.checkpoint) if command.checkpoint is not None else command.model


def _kept(out_dir: str) -> str:
    last = Path(out_dir) / LAST
    if last.is_file():
        return (
            f"the last checkpoint saved, {last}, is complete (a save cut short leaves only a temporary "
            f"file): run the same command with --resume auto to continue from it"
        )
    return f"no checkpoint was saved yet in {out_dir}: nothing to resume from"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class _Records:
    """A run's records (`on_record`) told to a `Progress`: steps as a stage with the loss, lr, speed and time
    left; epochs and validations as notes; what an interruption keeps after each checkpoint."""

    def __init__(self, progress: Progress, out_dir: str) -> None:
        self.progress, self.out_dir = progress, out_dir
        self.start: tuple[float, int] | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind == "train":
            step, total = record["step"], record["total_steps"]
            if self.start is None:  # this call's first step: the clock starts here, after any resume
                self.start = (time.monotonic() - record["step_s"], step - 1)
                self.progress.start(total, "step", label="step")
            began, first = self.start
            left = (time.monotonic() - began) / (step - first) * (total - step)
            self.progress.advance(
                step,
                f"epoch {record['epoch']}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
                f"{record['clips_per_s']:.1f} clips/s  {_clock(left)} left",
            )
            self.progress.keeping(_kept(self.out_dir))
        elif kind == "epoch":
            steps = record["steps"]
            self.progress.note(
                f"epoch {record['epoch']}: mean training loss {record['loss']:.4f} "
                f"({steps} step{'' if steps == 1 else 's'})"
            )
        elif kind == "eval":
            clips = record["clips"]
            self.progress.note(
                f"epoch {record['epoch']}: val top-1 {record['top1']:.2f}%, top-5 {record['top5']:.2f}%, "
                f"loss {record['loss']:.4f} ({clips} clip{'' if clips == 1 else 's'})"
            )


def _report(job, config: PretrainConfig | FinetuneConfig, progress: Progress) -> TrainReport:
    from hvm1.devices import resolve_device
    from hvm1.inference import precision_for_run

    # Said here; the job resolves it again on each rank's own device.
    precision_for_run(config.precision, resolve_device(config.device), progress=progress)
    progress.keeping(_kept(config.out_dir))
    try:
        result = job(_Records(progress, config.out_dir))
    except TrainingError as error:
        return TrainReport(config=config, stopped=str(error))
    finally:
        progress.close()
    skipped = list({item.path: item for item in result.skipped}.values())  # a file skipped every epoch, once
    return TrainReport(
        written=[path for path in (result.last_checkpoint, result.best_checkpoint) if path],
        skipped=skipped,
        result=result,
        config=config,
    )


def pretrain_command(config: PretrainCommand, progress: Progress = SILENT) -> TrainReport:
    """`hvm1 pretrain`: `pretrain(config.data, ...)` from the one model source named.

    Args:
        config: The job's settings, the data and the source.
        progress: Told of the precision, each step, each epoch, and what an interruption keeps.

    Returns:
        The run's result (or the `TrainingError` that stopped it) and the files skipped.

    Raises:
        ValueError: Not exactly one of model, checkpoint and arch.
    """
    job = _job_config(config, PretrainConfig, _source(config, arch=True))
    return _report(lambda on_record: pretrain(config.data, job, on_record=on_record), job, progress)


def finetune_command(config: FinetuneCommand, progress: Progress = SILENT) -> TrainReport:
    """`hvm1 finetune`: `finetune(config.train, config.val, ...)` from the model named.

    Args:
        config: The job's settings, the data and the source.
        progress: Told of the precision, each step, each epoch, and what an interruption keeps.

    Returns:
        The run's result (or the `TrainingError` that stopped it) and the files skipped.

    Raises:
        ValueError: Not exactly one of model and checkpoint.
    """
    job = _job_config(config, FinetuneConfig, _source(config, arch=False))
    return _report(lambda on_record: finetune(config.train, config.val, job, on_record=on_record), job, progress)
