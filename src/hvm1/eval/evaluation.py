"""Accuracy of a finetuned model on labelled videos or images: deterministic multi-view testing.

Video mode (the ssv2 and kinetics models): each video is read as `clips` clips evenly spaced in time, each
resized to a short side of img_size * 256 / 224 and cut into `crops` views (3: left, center and right along
the long side; 1: the center); the logits of all views are averaged. Image mode (the imagenet-2pt models,
or any model on request): each image is resized to a short side of img_size + 32 (bicubic), center-cropped,
normalised with the model's mean/std (ImageNet's for the imagenet-2pt models) and repeated to the model's
frame count. Both presets come from the model's `Preprocessing`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvm1.data import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FileViews,
    LabelledFiles,
    Skipped,
    labelled_files,
    whole_frame_preset,
)
from hvm1.data.transforms import ImagePreset, VideoPreset
from hvm1.devices import Precision, resolve_precision
from hvm1.labels import imagenet_synsets, label_set
from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.zoo import Preprocessing, preprocessing_for

from .embed import DEFAULT_SAMPLING_RATE, compute_dtype
from .predictions import Predictions
from .views import logits_forward, run_views

logger = logging.getLogger(__name__)

#: Clips x crops per video when none are asked for.
DEFAULT_VIEWS = (2, 3)


def parse_views(text: str) -> tuple[int, int]:
    """`CLIPSxCROPS` (e.g. `2x3`) as (clips, crops); raises ValueError unless clips >= 1 and crops is 1 or 3.

    Args:
        text: `CLIPSxCROPS`.

    Returns:
        `(clips, crops)`.
    """
    clips, sep, crops = text.lower().partition("x")
    try:
        views = (int(clips), int(crops))
    except ValueError:
        views = None
    if not sep or views is None or views[0] < 1 or views[1] not in (1, 3):
        raise ValueError(f"views must be CLIPSxCROPS with clips >= 1 and crops 1 or 3 (e.g. 2x3), got {text!r}")
    return views


def check_class_count(model: VideoViT, listing: LabelledFiles, data: str | os.PathLike) -> None:
    """Raise ValueError when the model's head and the data disagree on the number of classes (both named).

    Args:
        model: the finetuned ViT.
        listing: the data's labelled files.
        data: the data's path, for the message.

    Raises:
        ValueError: the counts differ (both named).
    """
    head = model.config.num_classes
    if not head:
        raise ValueError(
            "the model has no classification head (num_classes 0): evaluate a finetuned model, or use "
            "`hvm1 embed` and `hvm1 probe`"
        )
    if listing.classes is not None and len(listing.classes) != head:
        raise ValueError(f"the model's head has {head} classes but {data} has {len(listing.classes)} class folders")
    labels = np.asarray(listing.labels)
    if labels.size and (labels.min() < 0 or labels.max() >= head):
        raise ValueError(
            f"the model's head has {head} classes (labels 0-{head - 1}) but {data} has labels "
            f"{labels.min()}-{labels.max()}"
        )


@dataclass(frozen=True)
class ViewPlan:
    """How a classifier reads each file: `preset` (an image or a video preset), `clips` per video, `crops` per
    clip, and the `batch_size` it runs at (1 for whole frames of other sizes)."""

    preset: ImagePreset | VideoPreset
    clips: int
    crops: int
    batch_size: int

    @property
    def image_mode(self) -> bool:
        """Whether the files are images (one view each)."""
        return isinstance(self.preset, ImagePreset)

    def settings(self) -> dict[str, Any]:
        """The plan as the entries a summary records: mode, views, and the preset's sizes and statistics."""
        preset = self.preset
        video = (
            {}
            if isinstance(preset, ImagePreset)
            else {"sampling_rate": preset.sampling_rate, "short_side": preset.short_side}
        )
        return {
            "mode": "image" if self.image_mode else "video",
            "views": f"{self.clips}x{self.crops}",
            "img_size": preset.img_size,
            "num_frames": preset.num_frames,
            **video,
            "mean": list(preset.mean),
            "std": list(preset.std),
        }


