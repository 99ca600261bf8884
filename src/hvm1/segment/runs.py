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

from hvm1.data import Skipped, VideoError, read_clip, read_or_skip
from hvm1.devices import Precision
from hvm1.models import VideoViT
from hvm1.viz.grid import save_jpeg, write_animation

from .davis import (
    DavisSequence,
    ObjectScore,
    davis_sequence,
    davis_sequence_names,
    global_scores,
    read_mask,
    score_sequence,
    without_void,
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
    """What a run wrote: per sequence its mask files and overlay files, and the scores of the objects with
    a scored frame; `unscored` names each propagated sequence with nothing to score and why (left out of
    the means and tables); `tables` are the two DAVIS CSVs when anything was scored; `failures` the
    sequences that could not be run (unreadable frames or masks, frames or masks of different sizes)."""

    masks: dict[str, list[Path]] = field(default_factory=dict)
    overlays: dict[str, list[Path]] = field(default_factory=dict)
    scores: list[ObjectScore] = field(default_factory=list)
    unscored: dict[str, str] = field(default_factory=dict)
    tables: tuple[Path, ...] = ()
    failures: list[Skipped] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, float]:
        """The global DAVIS statistics (J&F-Mean, J-Mean, ...) over the scored objects; empty when none."""
        return global_scores(self.scores) if self.scores else {}


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
    """Propagate each sequence's first annotation through its frames and score it as DAVIS-2017 does.

    Writes `OUT/SEQ/NNNNN.png` (indexed, DAVIS palette) and `OUT/SEQ/overlay.jpg` (plus `overlay.mp4|gif`
    with `animate`); fully annotated sequences are scored and the DAVIS tables written to OUT (see
    `hvm1.segment.davis`). Each sequence listed runs once. Void pixels (255) of the first annotation are
    background, as the evaluation makes them. A sequence that cannot be run (a frame or mask that cannot be
    read, a frame or annotation whose size is not its sequence's) is reported in `failures`, naming the file
    and both sizes, and the others still run; a propagated sequence with nothing to score (partly
    annotated, one or two frames, no object in its first annotation) is named in `unscored`.

    Args:
        model: the ViT whose last block's patch features carry the labels.
        root: the DAVIS-2017 folder (`JPEGImages/RES/SEQ`, `Annotations/RES/SEQ`, `ImageSets/2017`).
        out_dir: where the masks, overlays and tables go.
        config: the propagation settings.
        split: the `ImageSets/2017` list to run.
        resolution: the frame folder (`480p`).
        sequences: only these sequences (default: the split's).
        animate: also write an animated overlay, `"mp4"` or `"gif"`.
        progress: called with (sequence, frames done, frames in it).
        precision: what the model runs at (`hvm1.devices.resolve_precision`).

    Returns:
        The report: masks and overlays written, scores, unscored sequences, tables, failures.

    Raises:
        ValueError: when `sequences` is None and the folder has no `ImageSets/2017/{split}.txt`.
    """
    out_dir = Path(out_dir)
    report = PropagationReport()
    for name in davis_sequence_names(root, split, sequences):
        run = partial(_run_sequence, model, root, name, resolution, out_dir, config, animate,
                      _per_sequence(progress, name), precision)
        outcome = read_or_skip(name, run)
        if isinstance(outcome, Skipped):  # one sequence's failure, never the run's
            report.failures.append(outcome)
            continue
        report.masks[name], report.overlays[name], scores, unscored = outcome
        report.scores.extend(score for score in scores if score.scored)
        if unscored:
            logger.info("%s: not scored, %s", name, unscored)
            report.unscored[name] = unscored
    if report.scores:
        report.tables = write_score_tables(report.scores, out_dir, split)
    return report


def _run_sequence(
    model: VideoViT, root: str | os.PathLike, name: str, resolution: str, out_dir: Path, config: PropagationConfig,
    animate: str | None, progress, precision: Precision | str,
) -> tuple[list[Path], list[Path], list[ObjectScore], str]:
    """One sequence read, checked, propagated, scored and written: (masks, overlays, scores, why unscored)."""
    sequence = davis_sequence(root, name, resolution)
    frames, annotations = _read_inputs(sequence)
    masks = propagate(model, frames, without_void(annotations[0]), config, progress, precision)
    scores: list[ObjectScore] = []
    if len(annotations) < len(frames):
        unscored = f"{len(annotations)} of {len(frames)} frames annotated"
    else:
        scores = score_sequence(name, annotations, masks)
        unscored = _nothing_to_score(scores, len(frames))
    written, overlays = _write_sequence(name, frames, masks, [path.stem for path in sequence.frames], out_dir,
                                        animate, fps=24)
    return written, overlays, scores, unscored


def _read_inputs(sequence: DavisSequence) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """The frames and the annotations (every frame's when fully annotated, else the first's), each checked
    to have the first frame's size."""
    frames = sequence.read_frames()
    height, width = frames[0].shape[1:]
    first = sequence.frames[0].name
    for path, frame in zip(sequence.frames[1:], frames[1:]):
        if tuple(frame.shape[1:]) != (height, width):
            raise VideoError(path, f"{frame.shape[2]}x{frame.shape[1]} px, but the sequence's first frame {first} "
                                   f"is {width}x{height} px: a sequence's frames must share one size")
    paths = sequence.annotations if sequence.fully_annotated else sequence.annotations[:1]
    annotations = [read_mask(path) for path in paths]
    for path, mask in zip(paths, annotations):
        if mask.shape != (height, width):
            raise VideoError(path, f"a {mask.shape[1]}x{mask.shape[0]} px annotation for the sequence's "
                                   f"{width}x{height} px frames")
    return frames, annotations


def _nothing_to_score(scores: list[ObjectScore], frames: int) -> str:
    """Why a fully annotated sequence has no score ('' when it has)."""
    if not scores:
        return "its first annotation has no object"
    if not any(score.scored for score in scores):
        return f"{frames} frame{'s' if frames > 1 else ''}: the first and the last are never scored"
    return ""


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
    autorotate: bool = True,
) -> PropagationReport:
    """Propagate a first-frame mask (an image file or an (H, W) id array at the video's shown size) through up
    to `num_frames` frames of a video, read every `sampling_rate`-th frame at `target_fps` from the start (as
    `hvm1.data.read_clip` reads time and turns frames upright; `autorotate` False: as stored); writes
    `OUT/STEM/NNNNN.png` and the overlays. Nothing is scored."""
    video = Path(video)
    clip = read_clip(video, num_frames=num_frames, sampling_rate=sampling_rate, target_fps=target_fps, start=0.0,
                     autorotate=autorotate)
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
