"""`hvm1 reproduce`: the published evaluations of one pretraining, run on local copies of the data.

For each data folder given: the finetuned models' validation top-1 on the published validation lists (SSv2
10- and 50-shot, Kinetics-700 10- and 50-shot, ImageNet 2%), and DAVIS-2017 J&F of label propagation with
the ImageNet-2% model; then one table of published, measured and difference.

The published validation lists name `.../val/CLASS/ID.ext, index` per video. A data folder holds the videos
as `DIR/CLASS/ID.ext` or `DIR/val/CLASS/ID.ext`; the list is the folder's own copy of the published list
(`DIR/val.csv`, whose paths are remapped to the folder by their last two parts) or, without one, every file
of its class folders. Each class must be one of the head's (`hvm1.labels`): SSv2 templates, Kinetics-700
names (spaces or underscores), ImageNet WordNet ids. A listed file that is not there is named and skipped,
and the table says how many were measured of how many listed.

Protocol: the published figures are the finetuning runs' validation top-1, one random clip and crop per
video. The measured figure takes one deterministic view (the center clip, center crop; an image is one
view either way), the multi-view figure hvm1's own protocol (2 clips x 3 crops, logits averaged, as
`hvm1 evaluate`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvm1.data import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Skipped, find_files
from hvm1.devices import resolve_device
from hvm1.files import output_folder, write_text
from hvm1.inference import precision_for_run, prepare_for_inference
from hvm1.labels import class_folder_names, imagenet_synsets, label_set
from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import PRECISION_CHOICES, DeviceSettings, DownloadSettings, ModelSettings, OutputSettings, setting
from hvm1.zoo import MODELS, PRETRAININGS, PUBLISHED_DAVIS, load_for_command

from .evaluation import DEFAULT_VIEWS, averaged_logits, view_plan

logger = logging.getLogger(__name__)

TABLE_MARKDOWN = "reproduce.md"
TABLE_CSV = "reproduce.csv"
SKIPPED_CSV = "skipped.csv"
#: The view of the measured figure (one center clip, center crop) and of the multi-view one (evaluate's).
SINGLE_VIEW = (1, 1)
MULTI_VIEW = DEFAULT_VIEWS
PROTOCOL = (
    "Published: validation top-1 of the saved finetuned checkpoints, one random clip and crop per video (the "
    "finetuning runs' validation); DAVIS-2017: J&F-Mean of label propagation with the ImageNet-2% model. "
    f"Measured: one view per video (the center clip, center crop); multi-view: {MULTI_VIEW[0]} clips x "
    f"{MULTI_VIEW[1]} crops, logits averaged (hvm1 evaluate's protocol). An image is one view either way."
)


@dataclass(frozen=True)
class Task:
    """One dataset of the published evaluations: the config field of its folder, the finetunings measured on
    it, the label set of their heads, and whether its files are images."""

    field: str
    title: str
    finetunings: tuple[str, ...]
    labels: str
    images: bool = False


#: Each finetuning's column title in the published table.
TITLES = {
    "ssv2-10shot": "SSv2 10-shot",
    "ssv2-50shot": "SSv2 50-shot",
    "kinetics-10shot": "K700 10-shot",
    "kinetics-50shot": "K700 50-shot",
    "imagenet-2pt": "ImageNet 2%",
}

TASKS = (
    Task("ssv2", "SSv2", ("ssv2-10shot", "ssv2-50shot"), "ssv2"),
    Task("kinetics", "Kinetics-700", ("kinetics-10shot", "kinetics-50shot"), "kinetics700"),
    Task("imagenet", "ImageNet", ("imagenet-2pt",), "imagenet1k", images=True),
)


@dataclass(frozen=True, kw_only=True)
class ReproduceConfig(DownloadSettings, DeviceSettings, OutputSettings):
    """`hvm1 reproduce`: a pretraining, the local data folders (each optional) and how to run."""

    pretraining: str = setting(
        "hvm1", choices=tuple(PRETRAININGS), help="the pretraining whose published figures are reproduced"
    )
    ssv2: Path | None = setting(
        None,
        metavar="DIR",
        help="Something-Something-v2 validation videos: DIR/CLASS/ID.webm "
        "or DIR/val/CLASS/ID.webm (optionally DIR/val.csv, the published list)",
    )
    kinetics: Path | None = setting(
        None,
        metavar="DIR",
        help="Kinetics-700 validation videos: DIR/CLASS/ID.mp4 or "
        "DIR/val/CLASS/ID.mp4 (optionally DIR/val.csv, the published list)",
    )
    imagenet: Path | None = setting(
        None, metavar="DIR", help="ImageNet validation images: DIR/WNID/*.JPEG or DIR/val/WNID/*.JPEG"
    )
    davis: Path | None = setting(
        None, metavar="DIR", help="DAVIS-2017: JPEGImages/480p, Annotations/480p, ImageSets/2017/val.txt"
    )
    multi_view: bool = setting(
        True, help=f"also measure hvm1's multi-view figure ({MULTI_VIEW[0]}x{MULTI_VIEW[1]} views per video)"
    )
    batch_size: int = setting(8, metavar="B", help="clips per forward pass")
    num_workers: int = setting(2, metavar="W", help="DataLoader processes decoding while the model runs")
    precision: str = setting(
        "fp32",
        choices=PRECISION_CHOICES,
        help="fp32 is exactly the published computation; auto: bf16 autocast where the device multiplies bf16 fast",
    )


@dataclass(frozen=True)
class Figure:
    """One row of the table: a `metric` of `model` on `task`, published and measured.

    `measured` is one view per example, `multi_view` hvm1's multi-view protocol (None when not measured or
    not applicable); `count` examples were measured of `listed`.
    """

    task: str
    model: str
    metric: str
    published: float
    measured: float | None
    multi_view: float | None
    count: int
    listed: int

    @property
    def difference(self) -> float | None:
        """Measured minus published (None when nothing was measured)."""
        return None if self.measured is None else self.measured - self.published


@dataclass
class ReproduceReport(Report):
    """What `reproduce` did: beside the files `written` and the examples `skipped` (missing or unreadable, each
    with its reason), the table's `figures` and the `out_dir`."""

    figures: list[Figure] = field(default_factory=list)
    out_dir: Path | None = None