def view_plan(
    model: VideoViT,
    preprocessing: Preprocessing,
    *,
    image_mode: bool | None = None,
    views: tuple[int, int] | None = None,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    batch_size: int = 8,
    full_frame: bool = False,
) -> ViewPlan:
    """The views `evaluate` (and `classify`) read of each file, from the model's `preprocessing`.

    Args:
        model: the classifier (its patch size shapes whole frames).
        preprocessing: frames, size and mean/std.
        image_mode: read images (default: `preprocessing.single_image`, as for the imagenet-2pt models).
        views: (clips, crops) per video, default `DEFAULT_VIEWS`; an image is one view.
        sampling_rate: every `sampling_rate`-th frame at the target fps (videos).
        batch_size: clips per forward pass.
        full_frame: video mode with one crop: whole frames at their aspect ratio, one clip per forward.

    Returns:
        The `ViewPlan`.

    Raises:
        ValueError: views that the mode cannot take.
    """
    image_mode = preprocessing.single_image if image_mode is None else image_mode
    if image_mode and views not in (None, (1, 1)):
        raise ValueError(f"an image is one view (1x1); got views {views[0]}x{views[1]} in image mode")
    clips, crops = (1, 1) if image_mode else (views or DEFAULT_VIEWS)
    if full_frame:
        if image_mode or (views is not None and views[1] != 1):
            raise ValueError("full_frame reads one whole-frame view per clip: video mode with 1 crop (e.g. views 2x1)")
        crops = 1
    if image_mode:
        return ViewPlan(preprocessing.image_evaluation(), 1, 1, batch_size)
    video_preset = preprocessing.evaluation("uniform" if crops == 3 else "center", sampling_rate)
    if full_frame:
        return ViewPlan(whole_frame_preset(video_preset, model.config.patch_size), clips, 1, 1)
    return ViewPlan(video_preset, clips, crops, batch_size)


def averaged_logits(
    model: VideoViT,
    files: list[Path],
    plan: ViewPlan,
    *,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    precision: Precision | str = "fp32",
    progress: Progress = SILENT,
    label: str = "",
) -> Iterator[tuple[int, torch.Tensor] | Skipped]:
    """Run `model` over every view `plan` reads of each of `files` and average each file's logits.

    Args:
        model: the classifier.
        files: the files, in order.
        plan: the views of each file (`view_plan`).
        num_workers: DataLoader processes decoding while the model runs.
        device: where the model runs (default: where it is).
        precision: autocast precision (`hvm1.devices.resolve_precision`).
        progress: gets a stage of the clips (named `label`), advanced after each batch.
        label: what the stage is called.

    Yields:
        In file order, (index in `files`, the mean of its views' logits (classes,), float32 on the CPU), or a
        `Skipped` for a file that could not be read.
    """
    forward, device = logits_forward(model, device, precision)
    for result in run_views(
        forward,
        FileViews(files, plan.preset, plan.clips),
        batch_size=plan.batch_size,
        num_workers=num_workers,
        device=device,
        progress=progress,
        label=label,
    ):
        if isinstance(result, Skipped):
            yield result
        else:
            yield result.index, result.outputs.flatten(0, 1).mean(dim=0)  # (clips, crops, C) -> (C,)


