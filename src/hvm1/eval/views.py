"""Running a model over every view of every file: the clips and crops of a video, decoded in DataLoader workers.

`run_views` is the loop that embedding and evaluation share. A file is read as `num_clips` clips evenly
spaced in time (or one clip at the center), each clip as the crops its preset makes; one dataset item is one
clip of one file, so a batch holds whole clips and the model sees `batch_size x crops` views at a time. The
outputs of a file's views come back together once all its clips passed through the model, in file order, or
a `Skipped` naming the file and the reason when any of its clips could not be read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hvm1.data.datasets import FileViews, collate_views
from hvm1.data.failures import Skipped
from hvm1.devices import Precision, resolve_precision
from hvm1.progress import SILENT, Progress

PathLike = str | os.PathLike


@dataclass
class FileOutput:
    """What the model made of one file: `outputs` (clips, crops, ...) per view, `clip_times` (clips, 2), and how
    many frames were `padded` after the video's end (windows over a video shorter than one window)."""

    index: int
    outputs: torch.Tensor
    clip_times: torch.Tensor
    padded: int = 0


def run_views(
    forward: Callable[[torch.Tensor], torch.Tensor],
    dataset: FileViews,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress = SILENT,
    label: str = "",
) -> Iterator[FileOutput | Skipped]:
    """Run `forward` ((views, C, T, H, W) -> (views, ...)) over every view of `dataset`, file by file.

    Clips are decoded in `num_workers` DataLoader workers (0: in this process) while the model runs, and
    passed to the model `batch_size` clips (each with its crops) at a time, under `torch.inference_mode`.
    Yields, in file order, a `FileOutput` per readable file (outputs float32 on the CPU) or a `Skipped` for
    a file any of whose clips could not be read.

    Args:
        forward: the model's call on a batch of views.
        dataset: the files' views.
        batch_size: clips per forward, each with its crops.
        num_workers: DataLoader workers decoding clips (0: in this process).
        device: where the views go before `forward`.
        progress: gets a stage of the dataset's clips (named `label`), advanced after each batch.
        label: what the stage is called (the command, or the model and its views).

    Yields:
        A `FileOutput` per readable file, or a `Skipped` per file that could not be read.

    Raises:
        ValueError: a `batch_size` below 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_views,
        pin_memory=device.type == "cuda",
    )
    num_clips, total = dataset.num_clips, len(dataset)
    pending: dict[int, list] = {}  # file index -> outputs of its clips so far, or a failure reason
    done = 0
    progress.start(total, "clip", label)  # the clock starts before the first decode
    for batch in loader:
        outputs = iter(())
        if batch.views is not None:
            views = batch.views.to(device, non_blocking=True)
            crops = views.shape[1]
            with torch.inference_mode():
                out = forward(views.flatten(0, 1))  # (N * crops, ...)
            outputs = iter(out.float().cpu().unflatten(0, (-1, crops)))  # (N, crops, ...)
        for item in batch.items:
            clips = pending.setdefault(item.file, [])
            if item.reason is not None:
                clips.append(item.reason)
            else:
                clips.append((next(outputs), item.times))
            if len(clips) == num_clips:
                del pending[item.file]
                yield _file_result(dataset.files[item.file], item.file, clips)
        done += len(batch.items)
        progress.advance(done)
    progress.close()


def logits_forward(
    model: torch.nn.Module, device: torch.device | str | None = None, precision: Precision | str = "fp32"
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.device]:
    """`model` moved to `device` (default: where it is) in eval mode, and a function from its inputs to its
    logits under the `precision`'s autocast (`hvm1.devices.resolve_precision`); with the device."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    resolved = resolve_precision(precision, device)

    def forward(video: torch.Tensor) -> torch.Tensor:
        with resolved.autocast(device):
            return model(video)

    return forward, device


def _file_result(path: Path, index: int, clips: list) -> FileOutput | Skipped:
    failures = [clip for clip in clips if isinstance(clip, str)]
    if failures:
        return Skipped(str(path), failures[0])
    return FileOutput(
        index=index,
        outputs=torch.stack([output for output, _ in clips]),
        clip_times=torch.tensor([times for _, times in clips], dtype=torch.float64),
    )
