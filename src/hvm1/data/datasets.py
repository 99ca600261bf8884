"""Finding files, and the datasets every command reads them through, which say which files they could not read.

Listing: `find_files`, `list_files`, `labelled_files` (class folders, CSV manifests, flat folders, images),
`select_videos`. Datasets, each with its collate function: `ClipDataset` (a `Sample` per file: finetuning's
validation), `FileViews` (a `ViewItem` per clip of a file: embed and evaluate) and `TrainClips` (a
`TrainSample` of `repeat_aug` clips per file, every random choice seeded by (seed, epoch, index): pretrain
and finetune). A file that cannot be read becomes a `Skipped` marker (or a `ViewItem` with its reason) that
the collate function hands to the main process, DataLoader workers or not. No other file is ever read in
place of a bad one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from hvm1.data.failures import Skipped, skipped_for
from hvm1.data.sampling import sample_generator, select_files
from hvm1.data.transforms import ImagePreset, VideoPreset, random_erasing
from hvm1.data.video import Start, read_clip
from hvm1.labels import class_folder_names

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

PathLike = str | os.PathLike
Preset = VideoPreset | ImagePreset


def find_files(paths: PathLike | Iterable[PathLike], extensions: Sequence[str]) -> list[Path]:
    """The files named by paths: a file is taken as given, a folder is searched recursively (top level
    included) for names ending in one of the extensions (any case), skipping hidden files and folders.

    Args:
        paths: files and folders.
        extensions: the extensions searched for, e.g. `VIDEO_EXTENSIONS`.

    Returns:
        The files: each folder's sorted, in the order of `paths`, each file once.

    Raises:
        FileNotFoundError: a path that does not exist (named).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[Path, None] = {}  # ordered set
    for path in map(Path, paths):
        if path.is_file():
            found[path] = None
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
                if not hidden and _matches(file, extensions):
                    found[file] = None
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return list(found)


def _matches(path: Path, extensions: Sequence[str]) -> bool:
    return path.name.lower().endswith(tuple(extension.lower() for extension in extensions)) and path.is_file()


