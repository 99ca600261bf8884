"""Embeddings of videos: `embed_videos`, one row per video, written in resumable chunks, sharded under torchrun.

A video is read as `num_clips` clips evenly spaced in time (one clip: at the center), each the model's
frames at its size and normalisation, center-cropped after resizing the short side to img_size * 256 / 224;
each clip's final-normed tokens are pooled (`cls`: the CLS token, what `VideoViT` without a head returns;
`mean`: the mean of the patch tokens; `tokens`: all of them, stored in float16) and the clips averaged.

With a `stride`, each video is instead read as windows every `stride` seconds over its whole length (see
`hvm1.data.read_windows`: decoded once, streamed), each window embedded alone as one clip, and stored as one row
per window (its start and end time in `clip_times`; `embedding_timelines` gives each video's (K, D) array).

With an output file the work is resumable: rows are written as they come in atomic chunk files in a
`OUT.parts` folder beside it, a rerun skips every video already in OUT or in a chunk, and the end of the
run merges everything into OUT (rows already there first) and removes the chunks. Under `torchrun` each
process embeds every `world_size`-th remaining video and rank 0 merges; the folder must be shared by all.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hvm1.data import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FileViews,
    ImagePreset,
    LabelledFiles,
    Skipped,
    VideoPreset,
    check_stride,
    list_files,
    read_or_skip,
    whole_frame_preset,
)
from hvm1.devices import Precision, resolve_precision
from hvm1.distributed import EMBEDDING_TIMEOUT, DistributedContext, all_gather_objects, barrier, process_group
from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.zoo import Preprocessing, preprocessing_for

from .store import (
    Embeddings,
    PathLike,
    check_compatible,
    check_suffix,
    load_embeddings,
    require_pyarrow,
    save_embeddings,
)
from .timelines import window_outputs
from .views import FileOutput, run_views

logger = logging.getLogger(__name__)

POOLS = ("cls", "mean", "tokens")
#: Published finetuning and testing read every 8th frame at 30 fps.
DEFAULT_SAMPLING_RATE = 8


def pool_tokens(features: torch.Tensor, pool: str) -> torch.Tensor:
    """Pool `forward_features` output (N, 1 + L, C): `cls` -> (N, C) CLS token, `mean` -> (N, C) mean of
    the patch tokens, `tokens` -> (N, 1 + L, C) unchanged.

    Args:
        features: `forward_features` output (N, 1 + L, C).
        pool: 'cls', 'mean' or 'tokens'.

    Returns:
        The pooled features.

    Raises:
        ValueError: an unknown `pool`.
    """
    if pool == "cls":
        return features[:, 0]
    if pool == "mean":
        return features[:, 1:].mean(dim=1)
    if pool == "tokens":
        return features
    raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")


def embedding_preset(preprocessing: Preprocessing, sampling_rate: int = DEFAULT_SAMPLING_RATE) -> VideoPreset:
    """How `embed_videos` reads a clip for a model: `preprocessing.evaluation()`, one center crop.

    Args:
        preprocessing: the model's preprocessing.
        sampling_rate: take every `sampling_rate`-th frame at 30 fps.

    Returns:
        The preset.
    """
    return preprocessing.evaluation(sampling_rate=sampling_rate)


@dataclass
class EmbedResult:
    """What `embed_videos` did: `embeddings` (every row: with an output file, all that it now holds; None on
    ranks other than 0, or when no video could be read), how many videos this call `embedded` and how many of
    those asked for were already done (`reused`), the files it `skipped` as unreadable (all ranks'), the output
    file, and with a stride the videos shorter than one window (`padded`: path and the frames padded in its one
    window)."""

    embeddings: Embeddings | None
    embedded: int
    reused: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    out: Path | None = None
    padded: list[tuple[str, int]] = field(default_factory=list)


def embed_videos(
    model: torch.nn.Module,
    paths: PathLike | Sequence[PathLike] | LabelledFiles,
    out: PathLike | None = None,
    *,
    preprocessing: Preprocessing | None = None,
    model_name: str | None = None,
    pool: str = "cls",
    num_clips: int = 1,
    keep_clips: bool = False,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    batch_size: int = 8,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    chunk_size: int = 64,
    precision: Precision | str = "fp32",
    layer: int | None = None,
    progress: Progress = SILENT,
    full_frame: bool = False,
    images: bool = False,
    stride: float | None = None,
) -> EmbedResult:
    """Embed every video `paths` name (files, folders searched recursively, a CSV manifest, or a folder of
    class subfolders, which labels the videos; see `list_files`) with a `VideoViT`.

    Clip length, size and normalisation follow `preprocessing` (default: the model's config with the video
    mean/std; pass the zoo entry's for a named model). `num_clips` clips per video are averaged (kept per clip
    with `keep_clips`); `batch_size` clips go through the model at once; clips are decoded in `num_workers`
    DataLoader workers; the model runs at `precision` (see `hvm1.devices.resolve_precision`; default fp32,
    recorded in the file's settings as `dtype`). `layer` pools the tokens of that block (0-based, negative from
    the end) with the final norm applied, instead of the final output. `full_frame` reads whole frames at their
    aspect ratio instead of a square center crop (see `hvm1.data.whole_frame_preset`), one clip per forward
    since videos of other shapes cannot share a batch. `images` embeds images instead (the image extensions
    are listed; each image is one static clip read as `evaluate` reads images, `preprocessing.image_evaluation()`;
    one clip each). `stride` (seconds) embeds windows every `stride` seconds over each whole video instead, one
    row per window (see the module's description; `num_workers` is unused: a video's windows come from one
    decoder in this process). Unreadable videos are logged and listed in `skipped`, never replaced.

    With `out` (`.npz` or `.parquet`) rows are saved every `chunk_size` videos (and when interrupted) and a
    rerun with the same `out` continues where the last one stopped; under `torchrun` (WORLD_SIZE > 1) the
    processes share the work and rank 0 writes `out`.

    Args:
        model: the ViT.
        paths: files, folders, a CSV manifest or a folder of class subfolders, or a listing.
        out: the `.npz` or `.parquet` file to write (resumable), or None to keep the rows in memory.
        preprocessing: frames, size and mean/std (default: the model's config with the video mean/std).
        model_name: the model's name, recorded in the file's settings.
        pool: 'cls', 'mean' or 'tokens'.
        num_clips: clips per video, evenly spaced, averaged.
        keep_clips: also keep each clip's row.
        sampling_rate: take every `sampling_rate`-th frame at 30 fps.
        batch_size: clips per forward.
        num_workers: DataLoader workers decoding clips.
        device: where the model runs (default: where its weights are).
        chunk_size: videos per saved chunk of a resumable file.
        precision: the precision the model runs at.
        layer: pool this block's tokens (final norm applied) instead of the final output.
        progress: gets a stage ('embed') of the clips, advanced after each batch (with a stride: of the videos,
            advanced after each).
        full_frame: read whole frames at their aspect ratio, one clip per forward.
        images: embed images instead of videos.
        stride: embed windows every `stride` seconds over each whole video, one row per window.

    Returns:
        The `EmbedResult`: the embeddings, how many videos were embedded or reused, the ones skipped.

    Raises:
        ValueError: `out` was made with other settings, the model is not a ViT, an unknown `pool`, or a
            stride of 0 or below or one asked with images, several clips or kept clips.
    """
    if not isinstance(model, VideoViT):
        raise ValueError(
            f"embeddings come from a VideoViT, got a {type(model).__name__} (load an MAE with model_type='vit')"
        )
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if images and (num_clips != 1 or full_frame):
        raise ValueError("an image is one clip: images take neither num_clips > 1 nor full_frame")
    if stride is not None:
        stride = check_stride(stride)
        if images or num_clips != 1 or keep_clips:
            raise ValueError("a stride makes windows over whole videos: it takes no images, num_clips or keep_clips")
    listing = (
        paths
        if isinstance(paths, LabelledFiles)
        else list_files(paths, IMAGE_EXTENSIONS if images else VIDEO_EXTENSIONS)
    )
    preprocessing = preprocessing or preprocessing_for(model)
    preset: VideoPreset | ImagePreset = (
        preprocessing.image_evaluation() if images else embedding_preset(preprocessing, sampling_rate)
    )
    if full_frame and isinstance(preset, VideoPreset):
        preset = whole_frame_preset(preset, model.config.patch_size)
        batch_size = 1
    if layer is not None:
        model.block_indices([layer])  # a ValueError naming the blocks before any work
    with process_group(device or next(model.parameters()).device, EMBEDDING_TIMEOUT) as context:
        rank, world_size, device = context.rank, context.world_size, context.device
        precision = resolve_precision(precision, device)
        settings = _settings(
            model_name, compute_dtype(model, precision), pool, num_clips, keep_clips, preset, listing.classes, layer
        )
        if full_frame:  # recorded only when set, so files made before this option still resume
            settings["crop"] = "full"
        if images:  # likewise
            settings["images"] = True
        if stride is not None:  # likewise
            settings["stride"] = stride
        forward = _pooling_forward(model, pool, layer, device, precision)
        if out is None:
            if world_size > 1:
                raise ValueError("embedding under torchrun needs an output file to merge the processes' rows into")
            rows = _ChunkWriter(None, listing, settings, keep_clips)
            indices: Sequence[int] = range(len(listing.files))
            skipped, padded = _embed_shard(
                forward, listing, indices, preset, num_clips, rows, batch_size, num_workers, device, progress, stride
            )
            return EmbedResult(rows.all_rows(), rows.count, skipped=skipped, padded=padded)
        out = check_suffix(out)
        if out.suffix == ".parquet":
            require_pyarrow()  # before the work, not when writing its result
        parts = _parts_folder(out)
        stored = _stored_rows(out, parts, settings)
        done = set(stored.paths) if stored is not None else set()
        todo = [index for index, file in enumerate(listing.files) if str(file) not in done]
        first_chunk = 1 + max((int(part.stem.split("-")[1]) for part in parts.glob("part-*.npz")), default=0)
        barrier(context)  # every rank has listed the chunks before any writes one
        rows = _ChunkWriter(parts, listing, settings, keep_clips, rank, first_chunk, chunk_size)
        indices = todo[rank::world_size]
        skipped, padded = _embed_shard(
            forward, listing, indices, preset, num_clips, rows, batch_size, num_workers, device, progress, stride
        )
        embedded, skipped, padded = _gather(rows.count, skipped, padded, context)
        barrier(context)  # every chunk is written
        merged = _merge(out, parts, listing) if rank == 0 else None
        return EmbedResult(
            merged, embedded, reused=len(listing.files) - len(todo), skipped=skipped, out=out, padded=padded
        )


def model_dtype(model: torch.nn.Module) -> str:
    """The dtype of the model's weights by name: 'float32', 'bfloat16', ..."""
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def compute_dtype(model: torch.nn.Module, precision: Precision) -> str:
    """What the model computes in, as results record it: its weights' dtype ('float32', ...) under fp32, else
    the autocast precision ('bf16 autocast', ...)."""
    return model_dtype(model) if precision.is_float32 else precision.describe()


def _settings(
    model_name: str | None,
    dtype: str,
    pool: str,
    num_clips: int,
    keep_clips: bool,
    preset: VideoPreset | ImagePreset,
    classes: list[str] | None,
    layer: int | None = None,
) -> dict[str, Any]:
    reading: dict[str, Any]
    if isinstance(preset, VideoPreset):
        reading = {
            "sampling_rate": preset.sampling_rate,
            "target_fps": preset.target_fps,
            "short_side": preset.short_side,
        }
    else:  # an image has no frame rate
        reading = {"sampling_rate": None, "target_fps": None, "short_side": preset.resize_to}
    settings = {
        "model": model_name,
        "dtype": dtype,
        "pool": pool,
        "num_clips": num_clips,
        "keep_clips": keep_clips,
        "img_size": preset.img_size,
        "num_frames": preset.num_frames,
        **reading,
        "mean": preset.mean,
        "std": preset.std,
        "classes": classes,
        **({"layer": layer} if layer is not None else {}),
    }
    return json.loads(json.dumps(settings))  # as a file gives it back: tuples become lists


def _gather(
    embedded: int, skipped: list[Skipped], padded: list[tuple[str, int]], context: DistributedContext
) -> tuple[int, list[Skipped], list[tuple[str, int]]]:
    gathered = all_gather_objects((embedded, skipped, padded), context)
    return (
        sum(count for count, _, _ in gathered),
        [item for _, items, _ in gathered for item in items],
        [item for _, _, items in gathered for item in items],
    )


def _parts_folder(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _stored_rows(out: Path, parts: Path, settings: dict[str, Any]) -> Embeddings | None:
    """The rows already in `out` and its chunks, after checking they were made with `settings`."""
    stored = [load_embeddings(out)] if out.exists() else []
    stored += [load_embeddings(part) for part in sorted(parts.glob("part-*.npz"))]
    for rows in stored:
        check_compatible(rows.settings, settings, f"the embeddings in {out}")
    return Embeddings.concatenate(stored) if stored else None


def _merge(out: Path, parts: Path, listing: LabelledFiles) -> Embeddings | None:
    """Write OUT's rows, then the chunks' rows in listing order (each path once), to OUT; remove the chunks.
    Returns what OUT holds (None when there is no row at all)."""
    chunks = sorted(parts.glob("part-*.npz"))
    if not chunks:
        return load_embeddings(out) if out.exists() else None
    previous = load_embeddings(out) if out.exists() else None
    parts_read = [load_embeddings(chunk) for chunk in chunks]
    new = Embeddings.concatenate(parts_read)
    order = {str(file): index for index, file in enumerate(listing.files)}
    seen = set(previous.paths) if previous is not None else set()
    rows: list[int] = []  # every row of a path (one, or one per window) from the first part that holds it
    offset = 0
    for part in parts_read:
        fresh = set(part.paths) - seen
        rows += [offset + row for row, path in enumerate(part.paths) if path in fresh]
        seen |= fresh
        offset += len(part)
    new = new.select(sorted(rows, key=lambda row: (order.get(new.paths[row], len(order)), row)))
    merged = Embeddings.concatenate([previous, new]) if previous is not None else new
    save_embeddings(merged, out)
    for chunk in chunks:
        chunk.unlink()
    parts.rmdir()
    logger.info("merged %d chunk files into %s (%d rows)", len(chunks), out, len(merged))
    return merged


class _ChunkWriter:
    """Collects rows; with a folder, writes them there every `chunk_size` rows as `part-NNNNNN-RANK.npz`."""

    def __init__(
        self,
        folder: Path | None,
        listing: LabelledFiles,
        settings: dict[str, Any],
        keep_clips: bool,
        rank: int = 0,
        first_chunk: int = 1,
        chunk_size: int = 64,
    ) -> None:
        self.folder, self.listing, self.settings, self.keep_clips = folder, listing, settings, keep_clips
        self.rank, self.next_chunk, self.chunk_size = rank, first_chunk, chunk_size
        self.rows: list[tuple[int, FileOutput]] = []
        self.chunks: list[Embeddings] = []
        self.count = 0

    def add(self, index: int, output: FileOutput) -> None:
        self.rows.append((index, output))
        self.count += 1
        if self.folder is not None and len(self.rows) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        chunk = self._as_embeddings(self.rows)
        self.rows = []
        if self.folder is None:
            self.chunks.append(chunk)
            return
        path = self.folder / f"part-{self.next_chunk:06d}-{self.rank:04d}.npz"
        self.next_chunk += 1
        save_embeddings(chunk, path)
        logger.info("wrote %d rows to %s", len(chunk), path)

    def all_rows(self) -> Embeddings | None:
        self.flush()
        return Embeddings.concatenate(self.chunks) if self.chunks else None

    def _as_embeddings(self, rows: list[tuple[int, FileOutput]]) -> Embeddings:
        if self.settings.get("stride") is not None:
            return self._windows_as_embeddings(rows)
        clips = np.stack([output.outputs[:, 0].numpy() for _, output in rows])  # (N, clips, ...): one crop
        if self.settings["pool"] == "tokens":  # 16 bits: 2048 x 1280 tokens of a clip are 5 MB, not 10
            clips = clips.astype(np.float16)
        return Embeddings(
            paths=[str(self.listing.files[index]) for index, _ in rows],
            labels=np.array([self.listing.labels[index] for index, _ in rows], dtype=np.int64),
            clip_times=np.stack([output.clip_times.numpy() for _, output in rows]),
            embeddings=clips.mean(axis=1),
            clip_embeddings=clips if self.keep_clips else None,
            classes=self.listing.classes,
            settings=self.settings,
        )

    def _windows_as_embeddings(self, rows: list[tuple[int, FileOutput]]) -> Embeddings:
        """One row per window: its video's path and label, (1, 2) clip times (the window's start and end)."""
        windows = np.concatenate([output.outputs[:, 0].numpy() for _, output in rows])  # (windows, ...)
        if self.settings["pool"] == "tokens":
            windows = windows.astype(np.float16)
        counts = [len(output.clip_times) for _, output in rows]
        return Embeddings(
            paths=[str(self.listing.files[index]) for (index, _), count in zip(rows, counts) for _ in range(count)],
            labels=np.repeat(np.array([self.listing.labels[index] for index, _ in rows], dtype=np.int64), counts),
            clip_times=np.concatenate([output.clip_times.numpy() for _, output in rows])[:, None],  # (windows, 1, 2)
            embeddings=windows,
            classes=self.listing.classes,
            settings=self.settings,
        )


def _pooling_forward(
    model: VideoViT, pool: str, layer: int | None, device: torch.device, precision: Precision
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model` on `device` in eval mode, and its call on a batch of clips: the `pool`ed tokens of the final output
    or of block `layer` (final norm applied), under the `precision`'s autocast."""
    model = model.to(device).eval()

    def forward(video: torch.Tensor) -> torch.Tensor:
        with precision.autocast(device):
            if layer is None:
                return pool_tokens(model.forward_features(video), pool)
            return pool_tokens(model.forward_intermediates(video, indices=[layer], norm=True)[0], pool)

    return forward


def _embed_shard(
    forward: Callable[[torch.Tensor], torch.Tensor],
    listing: LabelledFiles,
    indices: Sequence[int],
    preset: VideoPreset | ImagePreset,
    num_clips: int,
    rows: _ChunkWriter,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    progress: Progress,
    stride: float | None,
) -> tuple[list[Skipped], list[tuple[str, int]]]:
    """Embed the videos at `indices` of the listing into `rows`; returns the unreadable ones and those padded."""
    indices = list(indices)
    dataset = FileViews([listing.files[index] for index in indices], preset, num_clips)
    skipped: list[Skipped] = []
    padded: list[tuple[str, int]] = []
    started = time.perf_counter()
    results = (
        _windows_of(forward, listing, indices, preset, stride, batch_size, device, progress)
        if stride is not None and isinstance(preset, VideoPreset)
        else run_views(
            forward,
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            progress=progress,
            label="embed",
        )
    )
    try:
        for result in results:
            if isinstance(result, Skipped):
                skipped.append(result)
            else:
                rows.add(indices[result.index], result)
                if result.padded:
                    padded.append((str(listing.files[indices[result.index]]), result.padded))
    finally:
        rows.flush()  # an interrupted run keeps every row it finished
    logger.info("embedded %d videos in %.1f s (%d skipped)", rows.count, time.perf_counter() - started, len(skipped))
    return skipped, padded


def _windows_of(
    forward,
    listing: LabelledFiles,
    indices: list[int],
    preset: VideoPreset,
    stride: float,
    batch_size: int,
    device: torch.device,
    progress: Progress,
) -> Iterator[FileOutput | Skipped]:
    """Each video's windows through `forward`, as `run_views` gives a file's clips (progress counts videos)."""
    progress.start(len(indices), "video", "embed")
    for position, index in enumerate(indices):
        path = listing.files[index]
        timeline = read_or_skip(
            path, functools.partial(window_outputs, forward, preset, path, stride, batch_size=batch_size, device=device)
        )
        if isinstance(timeline, Skipped):
            yield timeline
        else:  # as run_views gives a file: its position among `indices`, outputs (windows, 1 crop, ...)
            yield FileOutput(
                position, torch.from_numpy(timeline.values)[:, None], torch.from_numpy(timeline.times), timeline.padded
            )
        progress.advance(position + 1, path.name)
    progress.close()
