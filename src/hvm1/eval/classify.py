"""What a finetuned classifier sees in each video or image: the top-k class names with their probabilities.

A file is read as `hvm1 evaluate` reads it (`view_plan`: clips x crops of a video, or one image), the logits of
its views are averaged (`averaged_logits`) and their softmax gives the probabilities. The names come from the
model (`model.class_names`: a zoo model's label set, or the names its file records) or from `labels` (a
published label set's name, a text file of one name per line, or a folder of class subfolders); a count that
does not match the head is an error before anything is decoded.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from hvm1.data import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Skipped, VideoError, VideoPreset, Window, find_files
from hvm1.data.failures import skipped_for
from hvm1.data.windows import check_stride
from hvm1.devices import Precision, resolve_device
from hvm1.files import output_folder, write_text
from hvm1.inference import precision_for_run
from hvm1.labels import LabelsError, class_names_of, read_labels
from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DeviceSettings, ModelSettings, OutputSettings, setting
from hvm1.zoo import MODELS, load_for_command, preprocessing_for

from .embed import DEFAULT_SAMPLING_RATE, compute_dtype
from .evaluation import ViewPlan, averaged_logits, parse_views, view_plan
from .timelines import Timeline, window_probabilities

logger = logging.getLogger(__name__)

CLASSES_CSV = "classes.csv"
WINDOWS_CSV = "windows.csv"
CLASSES_JSON = "classes.json"
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class RankedClass:
    """One of a file's top classes: its `rank` (1 = most probable), head `index`, `name` and `probability`."""

    rank: int
    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class FileClasses:
    """A file's top-k classes, most probable first."""

    path: str
    top: list[RankedClass]


