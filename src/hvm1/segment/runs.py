"""Propagation runs over files: a DAVIS-2017 folder (masks, scores, overlays) or one video with a first mask."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np
import torch

from hvm1.data import Skipped, read_clip, read_or_skip
from hvm1.devices import Precision
from hvm1.models import VideoViT
from hvm1.viz.grid import save_jpeg, write_animation

from .davis import (
    DavisSequence,
    ObjectScore,
    davis_sequences,
    global_scores,
    read_mask,
    score_sequence,
    write_indexed_png,
    write_score_tables,
)
from .propagation import PropagationConfig, propagate

logger = logging.getLogger(__name__)

#: Progress callback: (sequence name, frames done, frames in the sequence).
SequenceProgress = Callable[[str, int, int], None]
OVERLAY_NAME = "overlay.jpg"


@dataclass
class PropagationReport:
    """What a run wrote: per sequence its mask files and overlay files, and the scores (empty without
    full annotations); `tables` are the two DAVIS CSVs when anything was scored."""

    masks: dict[str, list[Path]] = field(default_factory=dict)
    overlays: dict[str, list[Path]] = field(default_factory=dict)
    scores: list[ObjectScore] = field(default_factory=list)
    tables: tuple[Path, ...] = ()
    failures: list[Skipped] = field(default_factory=list)  # sequences whose frames or first mask could not be read

    @property
    def summary(self) -> dict[str, float]:
        """The global DAVIS statistics (J&F-Mean, J-Mean, ...) over the scored objects."""
        return global_scores(self.scores)


def _write_sequence(
    name: str, frames: Sequence[torch.Tensor], masks: list[np.ndarray], stems: Sequence[str], out_dir: Path,
    animate: str | None, fps: Fraction | float,
) -> tuple[list[Path], list[Path]]:
    from hvm1.viz.segmentation import overlay_masks, overlay_strip

    folder = out_dir / name
    written = [write_indexed_png(mask, folder / f"{stem}.png") for mask, stem in zip(masks, stems)]
    overlays = [save_jpeg(overlay_strip(frames, masks), folder / OVERLAY_NAME)]
    if animate:
        animation = np.stack([overlay_masks(frame, mask) for frame, mask in zip(frames, masks)])
        overlays.append(write_animation(animation, folder / f"overlay.{animate}", fps))
    return written, overlays


def propagate_davis(
    model: VideoViT,
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: PropagationConfig = PropagationConfig(),
    split: str = "val",
    resolution: str = "480p",
    sequences: Sequence[str] | None = None,
    animate: str | None = None,
    progress: SequenceProgress | None = None,
    precision: Precision | str = "fp32",
) -> PropagationReport:
    """Propagate each sequence's first annotation through its frames, writing `OUT/SEQ/NNNNN.png` (indexed,
    DAVIS palette) and `OUT/SEQ/overlay.jpg` (plus `overlay.mp4|gif` with `animate`); fully annotated
    sequences are scored and the DAVIS tables written to OUT (see `hvm1.segment.davis`). The model runs at
    `precision` (default fp32). A sequence whose frames or first mask cannot be read is reported in the
    result's `failures` (see `hvm1.data.failures`), and the others are still propagated."""
    out_dir = Path(out_dir)
    report = PropagationReport()
    for sequence in davis_sequences(root, split, resolution, sequences):
        read = read_or_skip(sequence.name, partial(_read_inputs, sequence))
        if isinstance(read, Skipped):  # one sequence's failure, never the run's
            report.failures.append(read)
            continue
        frames, first = read
        masks = propagate(model, frames, first, config, _per_sequence(progress, sequence.name), precision)
        stems = [path.stem for path in sequence.frames]
        report.masks[sequence.name], report.overlays[sequence.name] = _write_sequence(
            sequence.name, frames, masks, stems, out_dir, animate, fps=24,
        )
        report.scores.extend(_score(sequence, masks))
    if report.scores:
        report.tables = write_score_tables(report.scores, out_dir, split)
    return report


def _read_inputs(sequence: DavisSequence) -> tuple[list[torch.Tensor], np.ndarray]:
    return sequence.read_frames(), read_mask(sequence.annotations[0])


def _score(sequence: DavisSequence, masks: list[np.ndarray]) -> list[ObjectScore]:
    if not sequence.fully_annotated:
        logger.info("%s: %d of %d frames annotated, not scored", sequence.name, len(sequence.annotations),
                    len(sequence.frames))
        return []
    return score_sequence(sequence.name, [read_mask(path) for path in sequence.annotations], masks)


def _per_sequence(progress: SequenceProgress | None, name: str):
    return (lambda done, total: progress(name, done, total)) if progress else None


def propagate_video(
    model: VideoViT,
    video: str | os.PathLike,
    first_mask: str | os.PathLike | np.ndarray,
    out_dir: str | os.PathLike,
    config: PropagationConfig = PropagationConfig(),
    num_frames: int = 60,
    sampling_rate: int = 1,
    target_fps: float = 30.0,
    animate: str | None = None,
    progress: SequenceProgress | None = None,
    precision: Precision | str = "fp32",
) -> PropagationReport:
    """Propagate a first-frame mask (an image file or an (H, W) id array at the video's size) through up to
    `num_frames` frames of a video, read every `sampling_rate`-th frame at `target_fps` from the start (as
    `hvm1.data.read_clip` reads time); writes `OUT/STEM/NNNNN.png` and the overlays. Nothing is scored."""
    video = Path(video)
    clip = read_clip(video, num_frames=num_frames, sampling_rate=sampling_rate, target_fps=target_fps, start=0.0)
    kept = clip.frames[: num_frames - clip.padded]  # (T, H, W, 3): instants past the end are left out
    frames = [frame.permute(2, 0, 1).contiguous() for frame in kept]
    mask = read_mask(first_mask) if not isinstance(first_mask, np.ndarray) else first_mask
    masks = propagate(model, frames, mask, config, _per_sequence(progress, video.stem), precision)
    report = PropagationReport()
    report.masks[video.stem], report.overlays[video.stem] = _write_sequence(
        video.stem, frames, masks, [f"{i:05d}" for i in range(len(frames))], Path(out_dir), animate,
        fps=Fraction(target_fps).limit_denominator(1001) / sampling_rate,
    )
    return report
