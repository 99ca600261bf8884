"""Propagation runs over files: a DAVIS-2017 folder (masks, scores, overlays) or one video with a first mask."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import cast

import numpy as np
import torch

from hvm1.data import Skipped, VideoError, read_clip, read_or_skip
from hvm1.devices import Precision
from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DeviceSettings, ModelSettings, setting
from hvm1.viz.grid import ANIMATION_FORMATS, save_jpeg, write_animation

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
_DEFAULTS = PropagationConfig()

OVERLAY_NAME = "overlay.jpg"


@dataclass
class PropagationReport(Report):
    """What a run wrote: per sequence its mask files and overlay files, and the scores of the objects with
    a scored frame; `unscored` names each propagated sequence with nothing to score and why (left out of
    the means and tables); `tables` are the two DAVIS CSVs when anything was scored; `skipped` the
    sequences that could not be run (unreadable frames or masks, frames or masks of different sizes); `davis`:
    a DAVIS folder's run (scored), not a video's."""

    masks: dict[str, list[Path]] = field(default_factory=dict)
    overlays: dict[str, list[Path]] = field(default_factory=dict)
    scores: list[ObjectScore] = field(default_factory=list)
    unscored: dict[str, str] = field(default_factory=dict)
    tables: tuple[Path, ...] = ()
    davis: bool = False

    @property
    def summary(self) -> dict[str, float]:
        """The global DAVIS statistics (J&F-Mean, J-Mean, ...) over the scored objects; empty when none."""
        return global_scores(self.scores) if self.scores else {}


def _write_sequence(
    name: str,
    frames: Sequence[torch.Tensor],
    masks: list[np.ndarray],
    stems: Sequence[str],
    out_dir: Path,
    animate: str | None,
    fps: Fraction | float,
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
    progress: Progress = SILENT,
    precision: Precision | str = "fp32",
) -> PropagationReport:
    """Propagate each sequence's first annotation through its frames and score it as DAVIS-2017 does.

    Writes `OUT/SEQ/NNNNN.png` (indexed, DAVIS palette) and `OUT/SEQ/overlay.jpg` (plus `overlay.mp4|gif`
    with `animate`); fully annotated sequences are scored and the DAVIS tables written to OUT (see
    `hvm1.segment.davis`). Each sequence listed runs once. Void pixels (255) of the first annotation are
    background, as the evaluation makes them. A sequence that cannot be run (a frame or mask that cannot be
    read, a frame or annotation whose size is not its sequence's) is reported in `skipped`, naming the file
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
        progress: Gets a stage of each sequence's frames.
        precision: what the model runs at (`hvm1.devices.resolve_precision`).

    Returns:
        The report: masks and overlays written, scores, unscored sequences, tables, skipped sequences.

    Raises:
        ValueError: when `sequences` is None and the folder has no `ImageSets/2017/{split}.txt`.
    """
    out_dir = Path(out_dir)
    report = PropagationReport(davis=True)
    for name in davis_sequence_names(root, split, sequences):
        run = partial(_run_sequence, model, root, name, resolution, out_dir, config, animate, progress, precision)
        outcome = read_or_skip(name, run)
        if isinstance(outcome, Skipped):  # one sequence's failure, never the run's
            report.skipped.append(outcome)
            continue
        report.masks[name], report.overlays[name], scores, unscored = outcome
        report.scores.extend(score for score in scores if score.scored)
        if unscored:
            logger.info("%s: not scored, %s", name, unscored)
            report.unscored[name] = unscored
    if report.scores:
        report.tables = write_score_tables(report.scores, out_dir, split)
    return _listed(report)


def _run_sequence(
    model: VideoViT,
    root: str | os.PathLike,
    name: str,
    resolution: str,
    out_dir: Path,
    config: PropagationConfig,
    animate: str | None,
    progress,
    precision: Precision | str,
) -> tuple[list[Path], list[Path], list[ObjectScore], str]:
    """One sequence read, checked, propagated, scored and written: (masks, overlays, scores, why unscored)."""
    sequence = davis_sequence(root, name, resolution)
    frames, annotations = _read_inputs(sequence)
    masks = propagate(model, frames, without_void(annotations[0]), config, progress, precision, label=name)
    scores: list[ObjectScore] = []
    if not sequence.fully_annotated:
        unscored = f"{len(sequence.annotations)} of {len(frames)} frames annotated"
    else:
        scores = score_sequence(name, annotations, masks)
        unscored = _nothing_to_score(scores, len(frames))
    written, overlays = _write_sequence(
        name, frames, masks, [path.stem for path in sequence.frames], out_dir, animate, fps=24
    )
    return written, overlays, scores, unscored


def _read_inputs(sequence: DavisSequence) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """The frames and the annotations (every frame's when fully annotated, else the first's), each checked
    to have the first frame's size."""
    frames = sequence.read_frames()
    height, width = frames[0].shape[1:]
    first = sequence.frames[0].name
    for path, frame in zip(sequence.frames[1:], frames[1:]):
        if tuple(frame.shape[1:]) != (height, width):
            raise VideoError(
                path,
                f"{frame.shape[2]}x{frame.shape[1]} px, but the sequence's first frame {first} "
                f"is {width}x{height} px: a sequence's frames must share one size",
            )
    paths = sequence.annotations if sequence.fully_annotated else sequence.annotations[:1]
    annotations = [read_mask(path) for path in paths]
    for path, mask in zip(paths, annotations):
        if mask.shape != (height, width):
            raise VideoError(
                path, f"a {mask.shape[1]}x{mask.shape[0]} px annotation for the sequence's {width}x{height} px frames"
            )
    return frames, annotations


def _nothing_to_score(scores: list[ObjectScore], frames: int) -> str:
    """Why a fully annotated sequence has no score ('' when it has)."""
    if not scores:
        return "its first annotation has no object"
    if not any(score.scored for score in scores):
        return f"{frames} frame{'s' if frames > 1 else ''}: the first and the last are never scored"
    return ""


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
    progress: Progress = SILENT,
    precision: Precision | str = "fp32",
    autorotate: bool = True,
) -> PropagationReport:
    """Propagate a first-frame mask (an image file or an (H, W) id array at the video's shown size) through up
    to `num_frames` frames of a video, read every `sampling_rate`-th frame at `target_fps` from the start (as
    `hvm1.data.read_clip` reads time and turns frames upright; `autorotate` False: as stored); writes
    `OUT/STEM/NNNNN.png` and the overlays. Nothing is scored.

    Args:
        model: the ViT.
        video: the video file.
        first_mask: the first frame's mask: an image file or an (H, W) id array.
        out_dir: the folder the masks and overlays go to.
        config: the propagation's settings (the published ones by default).
        num_frames: frames propagated through, at most.
        sampling_rate: take every `sampling_rate`-th frame at `target_fps`.
        target_fps: the frame rate the sampling rate counts in.
        animate: 'mp4' or 'gif' also writes the overlay of every frame as an animation.
        progress: reports the frames done.
        precision: the precision the model runs at.
        autorotate: turn frames upright as players show them (False: as stored).

    Returns:
        The `PropagationReport`: the masks and overlays written.

    Raises:
        VideoError: the video or the mask cannot be read.
        ValueError: a mask of another size than the video's frames.
    """
    video = Path(video)
    clip = read_clip(
        video,
        num_frames=num_frames,
        sampling_rate=sampling_rate,
        target_fps=target_fps,
        start=0.0,
        autorotate=autorotate,
    )
    kept = clip.frames[: num_frames - clip.padded]  # (T, H, W, 3): instants past the end are left out
    frames = [frame.permute(2, 0, 1).contiguous() for frame in kept]
    mask = read_mask(first_mask) if not isinstance(first_mask, np.ndarray) else first_mask
    masks = propagate(model, frames, mask, config, progress, precision, label=video.stem)
    report = PropagationReport()
    report.masks[video.stem], report.overlays[video.stem] = _write_sequence(
        video.stem,
        frames,
        masks,
        [f"{i:05d}" for i in range(len(frames))],
        Path(out_dir),
        animate,
        fps=Fraction(target_fps).limit_denominator(1001) / sampling_rate,
    )
    return _listed(report)