@dataclass(frozen=True)
class ValidationList:
    """A task's validation examples in a data folder: the `files` there with their `labels`, the listed ones
    `missing` there, and how many were `listed`."""

    files: list[Path]
    labels: list[int]
    missing: list[Skipped]
    listed: int


def _plain(name: str) -> str:
    return name.lower().replace("_", " ").strip()


def _class_index(task: Task) -> dict[str, int]:
    """Class folder name -> head index: the label set's names (Kinetics also with underscores), or WordNet ids."""
    if task.labels == "imagenet1k":
        return {wnid: index for index, (wnid, _) in enumerate(imagenet_synsets())}
    return {_plain(name): index for index, name in enumerate(label_set(task.labels))}


def _folder_key(task: Task, folder: str) -> str:
    return folder if task.labels == "imagenet1k" else _plain(folder)


def read_published_list(path: str | os.PathLike) -> list[tuple[str, str, int]]:
    """A published validation list: one `path/CLASS/ID.ext, index` line per example, as (CLASS, ID.ext, index).

    Raises:
        ValueError: a line that is not `path, index` with a path of at least two parts (its number named).
    """
    path = Path(path)
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        location, sep, index = line.rpartition(",")
        parts = Path(location.strip()).parts
        try:
            label = int(index)
        except ValueError:
            label = -1
        if not sep or len(parts) < 2 or label < 0:
            raise ValueError(f"{path}:{number}: expected 'path/CLASS/ID.ext, index', got {line!r}")
        entries.append((parts[-2], parts[-1], label))
    return entries