def find_videos(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """The video files that paths name.

    Args:
        paths: files, or folders searched recursively for `VIDEO_EXTENSIONS`.

    Returns:
        The video files: each folder's sorted, in the order of `paths`, each file once.

    Raises:
        FileNotFoundError: a path that does not exist (named).
    """
    return find_files(paths, VIDEO_EXTENSIONS)


def find_images(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """The image files named by `paths` (files, or folders searched recursively for IMAGE_EXTENSIONS).

    Args:
        paths: files, or folders searched recursively for `IMAGE_EXTENSIONS`.

    Returns:
        The image files: each folder's sorted, in the order of `paths`, each file once.

    Raises:
        FileNotFoundError: a path that does not exist (named).
    """
    return find_files(paths, IMAGE_EXTENSIONS)


@dataclass(frozen=True)
class LabelledFiles:
    """Files with their labels (-1 where none) and, for a folder of class subfolders, the class names."""

    files: list[Path]
    labels: list[int]
    classes: list[str] | None = None


def class_folder_files(root: PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> LabelledFiles:
    """A folder of class subfolders: label = index of the subfolder in sorted order (as the published
    finetuning data were built), files found recursively in each. Raises ValueError for matching files
    directly in `root`, which belong to no class."""
    root = _folder(root)
    classes = class_folder_names(root)
    loose = sorted(file for file in root.iterdir() if not file.name.startswith(".") and _matches(file, extensions))
    if loose:
        raise ValueError(f"{root}: {len(loose)} files belong to no class folder, e.g. {loose[0].name}")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = find_files(root / name, extensions)
        files += found
        labels += [label] * len(found)
    return LabelledFiles(files, labels, classes)


def manifest_files(manifest: PathLike) -> LabelledFiles:
    """A CSV manifest of `path,label` rows (an optional `path,label` header; relative paths are relative
    to the manifest's folder). Raises ValueError naming the line of a malformed row."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no such manifest file")
    files, labels = [], []
    with open(manifest, newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or (line == 1 and [cell.strip().lower() for cell in row] == ["path", "label"]):
                continue
            try:
                path, label = row
                labels.append(int(label))
            except ValueError:
                raise ValueError(f"{manifest}:{line}: expected 'path,label' with an integer label, got {row}") from None
            files.append(manifest.parent / path.strip())
    return LabelledFiles(files, labels)


def labelled_files(data: PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> LabelledFiles:
    """The labelled files of `data`: a CSV manifest of `path,label` rows or a folder of class subfolders.

    Args:
        data: a CSV manifest or a folder of class subfolders (label = sorted subfolder index).
        extensions: the file extensions listed.

    Returns:
        The `LabelledFiles`: paths, labels and class names.

    Raises:
        FileNotFoundError: `data` does not exist.
        ValueError: a folder has files outside any class subfolder, or no file at all.
    """
    data = Path(data)
    if data.is_file():
        listing = manifest_files(data)
    elif data.is_dir():
        listing = class_folder_files(data, extensions)
    else:
        raise FileNotFoundError(f"{data}: neither a folder of class subfolders nor a .csv manifest")
    if not listing.files:
        raise ValueError(f"{data}: no files with the extensions {', '.join(extensions)}")
    return listing


def list_files(paths: PathLike | Sequence[PathLike], extensions: Sequence[str] = VIDEO_EXTENSIONS) -> LabelledFiles:
    """The files `paths` name, labelled where their layout gives labels.

    One CSV manifest (`path,label` rows) gives its labels; one folder whose files all sit in subfolders gives
    each file the index of its subfolder in sorted order (as the published finetuning sets were built);
    anything else (several paths, loose files) is listed with `find_files` and labelled -1.

    Args:
        paths: a CSV manifest, a folder, or files and folders.
        extensions: the file extensions listed.

    Returns:
        The `LabelledFiles`: paths, labels (-1 where none) and class names.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if len(paths) == 1:
        path = Path(paths[0])
        if path.is_file() and path.suffix.lower() == ".csv":
            return labelled_files(path, extensions)
        if path.is_dir() and _is_class_folder(path, extensions):
            return labelled_files(path, extensions)
    files = find_files(paths, extensions)
    return LabelledFiles(files, [-1] * len(files))


def _is_class_folder(folder: Path, extensions: Sequence[str]) -> bool:
    files = find_files(folder, extensions)
    return bool(files) and all(file.parent != folder for file in files)


def select_videos(paths: PathLike | Sequence[PathLike], num_vids: int | None = None, seed: int = 0) -> list[Path]:
    """The video files under `paths` (files, or folders searched recursively, top level included), each
    file once however it is named.

    Args:
        paths: files, or folders searched recursively.
        num_vids: draw that many of them at random (all when there are fewer); None takes all.
        seed: the seed of the draw.

    Returns:
        The videos, in the order they were found.

    Raises:
        FileNotFoundError: a missing path.
        ValueError: no video found.
    """
    if num_vids is not None and num_vids < 1:
        raise ValueError(f"num_vids must be >= 1, got {num_vids}")
    unique: dict[Path, Path] = {}  # the same file named twice (relative and absolute) is read once
    for video in find_videos(paths):
        unique.setdefault(video.resolve(), video)
    videos = list(unique.values())
    if not videos:
        named = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        raise ValueError(f"no video files found in {', '.join(map(str, named))}")
    return select_files(videos, num_vids, seed)


class Sample(NamedTuple):
    """One readable file: `video` (C, T, H, W) float32, or (views, C, T, H, W) with uniform crops; `label`
    (-1 when unlabelled); `path`; `padded`, how many frames fell after the end of the video."""

    video: torch.Tensor
    label: int
    path: str
    padded: int


class Batch(NamedTuple):
    """What `collate` makes of a list of items: the readable samples stacked, and the skipped files.

    `video` (N, ...) and `label` (N,) and `padded` (N,) are None when every file of the batch was skipped.
    """

    video: torch.Tensor | None
    label: torch.Tensor | None
    path: list[str]
    padded: torch.Tensor | None
    skipped: list[Skipped]


def collate(items: Sequence[Sample | Skipped]) -> Batch:
    """Collate function for a DataLoader over a dataset: stacks the samples, passes `Skipped` markers on.

    Args:
        items: the samples, or `Skipped` markers for unreadable files.

    Returns:
        The `Batch`: the stacked samples and the skipped files.
    """
    samples = [item for item in items if isinstance(item, Sample)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    if not samples:
        return Batch(None, None, [], None, skipped)
    return Batch(
        video=torch.stack([sample.video for sample in samples]),
        label=torch.tensor([sample.label for sample in samples], dtype=torch.long),
        path=[sample.path for sample in samples],
        padded=torch.tensor([sample.padded for sample in samples], dtype=torch.long),
        skipped=skipped,
    )


class ClipDataset(Dataset):
    """Files read through a preset into model inputs, with optional labels.

    Item i reads `files[i]` with `preset.load` at `start` (the preset's own start when None): a `Sample`,
    or for an unreadable file a `VideoError` or, with `skip_bad=True`, a `Skipped` marker (for any
    exception reading the file raised, see `hvm1.data.failures`). Use `collate`
    as the DataLoader's collate function. Random starts and crops draw from torch's global generator,
    which a DataLoader seeds differently in each worker. With `preset` None it only lists files and
    labels (reading an item is a ValueError).
    """

    def __init__(
        self,
        files: Sequence[PathLike],
        preset: Preset | None,
        labels: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
        start: Start | None = None,
        skip_bad: bool = False,
    ) -> None:
        if labels is not None and len(labels) != len(files):
            raise ValueError(f"got {len(labels)} labels for {len(files)} files")
        self.files = [Path(file) for file in files]
        self.labels = [-1] * len(self.files) if labels is None else [int(label) for label in labels]
        self.classes = list(classes) if classes is not None else None
        self.preset = preset
        self.start = start
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Sample | Skipped:
        path = self.files[index]
        if self.preset is None:
            raise ValueError(f"this listing of {len(self)} files has no preset to read {path} with")
        try:
            video, padded = self.preset.load(path, self.start)
        except Exception as error:  # with skip_bad, whatever reading one file raises is that file's failure
            if not self.skip_bad:
                raise
            return skipped_for(path, error)
        return Sample(video, self.labels[index], str(path), padded)

    @classmethod
    def from_folder(
        cls,
        root: PathLike,
        preset: Preset,
        extensions: Sequence[str] | None = None,
        start: Start | None = None,
        skip_bad: bool = False,
    ) -> ClipDataset:
        """Every matching file under `root` (recursively, sorted), unlabelled (label -1).

        `extensions` defaults to the images' for an ImagePreset and the videos' otherwise.
        """
        files = find_files(_folder(root), _extensions(preset, extensions))
        return cls(files, preset, start=start, skip_bad=skip_bad)

    @classmethod
    def from_class_folders(
        cls,
        root: PathLike,
        preset: Preset,
        extensions: Sequence[str] | None = None,
        start: Start | None = None,
        skip_bad: bool = False,
    ) -> ClipDataset:
        """A folder of class subfolders (see `class_folder_files`); `extensions` as for `from_folder`."""
        return cls.from_listing(class_folder_files(root, _extensions(preset, extensions)), preset, start, skip_bad)

    @classmethod
    def from_csv(
        cls, manifest: PathLike, preset: Preset, start: Start | None = None, skip_bad: bool = False
    ) -> ClipDataset:
        """A CSV manifest of `path,label` rows (see `manifest_files`)."""
        return cls.from_listing(manifest_files(manifest), preset, start, skip_bad)

    @classmethod
    def from_listing(
        cls, listing: LabelledFiles, preset: Preset, start: Start | None = None, skip_bad: bool = False
    ) -> ClipDataset:
        """The files of a `LabelledFiles` listing with their labels and classes."""
        return cls(
            listing.files, preset, labels=listing.labels, classes=listing.classes, start=start, skip_bad=skip_bad
        )


def _folder(root: PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    return root


def _extensions(preset: Preset | None, extensions: Sequence[str] | None) -> Sequence[str]:
    if extensions is not None:
        return extensions
    return IMAGE_EXTENSIONS if isinstance(preset, ImagePreset) else VIDEO_EXTENSIONS


# ---- the datasets of embedding and evaluation: every view of every file ------------------------------------


class ViewItem(NamedTuple):
    """Clip `clip` of file `file`: its views (crops, C, T, H, W) and the times in seconds of the first and
    last frame it shows; or, when it could not be read, `views` None and the `reason`."""

    file: int
    clip: int
    views: torch.Tensor | None
    times: tuple[float, float]
    reason: str | None


class FileViews(Dataset):
    """Item i is clip `i % num_clips` of file `i // num_clips`, read through `preset`.

    A video preset places `num_clips` clips evenly from the start to the end of the video (one clip: at the
    center); an image preset makes one static clip of an image. An unreadable file gives items with the
    reason instead of views: never another file's views.
    """

    def __init__(self, files: Sequence[PathLike], preset: VideoPreset | ImagePreset, num_clips: int = 1) -> None:
        if num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {num_clips}")
        if isinstance(preset, ImagePreset) and num_clips != 1:
            raise ValueError(f"an image gives one clip, not {num_clips}")
        self.files = [Path(file) for file in files]
        self.preset = preset
        self.num_clips = num_clips

    def __len__(self) -> int:
        return len(self.files) * self.num_clips

    def __getitem__(self, index: int) -> ViewItem:
        file, clip = divmod(index, self.num_clips)
        path = self.files[file]
        try:
            views, times = self._read(path, clip)
        except Exception as error:  # whatever reading one file raises is that file's failure
            return ViewItem(file, clip, None, (0.0, 0.0), skipped_for(path, error).reason)
        return ViewItem(file, clip, views if views.dim() == 5 else views.unsqueeze(0), times, None)

    def _read(self, path: Path, clip_index: int) -> tuple[torch.Tensor, tuple[float, float]]:
        preset = self.preset
        if isinstance(preset, ImagePreset):
            return preset.load(path)[0], (0.0, 0.0)
        start = "center" if self.num_clips == 1 else (clip_index, self.num_clips)
        if not isinstance(preset.short_side, int):
            raise ValueError(f"evaluation views need a fixed short side, not the range {preset.short_side}")
        clip = read_clip(
            path,
            preset.num_frames,
            preset.sampling_rate,
            preset.target_fps,
            start,
            preset.short_side,
            autorotate=preset.autorotate,
        )
        return preset(clip.frames), (clip.times[0].item(), clip.times[-1].item())


class ViewBatch(NamedTuple):
    """Stacked readable clips: `views` (N, crops, C, T, H, W) or None when none was readable, and every item."""

    views: torch.Tensor | None
    items: list[ViewItem]


def collate_views(items: Sequence[ViewItem]) -> ViewBatch:
    """Collate function for `FileViews`: stack the readable clips' views, keep every item's bookkeeping
    (the views themselves are dropped from the items, so only one copy crosses from a worker).

    Args:
        items: each file's views and bookkeeping.

    Returns:
        The `ViewBatch`.
    """
    readable = [item.views for item in items if item.views is not None]
    views = torch.stack(readable) if readable else None
    return ViewBatch(views, [item._replace(views=None) for item in items])


# ---- training samples: every random choice a function of (seed, epoch, sample index) ----------------------


class TrainSample(NamedTuple):
    """One readable file: `video` (repeat_aug, C, T, H, W) float32, `label` (-1 when unlabelled), `noise`
    (repeat_aug, L) MAE mask noise or None, the dataset `index` and the `path`."""

    video: torch.Tensor
    label: int
    noise: torch.Tensor | None
    index: int  # type: ignore[assignment]  # the published name; shadows tuple.index, which nothing here calls
    path: str


class TrainBatch(NamedTuple):
    """A collated micro-batch: the clips of its readable samples (N * repeat_aug, C, T, H, W), their labels
    (N * repeat_aug,) and mask noise, the dataset indices (N,), and the files skipped. The tensors are None
    when every file of the micro-batch was skipped."""

    video: torch.Tensor | None
    label: torch.Tensor | None
    noise: torch.Tensor | None
    index: torch.Tensor | None  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
    skipped: list[Skipped]


def collate_train(items: Sequence[TrainSample | Skipped]) -> TrainBatch:
    """DataLoader collate function for `TrainClips`: flattens the repeats into the batch, passes markers on.

    Args:
        items: the samples, or `Skipped` markers.

    Returns:
        The `TrainBatch`.
    """
    samples = [item for item in items if isinstance(item, TrainSample)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    if not samples:
        return TrainBatch(None, None, None, None, skipped)
    repeats = samples[0].video.shape[0]
    noise = (
        None
        if samples[0].noise is None
        else torch.cat([sample.noise for sample in samples if sample.noise is not None])
    )
    return TrainBatch(
        video=torch.cat([sample.video for sample in samples]),
        label=torch.tensor([sample.label for sample in samples for _ in range(repeats)], dtype=torch.long),
        noise=noise,
        index=torch.tensor([sample.index for sample in samples], dtype=torch.long),
        skipped=skipped,
    )


class TrainClips(Dataset):
    """Files read for training: item `(epoch, index)` is file `index` read `repeat_aug` times through
    `preset.load(path, generator=...)` (any `hvm1.data` preset, or an object with that method); a
    `VideoPreset` reads all of a file's clips with one open (`load_clips`), the same clips.

    `random_erasing`: the probability of erasing a random rectangle of each frame (with noise, as published
    finetuning does); `mask_tokens`: with L > 0, each clip also gets (L,) uniform MAE mask noise. A file that
    cannot be read gives a `Skipped` marker (logged), never another file.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        preset,
        labels: Sequence[int] | None = None,
        repeat_aug: int = 1,
        seed: int = 0,
        random_erasing: float = 0.0,
        mask_tokens: int = 0,
    ) -> None:
        if labels is not None and len(labels) != len(files):
            raise ValueError(f"got {len(labels)} labels for {len(files)} files")
        if repeat_aug < 1:
            raise ValueError(f"repeat_aug must be at least 1, got {repeat_aug}")
        self.files = [Path(file) for file in files]
        self.labels = [-1] * len(self.files) if labels is None else [int(label) for label in labels]
        self.preset = preset
        self.repeat_aug = repeat_aug
        self.seed = seed
        self.random_erasing = random_erasing
        self.mask_tokens = mask_tokens

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> TrainSample | Skipped:
        epoch, index = key
        path = self.files[index]
        clips, noises = [], []
        try:
            generators = [sample_generator(self.seed, epoch, index, repeat) for repeat in range(self.repeat_aug)]
            if isinstance(self.preset, VideoPreset):  # a video: opened once for all its clips
                loaded = self.preset.load_clips(path, generators)
            else:
                loaded = [self.preset.load(path, generator=generator) for generator in generators]
            for (clip, _), generator in zip(loaded, generators):  # clip: (C, T, H, W)
                if self.random_erasing > 0:
                    clip = random_erasing(clip, self.random_erasing, generator)
                clips.append(clip)
                if self.mask_tokens:
                    noises.append(torch.rand(self.mask_tokens, generator=generator))
        except Exception as error:  # whatever reading one file raises is that file's failure
            return skipped_for(path, error)  # the training loop reports it, with the step
        noise = torch.stack(noises) if noises else None
        return TrainSample(torch.stack(clips), self.labels[index], noise, index, str(path))