def evaluate(
    model: VideoViT,
    data: str | os.PathLike,
    *,
    preprocessing: Preprocessing | None = None,
    image_mode: bool | None = None,
    views: tuple[int, int] | None = None,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    batch_size: int = 8,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    model_name: str | None = None,
    precision: Precision | str = "fp32",
    progress: Progress = SILENT,
    full_frame: bool = False,
) -> Predictions:
    """Evaluate a finetuned `VideoViT` on `data`: a folder of class subfolders (label = sorted subfolder
    index) or a CSV manifest of `path,label` rows.

    `preprocessing` gives frames, size and mean/std (default: the model's config with the video mean/std);
    `image_mode` reads images instead of videos (default: when `preprocessing.single_image`, as for the
    imagenet-2pt models); `views` is (clips, crops), video mode only, default 2x3. The class count is
    checked against the model's head before anything is decoded. The model runs at `precision` (see
    `hvm1.devices.resolve_precision`; default fp32). `full_frame` (video mode, one crop) reads whole frames
    at their aspect ratio instead of square crops (`hvm1.data.whole_frame_preset`), one clip per forward.
    The classes are named by the model's `class_names` where it has them, else by the class folders.
    Unreadable files are skipped and listed. Returns the per-file averaged logits with top-1, top-5, mean
    per-class accuracy and loss.

    Args:
        model: the finetuned ViT.
        data: a folder of class subfolders or a `path,label` CSV manifest.
        preprocessing: frames, size and mean/std (default: the model's config with the video mean/std).
        image_mode: read images instead of videos (default: when `preprocessing.single_image`).
        views: (clips, crops), video mode only (default 2x3).
        sampling_rate: take every `sampling_rate`-th frame at 30 fps.
        batch_size: clips per forward.
        num_workers: DataLoader workers decoding clips.
        device: where the model runs (default: where its weights are).
        model_name: the model's name, recorded in the summary.
        precision: the precision the model runs at.
        progress: gets a stage of the clips ('evaluate'), advanced after each batch.
        full_frame: read whole frames at their aspect ratio (video mode, one crop), one clip per forward.

    Returns:
        The `Predictions`: per-file averaged logits, top-1, top-5, mean per-class accuracy and loss.

    Raises:
        ValueError: a model that is no ViT, or a head whose class count differs from the data's.
    """
    if not isinstance(model, VideoViT):
        raise ValueError(f"evaluation needs a VideoViT with a head, got a {type(model).__name__}")
    preprocessing = preprocessing or preprocessing_for(model)
    plan = view_plan(
        model,
        preprocessing,
        image_mode=image_mode,
        views=views,
        sampling_rate=sampling_rate,
        batch_size=batch_size,
        full_frame=full_frame,
    )
    listing = labelled_files(data, IMAGE_EXTENSIONS if plan.image_mode else VIDEO_EXTENSIONS)
    check_class_count(model, listing, data)
    classes = class_names(model, listing.classes)
    rows, logits, skipped = [], [], []
    for result in averaged_logits(
        model,
        listing.files,
        plan,
        num_workers=num_workers,
        device=device,
        precision=precision,
        progress=progress,
        label="evaluate",
    ):
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            rows.append(result[0])
            logits.append(result[1])
    if not rows:
        raise ValueError(f"{data}: none of its {len(listing.files)} files could be read ({skipped[0].reason}, ...)")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    settings: dict[str, Any] = {
        "model": model_name,
        "dtype": compute_dtype(model, resolve_precision(precision, device)),
        "data": str(data),
        "num_classes": model.config.num_classes,
        **plan.settings(),
    }
    logger.info("evaluated %d files of %s (%d skipped)", len(rows), data, len(skipped))
    return Predictions.score(
        [str(listing.files[row]) for row in rows],
        np.array([listing.labels[row] for row in rows], dtype=np.int64),
        torch.stack(logits).numpy(),
        classes=classes,
        skipped=skipped,
        settings=settings,
    )


def class_names(model: VideoViT, folders: list[str] | None) -> list[str] | None:
    """The names of `model`'s outputs for a report: its `class_names`, else the class `folders` the data were
    numbered by (logged where the two disagree: the data's labels then mean other classes), else None."""
    names = getattr(model, "class_names", None)
    if names is None:
        return folders
    if folders is not None and not folders_match(names, folders):
        logger.warning(
            "the data's class folders (%s, ...) are not the model's classes (%s, ...): labels are the "
            "folders' sorted order",
            folders[0],
            names[0],
        )
    return list(names)


def folders_match(names: tuple[str, ...] | list[str], folders: list[str]) -> bool:
    """Whether class `folders` (sorted) are the classes `names`: the same names up to case, spaces against
    underscores, and a WordNet id in place of an ImageNet name."""

    def plain(text: str) -> str:
        return text.lower().replace("_", " ").strip()

    if len(names) != len(folders):
        return False
    if tuple(names) == label_set("imagenet1k"):
        return folders == [wnid for wnid, _ in imagenet_synsets()]
    return [plain(name) for name in names] == [plain(folder) for folder in folders]