def validation_list(task: Task, root: str | os.PathLike) -> ValidationList:
    """The validation examples of `task` in data folder `root` (see the module's docstring for the layouts).

    Raises:
        FileNotFoundError: `root` is not a folder.
        ValueError: a class folder or listed class that is not one of the head's, a listed index that is not
            its class's, or a folder that holds none of the examples (each named).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--{task.field} {root}: no such folder")
    classes = _class_index(task)
    folder = root / "val" if (root / "val").is_dir() else root
    listing = root / "val.csv"
    extensions = IMAGE_EXTENSIONS if task.images else VIDEO_EXTENSIONS
    if listing.is_file():
        entries = read_published_list(listing)
        for name, filename, label in entries:
            index = classes.get(_folder_key(task, name))
            if index is None:
                raise ValueError(
                    f"{listing} lists class {name!r} ({filename}), which is not one of the "
                    f"{len(classes)} {task.title} classes"
                )
            if index != label:
                raise ValueError(
                    f"{listing} gives {name!r} index {label}, but the {task.title} head has it at "
                    f"{index}: not the published list of this task"
                )
    else:
        names = class_folder_names(folder)
        unknown = [name for name in names if _folder_key(task, name) not in classes]
        if unknown or not names:
            what = f"class folders {', '.join(map(repr, unknown[:3]))}" + (" ..." if len(unknown) > 3 else "")
            raise ValueError(
                f"--{task.field} {root}: "
                + (
                    f"{what} are not {task.title} classes"
                    if unknown
                    else f"no class folders (expected {folder}/CLASS/FILE, or a published list {listing})"
                )
            )
        entries = [
            (name, str(file.relative_to(folder / name)), classes[_folder_key(task, name)])
            for name in names
            for file in find_files(folder / name, extensions)
        ]
    files, labels, missing = [], [], []
    for name, filename, label in entries:
        found = next(
            (candidate for candidate in (folder / name / filename, root / name / filename) if candidate.is_file()), None
        )
        if found is None:
            missing.append(Skipped(str(folder / name / filename), f"listed, but not in {root}"))
        else:
            files.append(found)
            labels.append(label)
    if not files:
        raise ValueError(
            f"--{task.field} {root} holds none of the {len(entries)} listed {task.title} examples "
            f"(e.g. {folder / entries[0][0] / entries[0][1]})"
            if entries
            else f"--{task.field} {root}: its class folders hold no {'images' if task.images else 'videos'}"
        )
    return ValidationList(files, labels, missing, len(entries))


def top1(
    model: VideoViT,
    examples: ValidationList,
    views: tuple[int, int],
    *,
    images: bool,
    preprocessing,
    batch_size: int,
    num_workers: int,
    device,
    precision,
    progress: Progress = SILENT,
    label: str = "",
) -> tuple[float, int, list[Skipped]]:
    """Top-1 (%) of `model` over `examples` read with `views` as `evaluate` reads them; returns it with the
    count measured and the files that could not be read. `progress` gets a stage of the clips named `label`."""
    plan = view_plan(model, preprocessing, image_mode=images, views=None if images else views, batch_size=batch_size)
    correct = count = 0
    unreadable = []
    for result in averaged_logits(
        model,
        examples.files,
        plan,
        num_workers=num_workers,
        device=device,
        precision=precision,
        progress=progress,
        label=label,
    ):
        if isinstance(result, Skipped):
            unreadable.append(result)
            continue
        index, logits = result
        count += 1
        correct += int(int(logits.argmax()) == examples.labels[index])
    return (100 * correct / count if count else float("nan")), count, unreadable


def reproduce(config: ReproduceConfig, progress: Progress = SILENT) -> ReproduceReport:
    """Run the published evaluations of `config.pretraining` that have data, and write the table.

    Every data folder is checked (layout, classes, list) before any model is loaded or run; a listed example
    that is not there, or cannot be read, is skipped and named, and the rows say how many were measured.

    Args:
        config: the pretraining, the data folders and the run settings.
        progress: told of each download, the precision, each stage's clips ('vit_hvm1_ssv2-10shot 1x1') and what
            an interruption keeps.

    Returns:
        The `ReproduceReport`; its files are `reproduce.md`, `reproduce.csv` (and `skipped.csv` when any
        example was skipped) in the output folder, and the DAVIS masks and tables under `davis/` there.

    Raises:
        ValueError: no data folder given, or one that does not hold its task's data (named).
        FileNotFoundError: a data folder that does not exist.
    """
    if config.pretraining not in PRETRAININGS:
        raise ValueError(
            f"unknown pretraining {config.pretraining!r}; the published ones are {', '.join(PRETRAININGS)}"
        )
    tasks = [(task, getattr(config, task.field)) for task in TASKS if getattr(config, task.field) is not None]
    if not tasks and config.davis is None:
        raise ValueError("no data to reproduce on: give at least one of --ssv2, --kinetics, --imagenet, --davis")
    lists = {task.field: validation_list(task, root) for task, root in tasks}  # every folder checked first
    if config.davis is not None:
        from hvm1.segment.davis import davis_sequence_names

        if not Path(config.davis).is_dir():
            raise FileNotFoundError(f"--davis {config.davis}: no such folder")
        davis_sequence_names(config.davis)  # a folder that is no DAVIS-2017 folder is named now
    out_dir = output_folder(config.out_dir, "reproduce")
    device = resolve_device(config.device)
    precision = precision_for_run(config.precision, device, (), progress)
    progress.keeping("the table is written when every evaluation is done; nothing of it was written")
    figures, skipped = [], []

    for task, _ in tasks:
        examples = lists[task.field]
        skipped += examples.missing
        for finetuning in task.finetunings:
            name = f"vit_{config.pretraining}_{finetuning}"
            entry = MODELS[name]
            loaded = load_for_command(
                ModelSettings(model=name, full_download=config.full_download),
                model_type="vit",
                device=device,
                progress=progress,
            )
            model = loaded.model
            assert isinstance(model, VideoViT)
            prepare_for_inference(model, precision)
            run: dict[str, Any] = {
                "images": task.images,
                "preprocessing": loaded.preprocessing,
                "batch_size": config.batch_size,
                "num_workers": config.num_workers,
                "device": device,
                "precision": precision,
                "progress": progress,
            }
            single, count, unreadable = top1(model, examples, SINGLE_VIEW, label=f"{name} 1x1", **run)
            skipped += unreadable
            multi = None
            if config.multi_view and not task.images:
                multi, _, _ = top1(model, examples, MULTI_VIEW, label=f"{name} multi-view", **run)
            assert entry.top1 is not None  # every finetuned entry has its published figure
            figures.append(
                Figure(
                    TITLES[finetuning],
                    name,
                    "top-1 %",
                    entry.top1,
                    single if count else None,
                    multi,
                    count,
                    examples.listed,
                )
            )
            logger.info("%s: top-1 %.2f%% on %d of %d", name, single, count, examples.listed)
            del model, loaded
    if config.davis is not None:
        figures.append(_davis_figure(config, Path(config.davis), out_dir, device, precision, skipped, progress))
    written = write_tables(figures, out_dir, config.pretraining, skipped)
    return ReproduceReport(written=written, skipped=skipped, figures=figures, out_dir=out_dir)


def _davis_figure(
    config: ReproduceConfig, root: Path, out_dir: Path, device, precision, skipped: list[Skipped], progress: Progress
) -> Figure:
    from hvm1.segment import PropagationConfig, propagate_davis

    name = f"vit_{config.pretraining}_imagenet-2pt"
    model = load_for_command(
        ModelSettings(model=name, full_download=config.full_download),
        model_type="vit",
        device=device,
        progress=progress,
    ).model
    assert isinstance(model, VideoViT)
    prepare_for_inference(model, precision)
    progress.note(f"DAVIS-2017: propagating with {name}")
    report = propagate_davis(model, root, out_dir / "davis", PropagationConfig(), precision=precision)
    skipped += report.skipped
    listed = len(report.masks) + len(report.skipped)
    scored = [score for score in report.scores if score.scored]
    measured = report.summary["J&F-Mean"] if scored else None
    sequences = {score.name.rsplit("_", 1)[0] for score in scored}
    return Figure(
        "DAVIS-2017 J&F",
        name,
        "J&F-Mean",
        PUBLISHED_DAVIS[config.pretraining]["J&F-Mean"],
        measured,
        None,
        len(sequences),
        listed,
    )


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_tables(
    figures: list[Figure], out_dir: str | os.PathLike, pretraining: str, skipped: list[Skipped]
) -> list[Path]:
    """Write the table as `reproduce.md` (with the protocol) and `reproduce.csv`, and `skipped.csv` when any
    example was skipped; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = [
        "task",
        "model",
        "metric",
        "published",
        "measured",
        "difference",
        "multi_view",
        "measured_count",
        "listed",
    ]
    rows = []
    for figure in figures:
        digits = 3 if figure.metric == "J&F-Mean" else 2
        rows.append(
            [
                figure.task,
                figure.model,
                figure.metric,
                _number(figure.published, digits),
                _number(figure.measured, digits),
                _number(figure.difference, digits),
                _number(figure.multi_view, digits),
                str(figure.count),
                str(figure.listed),
            ]
        )
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerows([header, *rows])
    titles = [
        "task",
        "model",
        "metric",
        "published",
        "measured (1 view)",
        "difference",
        f"multi-view ({MULTI_VIEW[0]}x{MULTI_VIEW[1]})",
        "measured",
        "listed",
    ]
    markdown = [
        f"# hvm1 reproduce: {pretraining}",
        "",
        PROTOCOL,
        "",
        "| " + " | ".join(titles) + " |",
        "|" + " --- |" * len(titles),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    if skipped:
        markdown += [
            "",
            f"{len(skipped)} example{'s were' if len(skipped) != 1 else ' was'} skipped (missing or "
            f"unreadable): see {SKIPPED_CSV}.",
        ]
    written = [
        write_text(out_dir / TABLE_MARKDOWN, "\n".join(markdown) + "\n"),
        write_text(out_dir / TABLE_CSV, table.getvalue()),
    ]
    if skipped:
        lines = io.StringIO()
        writer = csv.writer(lines, lineterminator="\n")
        writer.writerows([["path", "reason"], *([item.path, item.reason] for item in skipped)])
        written.append(write_text(out_dir / SKIPPED_CSV, lines.getvalue()))
    return written
