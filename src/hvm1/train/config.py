"""The settings every training job shares (`TrainConfig`); `PretrainConfig` and `FinetuneConfig` extend it.

Each field is defined once, with its default and its help (`setting`), and the `hvm1 pretrain` / `hvm1
finetune` flags are generated from these fields (`hvm1.cli.train`), as torchtitan's job config does. A
subclass that changes a field's default or meaning redeclares it with its own help.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hvm1.optimization import LR_SCHEDULES
from hvm1.settings import DEVICE_CHOICES, PRECISION_CHOICES, setting


@dataclass(kw_only=True)
class TrainConfig:
    """What every training job takes. `epochs` bounds the run, and `max_steps` (optimizer steps) when set;
    a step takes `accum_iter` micro-batches of `batch_size` files per rank. `resume`: None (fresh: the run
    folder must hold no checkpoint), 'auto' or a checkpoint path. A checkpoint is written every `save_every`
    steps and at the end of every epoch and of the run (`checkpoint-last.pth`).
    """

    out_dir: str = setting(help="the run folder: config.json, metrics.jsonl, checkpoints", aliases=("--output_dir",))
    epochs: int = setting(1, help="passes over the data")
    max_steps: int | None = setting(None, help="stop after this many optimizer steps")
    batch_size: int = setting(4, help="files per micro-batch per process")
    accum_iter: int = setting(1, help="micro-batches per optimizer step")
    lr: float | None = setting(1e-4, help="learning rate")
    min_lr: float = setting(0.0, help="final learning rate of --lr-schedule cosine")
    lr_schedule: str = setting(
        "constant", choices=LR_SCHEDULES, help="after warmup: constant, or a half cosine down to --min-lr"
    )
    warmup_steps: int = setting(0, help="optimizer steps of linear warmup")
    weight_decay: float = setting(0.05, help="AdamW weight decay")
    betas: tuple[float, float] = setting((0.9, 0.95), metavar=("B1", "B2"), help="AdamW betas")
    clip_grad: float | None = setting(0.1, help="gradient norm clipping (0: off)")
    num_workers: int = setting(2, help="DataLoader worker processes")
    seed: int = setting(0, help="seeds every random choice (with epoch and sample index)")
    resume: str | None = setting(
        None,
        metavar="auto|FILE",
        help="auto: continue from the run folder's newest good checkpoint when there is one; or a checkpoint file",
    )
    precision: str = setting(
        "auto",
        choices=PRECISION_CHOICES,
        help="autocast: auto is bf16 where the device multiplies bf16 fast (CUDA with bf16, "
        "CPUs with AMX or AVX512-BF16), else fp32 (hvm1.devices.resolve_precision)",
    )
    grad_checkpointing: bool = setting(False, help="recompute each block's activations in backward (less memory)")
    compile: bool = setting(False, help="torch.compile every transformer block")
    fsdp: bool = setting(False, help="shard with FSDP2 under torchrun (else DDP)")
    device: str | None = setting(
        None,
        choices=DEVICE_CHOICES,
        help="auto (the default) picks cuda, then mps, then cpu; under torchrun each rank its local GPU",
    )
    save_every: int = setting(500, help="optimizer steps between checkpoints (one is also written every epoch)")
    tensorboard: bool = setting(True, help="write TensorBoard logs (when TensorBoard is installed)")
    sampling_rate: int = setting(8, help="frames of a --target-fps video between sampled frames")
    target_fps: float = setting(30.0, help="the clock of --sampling-rate")
    autorotate: bool = setting(
        True, help="turn videos by their display rotation and images by their EXIF orientation, as players show them"
    )

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
