"""Pictures for many videos with one loaded model: selection, output names, prefetching, failures.

`complete_videos` and `attention_videos` read each video with the published visualisation preset while the
model works on the previous one (one background decoding thread), draw and write each video's picture (while
the model works on the next one when it runs off the CPU), and report what was written and which videos could
not be read and why; a bad video never stops the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hvm1.data import Skipped, VideoPreset, file_generator, skipped_for, whole_frame_preset
from hvm1.devices import Precision
from hvm1.models import VideoMAE, VideoViT
from hvm1.models.masking import check_mask_ratio
from hvm1.zoo import Preprocessing, preprocessing_for

from .attention import HEAD_MODES, attention_grid, attention_labels, attention_maps
from .completion import (
    Completion,
    complete_clip,
    completion_fps,
    completion_frames,
    completion_grid,
    completion_labels,
    default_mask_ratio,
)
from .grid import ANIMATION_FORMATS, save_jpeg, write_animation

logger = logging.getLogger(__name__)

#: Called after each video with (videos done, videos in all, the video just done).
Progress = Callable[[int, int, Path], None]


@dataclass(frozen=True)
class Written:
    """The files written for one video: the picture first, then its animation if one was asked for."""

    video: Path
    files: tuple[Path, ...]


@dataclass
class RunReport:
    """What a run over many videos did: where it wrote, what it wrote, which videos failed."""

    out_dir: Path
    written: list[Written] = field(default_factory=list)
    failures: list[Skipped] = field(default_factory=list)


def output_stems(videos: Sequence[str | os.PathLike]) -> list[Path]:
    """The relative output stem of each video: its file stem, unique among `videos`.

    Videos in different folders that share a stem get their folder relative to the folder the clashing
    videos have in common (`a/clip`, `b/clip`); videos in one folder that differ only in their suffix keep
    it (`clip.avi`, `clip.mp4`).
    """
    paths = [Path(video) for video in videos]
    by_stem: dict[str, list[int]] = defaultdict(list)
    for index, path in enumerate(paths):
        by_stem[path.stem].append(index)
    stems = [Path(path.stem) for path in paths]
    for stem, indices in by_stem.items():
        if len(indices) == 1:
            continue
        folders = [Path(os.path.abspath(paths[i])).parent for i in indices]  # as named, links not followed
        common = Path(os.path.commonpath(folders))
        for i, folder in zip(indices, folders):
            stems[i] = folder.relative_to(common) / stem
        clashes = Counter(stems[i] for i in indices)
        for i in indices:
            if clashes[stems[i]] > 1:
                stems[i] = stems[i].parent / paths[i].name
    return stems


def complete_videos(
    model: VideoMAE,
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    preprocessing: Preprocessing | None = None,
    mask_type: str = "random",
    mask_ratio: float | None = None,
    seed: int = 0,
    scale_each: bool = False,
    animate: str | None = None,
    precision: Precision | str = "fp32",
    progress: Progress | None = None,
    full_frame: bool = False,
    labels: bool = False,
) -> RunReport:
    """Write a completion picture for each of `videos` to `out_dir/{stem}_{model_name}_{mask_type}.jpg`.

    Each video is read with the published visualisation preset at the size and frame count of
    `preprocessing` (default: the model's own, with the video mean/std; any size the model takes), or with
    `full_frame` the whole frame at its aspect ratio (`hvm1.data.whole_frame_preset`), masked (`mask_ratio` defaults
    to 0.9 for random, 0.5 for temporal and center; random masks are seeded per video by `seed`, see
    `hvm1.data.file_generator`), completed by `model`, and drawn by `completion_grid`. `animate` ('mp4' or 'gif')
    also writes the side-by-side animation with the same name. `labels` names the rows (original, masked,
    completion) and gives each frame's time in the clip (`completion_labels`); without, the published picture. The model runs at `precision` (see
    `hvm1.devices.resolve_precision`; default fp32). Stems come from `output_stems`. Videos
    that cannot be read are reported in the result's `failures`, and the others are still written.
    """
    if not isinstance(model, VideoMAE):
        raise TypeError(f"complete_videos needs a VideoMAE (encoder and decoder), got {type(model).__name__}")
    mask_ratio = default_mask_ratio(mask_type) if mask_ratio is None else mask_ratio
    check_mask_ratio(mask_ratio)
    if animate is not None and animate not in ANIMATION_FORMATS:
        raise ValueError(f"animate must be one of {', '.join(ANIMATION_FORMATS)}, got {animate!r}")
    preset = _preset(model, preprocessing, full_frame)
    fps = completion_fps(model, preset.sampling_rate, preset.target_fps)

    def work(video: Path, clip: torch.Tensor) -> Completion:
        return complete_clip(model, clip, mask_type, mask_ratio, file_generator(seed, video), precision)

    def draw(clip: torch.Tensor, completion: Completion, stem: Path) -> tuple[Path, ...]:
        base = Path(out_dir) / stem.parent / f"{stem.name}_{model_name}_{mask_type}"
        picture = completion_grid(completion, preset.mean, preset.std, scale_each)
        if labels:
            picture = completion_labels(picture, clip.shape[-2:], fps)
        files = [save_jpeg(picture, f"{base}.jpg")]
        if animate:
            frames = completion_frames(completion, preset.mean, preset.std, scale_each)
            files.append(write_animation(frames, f"{base}.{animate}", fps))
        return tuple(files)

    return _run(videos, preset, Path(out_dir), work, draw, progress, _draws_beside(model))


def attention_videos(
    model: VideoViT,
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    preprocessing: Preprocessing | None = None,
    heads: str = "mean",
    precision: Precision | str = "fp32",
    progress: Progress | None = None,
    full_frame: bool = False,
    labels: bool = False,
) -> RunReport:
    """Write an attention picture for each of `videos` to `out_dir/{stem}_{model_name}_attention.jpg`.

    Videos are read as by `complete_videos` (`full_frame` too); each picture is `attention_grid` of the model's last-block
    CLS attention (`heads`: 'mean' for one row averaged over heads, 'each' for a row per head), computed at
    `precision` (default fp32). `labels` names the rows, gives each column's time in the clip and adds the
    colour scale (`attention_labels`). Videos
    that cannot be read are reported in the result's `failures`, and the others are still written.
    """
    if not isinstance(model, VideoViT):
        raise TypeError(f"attention_videos needs a VideoViT, got {type(model).__name__}")
    if heads not in HEAD_MODES:
        raise ValueError(f"heads must be one of {', '.join(HEAD_MODES)}, got {heads!r}")
    preset = _preset(model, preprocessing, full_frame)

    def work(video: Path, clip: torch.Tensor) -> torch.Tensor:
        return attention_maps(model, clip, precision)[0]

    def draw(clip: torch.Tensor, maps: torch.Tensor, stem: Path) -> tuple[Path, ...]:
        picture = attention_grid(clip, maps, preset.mean, preset.std, heads)
        if labels:
            seconds = model.config.t_patch_size * preset.sampling_rate / preset.target_fps
            picture = attention_labels(picture, clip.shape[-2:], seconds, maps.shape[0] if heads == "each" else None)
        return (save_jpeg(picture, Path(out_dir) / stem.parent / f"{stem.name}_{model_name}_attention.jpg"),)

    return _run(videos, preset, Path(out_dir), work, draw, progress, _draws_beside(model))


def _preset(model: VideoViT | VideoMAE, preprocessing: Preprocessing | None, full_frame: bool = False) -> VideoPreset:
    config = model.config
    pre = preprocessing or preprocessing_for(model)
    if pre.img_size % config.patch_size or pre.num_frames % config.t_patch_size:
        raise ValueError(
            f"the preprocessing is for {pre.num_frames} frames of {pre.img_size} px, but the model takes frame "
            f"counts that are multiples of {config.t_patch_size} and sizes that are multiples of {config.patch_size}"
        )
    preset = pre.visualisation()
    return whole_frame_preset(preset, config.patch_size) if full_frame else preset


def _draws_beside(model: torch.nn.Module) -> bool:
    """Whether pictures are drawn on a background thread while `model` works on the next video: only where the
    model runs off the CPU. On the CPU its forward pass already keeps every core busy, and drawing beside it
    slowed the run down (bf16 forwards 2.15 -> 3.05 s for 4 videos on a 2-core Xeon, whole command 4.46 ->
    5.23 s; `benchmarks/bench_complete.py --breakdown`)."""
    return next(model.parameters()).device.type != "cpu"


def _run(
    videos: Sequence[str | os.PathLike],
    preset: VideoPreset,
    out_dir: Path,
    work: Callable[[Path, torch.Tensor], Any],
    draw: Callable[[torch.Tensor, Any, Path], tuple[Path, ...]],
    progress: Progress | None,
    draw_beside: bool = False,
) -> RunReport:
    """`work(video, clip)` (the model) on this thread for each readable video, in order, then `draw(clip, what
    work made, stem)` (the picture and its files): here, or with `draw_beside` on one background thread while
    `work` goes on with the next video. A video counts as done (`report.written`, `progress`) once its files
    are written, in the order of `videos`; an error of `draw` is raised here either way."""
    paths = [Path(video) for video in videos]
    report = RunReport(out_dir)
    stems = output_stems(paths)
    # The video before the current one, with its files being written (None: it could not be read).
    previous: tuple[int, Path, Future[tuple[Path, ...]] | None] | None = None

    def finish(done: int, video: Path, files: Future[tuple[Path, ...]] | None) -> None:
        if files is not None:
            report.written.append(Written(video, files.result()))
        if progress is not None:
            progress(done, len(paths), video)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvm1-draw") if draw_beside else _Here() as drawing:
        for done, (video, stem, (clip, error)) in enumerate(zip(paths, stems, _prefetched(paths, preset)), start=1):
            files = None
            if error is not None:
                report.failures.append(skipped_for(video, error))
            elif clip is not None:
                files = drawing.submit(draw, clip, work(video, clip), stem)
            if previous is not None:
                finish(*previous)
            previous = (done, video, files)
        if previous is not None:
            finish(*previous)
    return report


class _Here(contextlib.AbstractContextManager):
    """An executor that runs what is submitted at once, on the calling thread (its errors raised at once)."""

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        future.set_result(function(*args))
        return future

    def __exit__(self, *exc_info: object) -> None:
        return None


def _prefetched(
    videos: Sequence[Path], preset: VideoPreset
) -> Iterator[tuple[torch.Tensor | None, Exception | None]]:
    """Each video's clip (or what reading it raised) in order, the next one decoding while the caller works."""

    def load(video: Path) -> torch.Tensor:
        clip, padded = preset.load(video)
        if padded:
            logger.info("%s: the last %d frames repeat the last decodable frame", video, padded)
        return clip

    if not videos:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvm1-decode") as pool:
        pending = pool.submit(load, videos[0])
        for index in range(len(videos)):
            current = pending
            if index + 1 < len(videos):
                pending = pool.submit(load, videos[index + 1])
            try:
                yield current.result(), None
            except Exception as error:  # whatever reading one video raises is that video's failure
                yield None, error