def _listed(report: PropagationReport) -> PropagationReport:
    """The report with `written` listing every file: each sequence's masks and overlays, then the tables."""
    report.written = [
        *(path for name in report.masks for path in (*report.masks[name], *report.overlays[name])),
        *report.tables,
    ]
    return report


@dataclass(frozen=True, kw_only=True)
class PropagateConfig(ModelSettings, DeviceSettings):
    """`hvm1 propagate`: label propagation through a DAVIS-2017 folder or a video file with its first mask."""

    source: Path = setting(
        positional=True,
        metavar="DAVIS_DIR|VIDEO",
        help="a DAVIS-2017 folder (JPEGImages/480p, Annotations/480p, ImageSets/2017) or a video",
    )
    mask: Path | None = setting(
        None,
        metavar="FIRST.png",
        help="the first frame's mask for a video file (indexed or greyscale PNG: pixel = object id)",
    )
    out_dir: Path = setting(metavar="OUT", help="where masks and tables go")
    split: str = setting("val", help="DAVIS: the ImageSets/2017 list to run")
    resolution: str = setting("480p", help="DAVIS: the frame folder")
    sequences: str | None = setting(None, metavar="A,B", help="DAVIS: only these sequences (default: the split's)")
    max_frames: int = setting(60, metavar="K", help="video: propagate through the first K frames read")
    sampling_rate: int = setting(1, metavar="R", help="video: every R-th frame at 30 fps from the start")
    short_side: int = setting(
        _DEFAULTS.short_side,
        metavar="PX",
        aliases=("--img-size",),
        help="frames' short side before the features (the long side: the largest multiple of "
        f"{_DEFAULTS.size_multiple} at or below the proportional length)",
    )
    num_frames: int | None = setting(
        None, metavar="T", help="each frame is repeated into a clip of T frames (default: the model's, 16 for HVM-1)"
    )
    n_last_frames: int = setting(
        _DEFAULTS.n_last_frames, metavar="N", help="recent predictions in the context, besides the first frame"
    )
    size_mask_neighborhood: int = setting(
        _DEFAULTS.size_mask_neighborhood, metavar="P", help="context patches at most P rows and columns away (0: all)"
    )
    topk: int = setting(_DEFAULTS.topk, metavar="K", help="context patches kept per target patch")
    temperature: float = setting(_DEFAULTS.temperature, help="affinity temperature")
    animate: str | None = setting(None, choices=ANIMATION_FORMATS, help="also write OUT/SEQ/overlay.mp4|gif")
    autorotate: bool = setting(
        True, help="turn a video upright as players show it (display matrix); off: read it as stored"
    )


