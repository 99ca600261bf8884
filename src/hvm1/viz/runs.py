"""Pictures for many videos with one loaded model: selection, output names, prefetching, skipped videos.

`complete_videos` and `attention_videos` read each video with the published visualisation preset while the
model works on the previous one (one background decoding thread), draw and write each video's picture (while
the model works on the next one when it runs off the CPU), and report what was written and which videos could
not be read and why; a bad video never stops the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from hvm1.data import Skipped, VideoPreset, file_generator, select_videos, skipped_for, whole_frame_preset
from hvm1.devices import Precision, resolve_device
from hvm1.files import output_folder
from hvm1.inference import precision_for_run
from hvm1.models import VideoMAE, VideoViT
from hvm1.models.masking import MASK_TYPES, check_mask_ratio
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DeviceSettings, ModelSettings, OutputSettings, SizeSettings, VideoSelection, setting
from hvm1.zoo import Preprocessing, load_for_command, preprocessing_for, sized_preprocessing

from .attention import HEAD_MODES, attention_grid, attention_labels, attention_maps
from .completion import (
    DEFAULT_MASK_RATIOS,
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


@dataclass(frozen=True)
class Written:
    """The files written for one video: the picture first, then its animation if one was asked for."""

    video: Path
    files: tuple[Path, ...]


@dataclass
class RunReport(Report):
    """What a run over many videos did.

    Attributes:
        out_dir: Where it wrote.
        videos: How many videos it was given.
        pictures: What was written for each video that could be read, in order (`written` lists the files).
    """

    out_dir: Path | None = None
    videos: int = 0
    pictures: list[Written] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class VideoRunConfig(ModelSettings, DeviceSettings, OutputSettings, VideoSelection, SizeSettings):
    """What `hvm1 complete`, `attention` and `pca` share: the videos, the model, where the pictures go."""

    paths: tuple[Path, ...] = setting(
        (),
        positional=True,
        metavar="PATH",
        help="video files or folders (searched recursively); none: a synthetic sample clip",
    )
    video_dirs: tuple[Path, ...] = setting(
        (),
        option="--video-dir",
        aliases=("--video_dir",),
        repeat=True,
        metavar="DIR",
        help="a folder of videos, like a PATH (the published spelling); repeatable",
    )
    model: str | None = setting(
        None,
        metavar="NAME",
        aliases=("--model_name",),
        help="a zoo model name (see `hvm1 list`); its weights are fetched once",
    )
    labels: bool = setting(
        True,
        help="label the picture (row names, each frame's time, the colour scale); off: "
        "the published picture, the tiles alone",
    )


@dataclass(frozen=True, kw_only=True)
class CompleteConfig(VideoRunConfig):
    """`hvm1 complete`: mask each video and let an MAE complete it, one picture per video."""

    mask_type: str = setting(
        "random",
        choices=MASK_TYPES,
        help="which tokens to remove: random (anywhere); temporal (the final frames, all of "
        "each); center (the middle frames in time, all of each: not a spatial box)",
    )
    mask_ratio: float | None = setting(
        None,
        metavar="R",
        help="the fraction of tokens removed (default "
        + ", ".join(f"{ratio} for {kind}" for kind, ratio in DEFAULT_MASK_RATIOS.items())
        + ")",
    )
    scale_each: bool = setting(
        False, help="stretch each frame from its own min to max (the published look) instead of true colours"
    )
    animate: str | None = setting(
        None,
        choices=ANIMATION_FORMATS,
        help="also write original | masked | completion side by side over time, beside the picture",
    )


@dataclass(frozen=True, kw_only=True)
class AttentionConfig(VideoRunConfig):
    """`hvm1 attention`: a ViT's last-block CLS attention over the frames, one picture per video."""

    heads: str = setting("mean", choices=HEAD_MODES, help="one row averaged over heads (mean), or a row per head")


def drawn_videos(
    paths: Sequence[str | os.PathLike], num_vids: int | None, seed: int, progress: Progress = SILENT
) -> list[Path]:
    """`hvm1.data.select_videos` for a command, saying through `progress` when `num_vids` asks for more videos
    than were found (all of them are used).

    Raises:
        FileNotFoundError: A named path does not exist.
        ValueError: No video is found.
    """
    videos = select_videos(paths, num_vids, seed)
    if num_vids is not None and num_vids > len(videos):
        progress.note(f"num_vids {num_vids} asks for more videos than the {len(videos)} found: using all {len(videos)}")
    return videos