@dataclass
class ClassifyResult:
    """What `classify_files` made: each readable file's top classes, the files `skipped` as unreadable, the
    class `names` used and the `settings` that made them (written into the JSON)."""

    files: list[FileClasses]
    names: tuple[str, ...]
    skipped: list[Skipped] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The result as `classes.json` holds it: settings, each file's top classes, the skipped files."""
        return {
            **self.settings,
            "files": [{"path": item.path, "top": [asdict(ranked) for ranked in item.top]} for item in self.files],
            "skipped": [{"path": item.path, "reason": item.reason} for item in self.skipped],
        }

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write `classes.csv` (one row per file and rank: path, rank, class, name, probability) and
        `classes.json` into `out_dir`, each atomically; returns both paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["path", "rank", "class", "name", "probability"])
        for item in self.files:
            for ranked in item.top:
                writer.writerow([item.path, ranked.rank, ranked.index, ranked.name, f"{ranked.probability:.6f}"])
        table = write_text(out_dir / CLASSES_CSV, rows.getvalue())
        summary = write_text(out_dir / CLASSES_JSON, json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return [table, summary]


def head_names(model: VideoViT, labels: str | Path | None = None) -> tuple[str, ...]:
    """The class names for `model`'s head: `labels` read with `hvm1.labels.read_labels` (checked against the
    head's class count) when given, else the model's own.

    Raises:
        LabelsError: the model has no head, the labels' count is not the head's (both named), or there are no
            names (the message says how to give them).
        FileNotFoundError: `labels` does not exist.
    """
    if not isinstance(model, VideoViT) or not model.config.num_classes:
        raise LabelsError("classify needs a finetuned ViT with a classification head (this model has none)")
    if labels is not None:
        return read_labels(labels, model.config.num_classes)
    return class_names_of(model)


def ranked_classes(probabilities: torch.Tensor, names: Sequence[str], top_k: int) -> list[RankedClass]:
    """The `top_k` most probable classes of `probabilities` (classes,), most probable first (ties to the lower
    index)."""
    top = probabilities.double().topk(min(top_k, len(probabilities)))
    return [
        RankedClass(rank, int(index), names[int(index)], float(value))
        for rank, (value, index) in enumerate(zip(top.values, top.indices), start=1)
    ]


def top_classes(logits: torch.Tensor, names: Sequence[str], top_k: int) -> list[RankedClass]:
    """The `top_k` most probable classes of one file's averaged `logits` (classes,), by softmax."""
    return ranked_classes(logits.double().softmax(dim=0), names, top_k)


def classify_files(
    model: VideoViT,
    files: Sequence[str | Path],
    plan: ViewPlan,
    names: Sequence[str],
    *,
    top_k: int = DEFAULT_TOP_K,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    precision: Precision | str = "fp32",
    progress: Progress = SILENT,
) -> ClassifyResult:
    """Classify each of `files` with `model`: the `top_k` names of `names` with their probabilities.

    Args:
        model: a finetuned `VideoViT`.
        files: videos, or images when `plan` reads images.
        plan: the views of each file (`hvm1.eval.view_plan`), as `evaluate` reads them.
        names: one name per output of the head (`head_names`).
        top_k: how many classes to keep per file (all of them when the head has fewer).
        num_workers: DataLoader processes decoding while the model runs.
        device: where the model runs (default: where it is).
        precision: autocast precision (`hvm1.devices.resolve_precision`).
        progress: gets a stage of the clips ('classify'), advanced after each batch.

    Returns:
        The `ClassifyResult`; an unreadable file is in its `skipped` with the reason, and the others go on.

    Raises:
        ValueError: `top_k` below 1, or `names` not one per output of the head (before anything is decoded).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if len(names) != model.config.num_classes:
        raise LabelsError(f"{len(names)} class names but the model's head has {model.config.num_classes} classes")
    paths = [Path(file) for file in files]
    results, skipped = [], []
    for result in averaged_logits(
        model,
        paths,
        plan,
        num_workers=num_workers,
        device=device,
        precision=precision,
        progress=progress,
        label="classify",
    ):
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            index, logits = result
            results.append(FileClasses(str(paths[index]), top_classes(logits, names, top_k)))
    logger.info("classified %d files (%d skipped)", len(results), len(skipped))
    settings = {"top_k": top_k, "num_classes": model.config.num_classes, **plan.settings()}
    return ClassifyResult(results, tuple(names), skipped, settings)


def find_inputs(paths: Sequence[str | Path], images: bool) -> list[Path]:
    """The videos (or, with `images`, the images) that `paths` name: files as given, folders searched
    recursively.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: there is no file to classify.
    """
    files = find_files(paths, IMAGE_EXTENSIONS if images else VIDEO_EXTENSIONS)
    if not files:
        kind = "images" if images else "videos"
        raise ValueError(f"no {kind} in {', '.join(map(str, paths))}: nothing to classify")
    return files


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig(ModelSettings, DeviceSettings, OutputSettings):
    """`hvm1 classify`: which files, which model and class names, how many classes per file, where to write."""

    paths: tuple[Path, ...] = setting(
        positional=True, metavar="PATH", help="videos or images, or folders of them (searched recursively)"
    )
    labels: str | None = setting(
        None,
        metavar="FILE|DIR|SET",
        help="the class names: a text file (one per line), a folder of class subfolders (sorted names), or a "
        "published label set (ssv2, kinetics700, imagenet1k); default: the model's own",
    )
    top_k: int = setting(
        DEFAULT_TOP_K, metavar="K", help="classes per file (per window with --stride), most probable first"
    )
    images: bool = setting(
        False, help="the files are images, read as `evaluate --images` reads them (default for the imagenet-2pt models)"
    )
    views: str | None = setting(
        None,
        metavar="CLIPSxCROPS",
        help="clips over time x crops (1 or 3) per video, logits averaged (default 2x3, as "
        "evaluate; with --stride the crops of each window)",
    )
    stride: float | None = setting(
        None,
        metavar="S",
        help="classify windows every S seconds over each whole video "
        "instead: windows.csv (each window's top classes), per video a plot of the "
        "leading classes over time and an MP4 with the current top 3 written on it",
    )
    sampling_rate: int = setting(DEFAULT_SAMPLING_RATE, metavar="R", help="take every R-th frame at 30 fps")
    batch_size: int = setting(8, metavar="B", help="clips per forward pass")
    num_workers: int = setting(
        2, metavar="W", help="DataLoader processes decoding videos while the model runs (0: none)"
    )
    autorotate: bool = setting(
        True, help="turn videos and images upright as players show them (display matrix, EXIF orientation)"
    )


@dataclass
class ClassTimeline:
    """One video's windows: the `timeline` of class probabilities (`hvm1.eval.Timeline`, values (K, classes)),
    each window's `top` classes, and the plot and annotated video written of it."""

    path: str
    timeline: Timeline
    top: list[list[RankedClass]]
    plot: Path
    video: Path


@dataclass
class ClassifyReport(Report):
    """What `classify` did: beside the files `written` and the inputs `skipped` (each with its reason), the
    `result` (each file's top classes; with a stride, each video's `timelines` instead), the model's `source`,
    the `out_dir`, and `notes` for the user (a video shorter than one window)."""

    result: ClassifyResult = field(default_factory=lambda: ClassifyResult([], ()))
    source: str = ""
    out_dir: Path | None = None
    timelines: list[ClassTimeline] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def classify(config: ClassifyConfig, progress: Progress = SILENT) -> ClassifyReport:
    """`hvm1 classify`: each file's top-k class names with their probabilities, written as CSV and JSON.

    The class names (`config.labels`, else the model's own) are checked against the head before anything is
    decoded; a file that cannot be read is skipped with its reason and the others go on.

    Args:
        config: the files, the model, the names and the settings.
        progress: told of a download, the precision, the clips (or videos) done and what an interruption keeps.

    Returns:
        The `ClassifyReport`.

    Raises:
        LabelsError: no names, or a count that is not the head's (both counts named).
        FileNotFoundError: a path, the checkpoint or the labels do not exist.
        ValueError: no file to classify, or a setting out of range.
    """
    if config.top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {config.top_k}")
    if config.stride is not None:
        check_stride(config.stride)
    source = config.model_source
    if source is None or (config.model is not None and config.checkpoint is not None):
        raise ValueError("classify needs one model: a zoo name (model) or a checkpoint file (checkpoint)")
    overrides = dict(config.overrides)
    zoo_entry = MODELS.get(str(source)) if config.checkpoint is None else None
    if zoo_entry is not None:  # a wrong count fails before the weights are fetched
        if not zoo_entry.num_classes:
            raise LabelsError(f"{zoo_entry.name} has no classification head: classify a finetuned model")
        if config.labels is not None:
            read_labels(config.labels, overrides.get("num_classes", zoo_entry.num_classes))
    images = config.images or preprocessing_for(source).single_image
    if images and config.stride is not None:
        raise ValueError("stride is for windows over videos; these are images (one view each)")
    files = find_inputs(config.paths, images)
    device = resolve_device(config.device)
    loaded = load_for_command(config, model_type="vit", device=device, progress=progress)
    model = loaded.model
    assert isinstance(model, VideoViT)  # model_type='vit'
    names = head_names(model, config.labels)
    plan = view_plan(
        model,
        replace(loaded.preprocessing, autorotate=config.autorotate),
        image_mode=images,
        views=parse_views(config.views) if config.views else None,
        sampling_rate=config.sampling_rate,
        batch_size=config.batch_size,
    )
    precision = precision_for_run(config.precision, device, [model], progress)
    out_dir = output_folder(config.out_dir, "classify")
    if config.stride is not None:
        return _classify_windows(config, model, files, plan, names, out_dir, loaded.source, device, precision, progress)
    progress.keeping("nothing was written (classes.csv and classes.json are written when every file is done)")
    result = classify_files(
        model,
        files,
        plan,
        names,
        top_k=config.top_k,
        num_workers=config.num_workers,
        device=device,
        precision=precision,
        progress=progress,
    )
    result.settings = {
        "model": loaded.source,
        "labels": str(config.labels) if config.labels else "the model's own",
        "dtype": compute_dtype(model, precision),
        **result.settings,
    }
    written = result.write(out_dir)
    return ClassifyReport(
        written=written, skipped=list(result.skipped), result=result, source=loaded.source, out_dir=out_dir
    )


def _classify_windows(
    config: ClassifyConfig,
    model: VideoViT,
    files: list[Path],
    plan: ViewPlan,
    names: tuple[str, ...],
    out_dir: Path,
    source: str,
    device,
    precision,
    progress: Progress,
) -> ClassifyReport:
    from hvm1.viz.surprise import Thumbnails
    from hvm1.viz.timeline import plot_class_timeline, write_class_video

    assert config.stride is not None and isinstance(plan.preset, VideoPreset)  # images were refused
    out_dir.mkdir(parents=True, exist_ok=True)
    progress.keeping(
        f"the plots and annotated videos of the videos done so far are in {out_dir} (windows.csv is written at the end)"
    )
    progress.start(len(files), "video", "classify")
    stems = [path.stem for path in files]
    repeated = {stem for stem in stems if stems.count(stem) > 1}
    timelines, skipped, notes = [], [], []
    for number, path in enumerate(files):
        stem = f"{number:03d}_{path.stem}" if path.stem in repeated else path.stem
        thumbnails = Thumbnails()

        def keep(window: Window, thumbnails: Thumbnails = thumbnails) -> None:
            frames = window.clip.frames
            thumbnails.add(window.start, frames[len(frames) // 2].numpy())

        try:
            timeline = window_probabilities(
                model,
                plan.preset,
                path,
                config.stride,
                batch_size=plan.batch_size,
                device=device,
                precision=precision,
                on_window=keep,
            )
            plot = plot_class_timeline(
                timeline,
                names,
                out_dir / f"{stem}_timeline.png",
                count=min(config.top_k, len(names)),
                thumbnails=thumbnails.chosen(),
                title=f"{path.name}: windows every {config.stride:g} s",
            )
            video = write_class_video(
                path, timeline, names, out_dir / f"{stem}_classes.mp4", autorotate=config.autorotate
            )
        except VideoError as error:
            skipped.append(skipped_for(path, error))
            continue
        if timeline.padded:
            notes.append(
                f"{path}: shorter than one window: one window, its last {timeline.padded} frames "
                f"repeated (as read_clip pads)"
            )
        top = [ranked_classes(torch.from_numpy(row), names, config.top_k) for row in timeline.values]
        timelines.append(ClassTimeline(str(path), timeline, top, plot, video))
        progress.advance(number + 1, path.name)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["path", "window", "start", "end", "rank", "class", "name", "probability"])
    for item in timelines:
        for window, ((start, end), ranked) in enumerate(zip(item.timeline.times, item.top)):
            for entry in ranked:
                writer.writerow(
                    [
                        item.path,
                        window,
                        f"{start:.3f}",
                        f"{end:.3f}",
                        entry.rank,
                        entry.index,
                        entry.name,
                        f"{entry.probability:.6f}",
                    ]
                )
    table = write_text(out_dir / WINDOWS_CSV, rows.getvalue())
    written = [table, *(path for item in timelines for path in (item.plot, item.video))]
    result = ClassifyResult(
        [], names, skipped, {"model": source, "stride": config.stride, "top_k": config.top_k, **plan.settings()}
    )
    return ClassifyReport(
        written=written,
        skipped=skipped,
        result=result,
        source=source,
        out_dir=out_dir,
        timelines=timelines,
        notes=notes,
    )