def propagate_command(config: PropagateConfig, progress: Progress = SILENT) -> PropagationReport:
    """`hvm1 propagate`: `propagate_davis` on a DAVIS folder, or `propagate_video` on a video and its first mask.

    Args:
        config: The command's settings.
        progress: Told of downloads, the precision and each sequence's frames.

    Returns:
        What was written and scored, and the sequences skipped.

    Raises:
        ValueError: A folder that is not DAVIS-2017, a video without `mask`, a folder with one, a missing source.
    """
    from hvm1.devices import resolve_device
    from hvm1.inference import precision_for_run
    from hvm1.zoo import load_for_command

    source = config.source
    if source.is_dir():
        if config.mask:
            raise ValueError(f"mask is for a video file; {source} is a folder, whose first annotations are used")
        listing = source / "ImageSets" / "2017" / f"{config.split}.txt"
        if config.sequences is None and not listing.is_file():
            raise ValueError(f"{source} is not a DAVIS-2017 folder: no {listing.relative_to(source)}")
    elif config.mask is None:
        raise ValueError(f"{source} is a video file: name its first frame's mask with --mask FIRST.png")
    elif not source.is_file():
        raise ValueError(f"{source}: no such file or folder")
    propagation = PropagationConfig(
        short_side=config.short_side,
        n_last_frames=config.n_last_frames,
        size_mask_neighborhood=config.size_mask_neighborhood,
        topk=config.topk,
        temperature=config.temperature,
        clip_frames=config.num_frames,
    )
    device = resolve_device(config.device)
    model = cast(VideoViT, load_for_command(config, model_type="vit", device=device, progress=progress).model)
    precision = precision_for_run(config.precision, device, [model], progress)
    progress.keeping(f"the masks written so far are in {config.out_dir}")
    if config.mask is None:
        return propagate_davis(
            model,
            source,
            config.out_dir,
            propagation,
            split=config.split,
            resolution=config.resolution,
            sequences=config.sequences.split(",") if config.sequences else None,
            animate=config.animate,
            progress=progress,
            precision=precision,
        )
    return propagate_video(
        model,
        source,
        config.mask,
        config.out_dir,
        propagation,
        num_frames=config.max_frames,
        sampling_rate=config.sampling_rate,
        animate=config.animate,
        progress=progress,
        precision=precision,
        autorotate=config.autorotate,
    )
