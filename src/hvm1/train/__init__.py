"""Training: continue MAE pretraining and finetune for recognition, on one CPU or many GPUs, resumable.

`pretrain(data, PretrainConfig(...))` and `finetune(train, val, FinetuneConfig(...))` are the two jobs; the
`hvm1 pretrain` / `hvm1 finetune` commands are thin wrappers. Run the same call under `torchrun` for DDP
(FSDP2 with `fsdp=True`).
"""

from .config import TrainConfig
from .finetuning import FinetuneConfig, finetune
from .loop import TrainingError, TrainResult
from .metrics import read_metrics
from .pretraining import PretrainConfig, pretrain

__all__ = [
    "FinetuneConfig",
    "PretrainConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "finetune",
    "pretrain",
    "read_metrics",
]
