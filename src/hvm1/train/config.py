"""The settings every training job shares (`TrainConfig`); `PretrainConfig` and `FinetuneConfig` extend it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hvm1.devices import PRECISION_CHOICES

LR_SCHEDULES = ("constant", "cosine")


@dataclass(kw_only=True)
class TrainConfig:
    """What every training job takes. `epochs` bounds the run, and `max_steps` (optimizer steps) when set;
    a step takes `accum_iter` micro-batches of `batch_size` files per rank. `resume`: None (fresh: the run
    folder must hold no checkpoint), 'auto' (continue from the run folder's newest checkpoint when there is
    one) or a checkpoint path. `precision` 'auto' is bf16 autocast where the device multiplies bf16 fast
    (`hvm1.devices.resolve_precision`: CUDA with bf16, CPUs with AMX or AVX512-BF16), else float32. A checkpoint
    is written every `save_every` steps and at the end of every epoch and of the run (`checkpoint-last.pth`).
    """

    out_dir: str
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4
    accum_iter: int = 1
    lr: float | None = 1e-4
    min_lr: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    clip_grad: float | None = 0.1
    num_workers: int = 2
    seed: int = 0
    resume: str | None = None
    precision: str = "auto"
    grad_checkpointing: bool = False
    compile: bool = False
    fsdp: bool = False
    device: str | None = None
    save_every: int = 500
    tensorboard: bool = True

    def check(self) -> None:
        """Raise ValueError naming every setting out of range."""
        problems = []
        for name in ("epochs", "batch_size", "accum_iter", "save_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be at least 1, got {self.max_steps}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be at least 0, got {self.num_workers}")
        if self.precision not in PRECISION_CHOICES:
            problems.append(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.lr is None or self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))


def config_args(config: TrainConfig) -> dict[str, Any]:
    """The training settings of `config` as checkpoint `args` entries (architecture overrides left out: the
    resolved architecture is written instead)."""
    values = dataclasses.asdict(config)
    values.pop("overrides", None)
    return values
