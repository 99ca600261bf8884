"""`hvm1 embed`, `evaluate` and `probe` as commands: their settings, and the library calls they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DEVICE_CHOICES, DeviceSettings, ModelSettings, OutputSettings, SizeSettings, setting

from .attentive import DEFAULT_LRS, DEFAULT_WEIGHT_DECAYS
from .embed import DEFAULT_SAMPLING_RATE, POOLS, EmbedResult
from .predictions import Predictions
from .probes import METHODS

__all__ = [
    "DEFAULT_NUM_WORKERS",
    "EmbedConfig",
    "EmbedReport",
    "EvaluateConfig",
    "EvaluateReport",
    "ProbeConfig",
    "ProbeReport",
    "embed_command",
    "evaluate_command",
    "probe_command",
]

#: DataLoader processes decoding videos while the model runs, for the commands.
DEFAULT_NUM_WORKERS = 2
#: `hvm1 probe --method`.
PROBE_METHODS = (*METHODS, "attentive")


@dataclass(frozen=True, kw_only=True)
class LoaderSettings(ModelSettings, DeviceSettings, SizeSettings):
    """What `embed` and `evaluate` share: the model and how clips are read and batched."""

    batch_size: int = setting(8, metavar="B", help="clips per forward pass")
    num_workers: int = setting(
        DEFAULT_NUM_WORKERS, metavar="W", help="DataLoader processes decoding videos while the model runs (0: none)"
    )
    sampling_rate: int = setting(
        DEFAULT_SAMPLING_RATE, metavar="R", help="take every R-th frame at 30 fps (as published)"
    )


@dataclass(frozen=True, kw_only=True)
class EmbedConfig(LoaderSettings):
    """`hvm1 embed`: one embedding per video (or per window with `stride`) into a .npz or .parquet file."""

    paths: tuple[Path, ...] = setting(
        positional=True,
        metavar="PATH",
        help="videos or folders (searched "
        "recursively); one folder of class subfolders or one CSV manifest (path,label) "
        "also gives labels",
    )
    output: Path = setting(
        option="-o",
        aliases=("--output",),
        metavar="OUT",
        help="OUT.npz or OUT.parquet; rerunning with the same OUT adds only the videos not in it",
    )
    pool: str = setting(
        "cls", choices=POOLS, help="cls: the final-normed CLS token; mean: mean of the patch tokens; tokens: all"
    )
    num_clips: int = setting(
        1, metavar="K", help="K clips evenly spaced over each video, averaged (1: the center clip)"
    )
    keep_clips: bool = setting(False, help="also store each clip's embedding")
    stride: float | None = setting(
        None,
        metavar="S",
        help="embed windows every S seconds over each whole video "
        "instead, one row per window with its start and end time (the video decoded once)",
    )
    images: bool = setting(
        False, help="the files are images (.jpg .png ...), each one static clip read as `evaluate --images` reads it"
    )
    layer: int | None = setting(
        None,
        metavar="K",
        help="pool block K's tokens (0-based, negative from the end), final norm applied (default: the final output)",
    )


@dataclass
class EmbedReport(Report):
    """What `hvm1 embed` did: the result (`embeddings`, rows embedded now and reused) and the notes to show."""

    result: EmbedResult | None = None
    output: Path | None = None
    stride: float | None = None
    images: bool = False
    notes: list[str] = field(default_factory=list)


def _has_subfolders(path: Path) -> bool:
    return path.is_dir() and any(entry.is_dir() for entry in path.iterdir())


def _embed_kept(output: Path) -> str:
    parts = output.with_name(output.name + ".parts")
    if any(parts.glob("part-*.npz")):
        return (
            f"the embeddings saved so far (a chunk at a time) are in {parts}: run the same command again "
            f"to embed only the rest"
        )
    return f"no chunk of embeddings was saved yet ({output} and {parts} hold nothing new)"


def embed_command(config: EmbedConfig, progress: Progress = SILENT) -> EmbedReport:
    """`hvm1 embed`: `embed_videos` on the files the config lists, into `config.output` (resumable).

    Args:
        config: The command's settings.
        progress: Told of downloads, the precision, each clip (each video with a stride) and what Ctrl-C keeps.

    Returns:
        The embeddings written, the files skipped and notes (files of no label, videos shorter than a window).

    Raises:
        ValueError: A stride of 0 or below, or no file to embed.
    """
    from hvm1.data import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, check_stride, list_files
    from hvm1.devices import resolve_device
    from hvm1.inference import precision_for_run
    from hvm1.zoo import load_for_command, sized_preprocessing

    from .embed import embed_videos

    if config.stride is not None:
        check_stride(config.stride)  # before loading the model
    listing = list_files(config.paths, IMAGE_EXTENSIONS if config.images else VIDEO_EXTENSIONS)
    if not listing.files:
        kind = "images" if config.images else "videos"
        raise ValueError(f"no {kind} in {', '.join(map(str, config.paths))}: nothing to embed")
    notes = []
    if listing.classes is None and len(config.paths) > 1 and any(_has_subfolders(path) for path in config.paths):
        notes.append(
            f"{len(config.paths)} paths are named, so the videos get no labels (label -1): labels come from "
            f"one folder of class subfolders or one CSV; embed each set into its own file to keep them"
        )
    loaded = load_for_command(config, model_type="vit", progress=progress)
    preprocessing = sized_preprocessing(config, loaded.preprocessing, loaded.model)
    device = resolve_device(config.device)
    precision = precision_for_run(config.precision, device, [loaded.model], progress)
    progress.keeping(_embed_kept(config.output))
    result = embed_videos(
        loaded.model,
        listing,
        config.output,
        preprocessing=preprocessing,
        model_name=loaded.source,
        pool=config.pool,
        num_clips=config.num_clips,
        keep_clips=config.keep_clips,
        sampling_rate=config.sampling_rate,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        device=device,
        precision=precision,
        layer=config.layer,
        progress=progress,
        full_frame=config.full_frame,
        images=config.images,
        stride=config.stride,
    )
    notes += [
        f"{path} is shorter than one window: one window, its last {frames} frames repeat the last frame"
        for path, frames in result.padded
    ]
    return EmbedReport(
        written=[config.output],
        skipped=list(result.skipped),
        result=result,
        output=config.output,
        stride=config.stride,
        images=config.images,
        notes=notes,
    )


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig(LoaderSettings, OutputSettings):
    """`hvm1 evaluate`: multi-view accuracy of a finetuned model on labelled videos or images."""

    data: Path = setting(
        positional=True,
        metavar="DATA",
        help="a folder of class subfolders (label: sorted index) or a CSV manifest (path,label)",
    )
    views: str | None = setting(
        None, metavar="CLIPSxCROPS", help="clips over time x crops (1 or 3) per video, logits averaged (default 2x3)"
    )
    images: bool = setting(False, help="image mode: DATA holds images (default for the imagenet-2pt models)")


@dataclass
class EvaluateReport(Report):
    """What `hvm1 evaluate` (or `probe`) found: the predictions and their metrics."""

    predictions: Predictions | None = None


def evaluate_command(config: EvaluateConfig, progress: Progress = SILENT) -> EvaluateReport:
    """`hvm1 evaluate`: `evaluate` the model the config names on its data, then write predictions and summary.

    Args:
        config: The command's settings.
        progress: Told of downloads, the precision, each clip and what Ctrl-C keeps.

    Returns:
        The predictions, the files written and the files skipped.
    """
    from hvm1.devices import resolve_device
    from hvm1.files import output_folder
    from hvm1.inference import precision_for_run
    from hvm1.zoo import load_for_command, sized_preprocessing

    from .evaluation import evaluate, parse_views

    views = parse_views(config.views) if config.views else None  # a bad spelling fails before any loading
    loaded = load_for_command(config, model_type="vit", progress=progress)
    preprocessing = sized_preprocessing(config, loaded.preprocessing, loaded.model)
    device = resolve_device(config.device)
    precision = precision_for_run(config.precision, device, [loaded.model], progress)
    progress.keeping("nothing was written (predictions.csv and summary.json are written when every file is done)")
    predictions = evaluate(
        cast(VideoViT, loaded.model),
        config.data,
        preprocessing=preprocessing,
        image_mode=True if config.images else None,
        views=views,
        sampling_rate=config.sampling_rate,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        device=device,
        precision=precision,
        model_name=loaded.source,
        progress=progress,
        full_frame=config.full_frame,
    )
    files = predictions.write(output_folder(config.out_dir, "evaluate"))
    return EvaluateReport(written=list(files), skipped=list(predictions.skipped), predictions=predictions)


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """`hvm1 probe`: a linear, kNN or attentive probe on embeddings from `hvm1 embed`."""

    train: Path = setting(metavar="FILE", help="labelled training embeddings")
    test: Path = setting(metavar="FILE", help="labelled test embeddings")
    method: str = setting(
        "linear",
        choices=PROBE_METHODS,
        help="linear: logistic regression; knn: k nearest "
        "neighbours by cosine similarity; attentive: a query cross-attending over --pool tokens "
        "embeddings",
    )
    shots: int | None = setting(None, metavar="K", help="train on K videos per class (default: all)")
    seed: int = setting(0, metavar="S", help="seeds the draw of --shots")
    k: int = setting(20, help="neighbours for knn")
    weight_decay: float = setting(1e-4, help="L2 penalty of the linear probe")
    val: Path | None = setting(
        None,
        metavar="FILE",
        help="attentive: labelled validation tokens that pick the best "
        "of the grid (default: 20%% of each class of --train held out with --seed)",
    )
    lrs: tuple[float, ...] = setting(DEFAULT_LRS, metavar="LR", help="attentive: learning rates of the grid")
    weight_decays: tuple[float, ...] = setting(
        DEFAULT_WEIGHT_DECAYS, metavar="WD", help="attentive: weight decays of the grid"
    )
    depth: int = setting(1, help="attentive: depth - 1 self-attention blocks, then the cross-attention")
    heads: int = setting(16, help="attentive: attention heads")
    epochs: int = setting(20, help="attentive: passes over the training tokens")
    batch_size: int = setting(32, metavar="B", help="attentive: videos per step")
    device: str = setting("auto", choices=DEVICE_CHOICES, help="attentive: auto picks cuda, then mps, then cpu")
    out_dir: Path | None = setting(None, metavar="DIR", help="also write predictions.csv and summary.json")


@dataclass
class ProbeReport(EvaluateReport):
    """What `hvm1 probe` found, with the notes to show."""

    notes: list[str] = field(default_factory=list)


def probe_command(config: ProbeConfig, progress: Progress = SILENT) -> ProbeReport:
    """`hvm1 probe`: fit the probe the config names on `train`, score `test`, and write the files if asked.

    Args:
        config: The command's settings.
        progress: Told of each epoch of an attentive probe.

    Returns:
        The predictions (an attentive probe's grid in their settings) and the files written.
    """
    from .probes import probe
    from .store import load_embeddings

    if config.method == "attentive":
        from hvm1.devices import resolve_device

        from .attentive import attentive_probe

        def tokens(path: Path):
            return load_embeddings(path, mmap=True)

        predictions = attentive_probe(
            tokens(config.train),
            tokens(config.test),
            val=tokens(config.val) if config.val else None,
            shots=config.shots,
            seed=config.seed,
            lrs=config.lrs,
            weight_decays=config.weight_decays,
            depth=config.depth,
            num_heads=config.heads,
            epochs=config.epochs,
            batch_size=config.batch_size,
            device=resolve_device(config.device),
            progress=progress,
        )
    else:
        predictions = probe(
            load_embeddings(config.train),
            load_embeddings(config.test),
            method=config.method,
            shots=config.shots,
            seed=config.seed,
            k=config.k,
            weight_decay=config.weight_decay,
        )
    predictions.settings.update(train=str(config.train), test=str(config.test))
    notes = []
    voters = predictions.settings.get("train_videos", 0)
    if config.method == "knn" and config.k > voters:
        notes.append(
            f"--k {config.k} is more than the {voters} training videos: every one of them votes (k = {voters})"
        )
    written = list(predictions.write(config.out_dir)) if config.out_dir else []
    return ProbeReport(written=written, predictions=predictions, notes=notes)