@contextlib.contextmanager
def videos_for(config: VideoRunConfig, progress: Progress = SILENT) -> Iterator[list[Path]]:
    """The videos a run's config names (a seeded draw of `num_vids` of them), or with none named a synthetic
    sample clip made in a temporary folder for the length of the `with` block.

    Raises:
        FileNotFoundError: A named path does not exist.
        ValueError: No video is found.
    """
    paths = [*config.paths, *config.video_dirs]
    if paths:
        yield drawn_videos(paths, config.num_vids, config.seed, progress)
        return
    from .sample import SAMPLE_NAME, make_sample_clip

    progress.note("no videos named: using a synthetic sample clip of moving shapes")
    with tempfile.TemporaryDirectory(prefix="hvm1-sample-") as scratch:
        yield [make_sample_clip(Path(scratch) / SAMPLE_NAME)]


@dataclass(frozen=True)
class PreparedRun:
    """What a picture command has ready before its first video: the model loaded and prepared for its
    precision, the preprocessing at the size asked for, the videos, and the output folder."""

    model: torch.nn.Module
    name: str
    preprocessing: Preprocessing
    precision: Precision
    videos: list[Path]
    out_dir: Path


@contextlib.contextmanager
def prepared_run(
    config: VideoRunConfig, model_type: str, command: str, progress: Progress = SILENT
) -> Iterator[PreparedRun]:
    """Load the model the config names (`load_for_command`), its preprocessing at the size asked for, its
    precision (`precision_for_run`), the videos (`videos_for`) and the output folder, for the `with` block.

    Args:
        config: The command's settings.
        model_type: 'mae' or 'vit'.
        command: The command's name (for a new output folder's).
        progress: Told of downloads, the precision and what an interruption keeps.
    """
    loaded = load_for_command(config, model_type=model_type, device=resolve_device(config.device), progress=progress)
    # any size: the position embeddings are interpolated
    preprocessing = sized_preprocessing(config, loaded.preprocessing, loaded.model)
    with videos_for(config, progress) as videos:
        # One clip per video, or a whole frame of windows; a single call is not worth packing the weights for.
        calls = None if config.full_frame else len(videos)
        precision = precision_for_run(config.precision, _device_of(loaded.model), [loaded.model], progress, calls)
        out_dir = output_folder(config.out_dir, command)
        progress.keeping(f"the pictures written so far are in {out_dir}")
        yield PreparedRun(loaded.model, loaded.stem, preprocessing, precision, videos, out_dir)


def complete(config: CompleteConfig, progress: Progress = SILENT) -> RunReport:
    """`hvm1 complete`: load the MAE the config names and `complete_videos` on its videos.

    Args:
        config: The command's settings.
        progress: Told of downloads, the precision, and each video done.

    Returns:
        The pictures written and the videos skipped.
    """
    with prepared_run(config, "mae", "complete", progress) as run:
        return complete_videos(
            cast(VideoMAE, run.model),
            run.videos,
            run.out_dir,
            model_name=run.name,
            preprocessing=run.preprocessing,
            mask_type=config.mask_type,
            mask_ratio=config.mask_ratio,
            seed=config.seed,
            scale_each=config.scale_each,
            animate=config.animate,
            labels=config.labels,
            precision=run.precision,
            progress=progress,
            full_frame=config.full_frame,
        )


def attention(config: AttentionConfig, progress: Progress = SILENT) -> RunReport:
    """`hvm1 attention`: load the ViT the config names and `attention_videos` on its videos.

    Args:
        config: The command's settings.
        progress: Told of downloads, the precision, and each video done.

    Returns:
        The pictures written and the videos skipped.
    """
    with prepared_run(config, "vit", "attention", progress) as run:
        return attention_videos(
            cast(VideoViT, run.model),
            run.videos,
            run.out_dir,
            model_name=run.name,
            preprocessing=run.preprocessing,
            heads=config.heads,
            labels=config.labels,
            precision=run.precision,
            progress=progress,
            full_frame=config.full_frame,
        )


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def output_stems(videos: Sequence[str | os.PathLike]) -> list[Path]:
    """The relative output stem of each video: its file stem, unique among `videos`.

    Videos in different folders that share a stem get their folder relative to the folder the clashing
    videos have in common (`a/clip`, `b/clip`); videos in one folder that differ only in their suffix keep
    it (`clip.avi`, `clip.mp4`).

    Args:
        videos: the video files.

    Returns:
        One relative stem per video, in their order.
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
    progress: Progress = SILENT,
    full_frame: bool = False,
    labels: bool = False,
    draw_beside: bool | None = None,
) -> RunReport:
    """Write a completion picture for each of `videos` to `out_dir/{stem}_{model_name}_{mask_type}.jpg`.

    Each video is read with the published visualisation preset at the size and frame count of
    `preprocessing` (default: the model's own, with the video mean/std; any size the model takes), or with
    `full_frame` the whole frame at its aspect ratio (`hvm1.data.whole_frame_preset`), masked (`mask_ratio` defaults
    to 0.9 for random, 0.5 for temporal and center; random masks are seeded per video by `seed`, see
    `hvm1.data.file_generator`), completed by `model`, and drawn by `completion_grid`. `animate` ('mp4' or 'gif')
    also writes the side-by-side animation with the same name. `labels` names the rows (original, masked,
    completion) and gives each frame's time in the clip (`completion_labels`); without, the published picture. The model
    runs at `precision` (see
    `hvm1.devices.resolve_precision`; default fp32). Stems come from `output_stems`. Videos
    that cannot be read are reported in the result's `skipped`, and the others are still written.

    Args:
        model: the MAE.
        videos: the video files.
        out_dir: the folder the pictures go to.
        model_name: the model's name in the file names.
        preprocessing: sizes, frames and mean/std (default: the model's own, with the video mean/std).
        mask_type: 'random', 'temporal' or 'center'.
        mask_ratio: the fraction of tokens removed (default by mask type).
        seed: seeds each video's random mask (with its file name).
        scale_each: stretch each tile from its own min to max (the published look).
        animate: 'mp4' or 'gif' also writes the side-by-side animation.
        precision: the precision the model runs at.
        progress: reports each video done.
        full_frame: read whole frames at their aspect ratio instead of a square crop.
        labels: name the rows and give each frame's time.
        draw_beside: draw each picture on a background thread while the model works on the next video (None:
            only where the model runs off the CPU: on the CPU its forward pass keeps every core busy). The files
            are the same either way.

    Returns:
        The `RunReport`: the files written and the videos skipped.
    """
    if not isinstance(model, VideoMAE):
        raise TypeError(f"complete_videos needs a VideoMAE (encoder and decoder), got {type(model).__name__}")
    mask_ratio = default_mask_ratio(mask_type) if mask_ratio is None else mask_ratio
    check_mask_ratio(mask_ratio)
    if animate is not None and animate not in ANIMATION_FORMATS:
        raise ValueError(f"animate must be one of {', '.join(ANIMATION_FORMATS)}, got {animate!r}")
    preset = picture_preset(model, preprocessing, full_frame)
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

    return _run(videos, preset, Path(out_dir), work, draw, progress, _draws_beside(model, draw_beside))


def attention_videos(
    model: VideoViT,
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    preprocessing: Preprocessing | None = None,
    heads: str = "mean",
    precision: Precision | str = "fp32",
    progress: Progress = SILENT,
    full_frame: bool = False,
    labels: bool = False,
    draw_beside: bool | None = None,
) -> RunReport:
    """Write an attention picture for each of `videos` to `out_dir/{stem}_{model_name}_attention.jpg`.

    Videos are read as by `complete_videos` (`full_frame` too); each picture is `attention_grid` of the model's
    last-block
    CLS attention (`heads`: 'mean' for one row averaged over heads, 'each' for a row per head), computed at
    `precision` (default fp32). `labels` names the rows, gives each column's time in the clip and adds the
    colour scale (`attention_labels`). Videos
    that cannot be read are reported in the result's `skipped`, and the others are still written.

    Args:
        model: the ViT.
        videos: the video files.
        out_dir: the folder the pictures go to.
        model_name: the model's name in the file names.
        preprocessing: sizes, frames and mean/std (default: the model's own, with the video mean/std).
        heads: 'mean' for one row averaged over heads, 'each' for a row per head.
        precision: the precision the model runs at.
        progress: reports each video done.
        full_frame: read whole frames at their aspect ratio instead of a square crop.
        labels: name the rows, give each column's time and add the colour scale.
        draw_beside: draw each picture on a background thread while the model works on the next video (None:
            only where the model runs off the CPU: on the CPU its forward pass keeps every core busy). The files
            are the same either way.

    Returns:
        The `RunReport`: the files written and the videos skipped.
    """
    if not isinstance(model, VideoViT):
        raise TypeError(f"attention_videos needs a VideoViT, got {type(model).__name__}")
    if heads not in HEAD_MODES:
        raise ValueError(f"heads must be one of {', '.join(HEAD_MODES)}, got {heads!r}")
    preset = picture_preset(model, preprocessing, full_frame)

    def work(video: Path, clip: torch.Tensor) -> torch.Tensor:
        return attention_maps(model, clip, precision)[0]

    def draw(clip: torch.Tensor, maps: torch.Tensor, stem: Path) -> tuple[Path, ...]:
        picture = attention_grid(clip, maps, preset.mean, preset.std, heads)
        if labels:
            seconds = model.config.t_patch_size * preset.sampling_rate / preset.target_fps
            picture = attention_labels(picture, clip.shape[-2:], seconds, maps.shape[0] if heads == "each" else None)
        return (save_jpeg(picture, Path(out_dir) / stem.parent / f"{stem.name}_{model_name}_attention.jpg"),)

    return _run(videos, preset, Path(out_dir), work, draw, progress, _draws_beside(model, draw_beside))


def picture_preset(
    model: VideoViT | VideoMAE, preprocessing: Preprocessing | None, full_frame: bool = False
) -> VideoPreset:
    """How the picture commands read a clip for `model`: the published visualisation preset at the size and
    frames of `preprocessing` (default: the model's own), or with `full_frame` the whole frame at its aspect.

    Raises:
        ValueError: A size or frame count the model can't divide into tokens.
    """
    config = model.config
    pre = preprocessing or preprocessing_for(model)
    if pre.img_size % config.patch_size or pre.num_frames % config.t_patch_size:
        raise ValueError(
            f"the preprocessing is for {pre.num_frames} frames of {pre.img_size} px, but the model takes frame "
            f"counts that are multiples of {config.t_patch_size} and sizes that are multiples of {config.patch_size}"
        )
    preset = pre.visualisation()
    return whole_frame_preset(preset, config.patch_size) if full_frame else preset


def _draws_beside(model: torch.nn.Module, asked: bool | None) -> bool:
    """Whether pictures are drawn on a background thread while `model` works on the next video: as `asked`, else
    only where the model runs off the CPU. On the CPU its forward pass already keeps every core busy, and drawing
    beside it slowed the run down (`benchmarks/bench_complete.py --breakdown` shows each step's time)."""
    return asked if asked is not None else next(model.parameters()).device.type != "cpu"


def each_video(
    videos: Sequence[str | os.PathLike],
    preset: VideoPreset,
    skipped: list[Skipped],
    progress: Progress = SILENT,
) -> Iterator[tuple[Path, Path, torch.Tensor]]:
    """The one per-video loop of the commands that work on many videos (complete, attention, pca, score).

    Yields each readable video with its output stem (`output_stems`) and its clip read with `preset`, the next
    video decoding on a background thread while the caller works on this one. A video whose reading raises
    anything is appended to `skipped` with the reason (`hvm1.data.skipped_for`) and not yielded. `progress`
    gets a stage of `len(videos)` videos, advanced as the caller asks for the next one.
    """
    paths = [Path(video) for video in videos]
    progress.start(len(paths), "video")
    for done, (video, stem, (clip, error)) in enumerate(
        zip(paths, output_stems(paths), prefetched_clips(paths, preset)), start=1
    ):
        if error is not None:
            skipped.append(skipped_for(video, error))
        elif clip is not None:
            yield video, stem, clip
        progress.advance(done, video.name)
    progress.close()


def _run(
    videos: Sequence[str | os.PathLike],
    preset: VideoPreset,
    out_dir: Path,
    work: Callable[[Path, torch.Tensor], Any],
    draw: Callable[[torch.Tensor, Any, Path], tuple[Path, ...]],
    progress: Progress,
    draw_beside: bool = False,
) -> RunReport:
    """`work(video, clip)` (the model) on this thread for each readable video (`each_video`), in order, then
    `draw(clip, what work made, stem)` (the picture and its files): here, or with `draw_beside` on one
    background thread while `work` goes on with the next video. The report lists the files in the order of
    `videos`; an error of `draw` is raised here either way."""
    report = RunReport(out_dir=out_dir, videos=len(videos))
    drawn: list[tuple[Path, Future[tuple[Path, ...]]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvm1-draw") if draw_beside else _Here() as drawing:
        for video, stem, clip in each_video(videos, preset, report.skipped, progress):
            drawn.append((video, drawing.submit(draw, clip, work(video, clip), stem)))
    for video, files in drawn:
        report.pictures.append(Written(video, files.result()))
        report.written.extend(report.pictures[-1].files)
    return report


class _Here(contextlib.AbstractContextManager):
    """An executor that runs what is submitted at once, on the calling thread (its errors raised at once)."""

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        future.set_result(function(*args))
        return future

    def __exit__(self, *exc_info: object) -> None:
        return None


def prefetched_clips(
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
