"""Surprise over time: where an MAE's predictions of what comes next break, window by window over whole videos.

A window is a clip of the model's frame count read every `stride` seconds over the whole video
(`hvm1.data.windows`: decoded once and streamed, so memory stays flat on a long video; each window is what
`read_clip` gives at its start, read with the published visualisation preset). In each window the final
`future_frames` frames are hidden (whole frames, as the `temporal` mask removes them; default half the window),
or with `mask_type="center"` the middle ones, and the MAE predicts them from the rest. Its **loss** on the hidden
patches is the model's own loss definition (`VideoMAE.forward_loss`, the mean over hidden patches of each
patch's mean squared error, against norm-pix targets where the model was trained so), exactly what
`hvm1 score` reports for the same clip and mask.

Alongside, on the same hidden patches, the baselines of `hvm1 score` that apply (`hvm1.eval.scores`):
`nearest_frame` (for the temporal mask: copy the last visible frame), `mean`, and for the center mask
`interpolate`. Motion alone makes copying fail, so surprise is read against what a trivial predictor gets
wrong: `model_minus_best_baseline` is the model's loss less the lowest baseline loss of the window (below 0:
the model predicts better than any baseline).

A video's surprise is the maximum or the mean of a method's window losses; `hvm1.eval.paired` compares
videos with and without an impossible event on it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from hvm1.data import Skipped, VideoPreset, skipped_for
from hvm1.devices import Precision, resolve_precision
from hvm1.eval.paired import AGGREGATIONS, DEFAULT_RESAMPLES, Pair, PairFigures, pair_figures, read_pairs
from hvm1.eval.scores import baseline_completion, baseline_patch_loss, baselines_for
from hvm1.models import VideoMAE
from hvm1.models.mae import masked_mean
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DeviceSettings, ModelSettings, OutputSettings, setting
from hvm1.zoo import Preprocessing

if TYPE_CHECKING:
    from hvm1.viz.surprise import Thumbnails

logger = logging.getLogger(__name__)

#: The masks a window can hide its frames with: the final frames, or the middle ones.
SURPRISE_MASK_TYPES = ("temporal", "center")
#: Seconds between window starts unless told otherwise.
DEFAULT_STRIDE = 0.5
#: The per-patch error drawn in the top colour of the error-map video unless told otherwise: twice what
#: predicting the mean colour costs a patch of unit variance.
DEFAULT_ERROR_SCALE = 2.0
#: The model's column; the baselines' are named after them, and the model's excess over the best one after this.
MODEL = "model"
EXCESS = "model_minus_best_baseline"
WINDOW_COLUMNS = ("video", "window_start", "window_end", "hidden_start", "hidden_end", "padded")
#: How many peaks a plot marks.
PEAKS = 3


@dataclass(frozen=True, kw_only=True)
class SurpriseConfig(ModelSettings, DeviceSettings, OutputSettings):
    """`hvm1 surprise`: an MAE's error on hidden future frames, window by window over whole videos, against
    baselines; with `pairs`, the violation-of-expectation figures of possible/impossible video pairs."""

    videos: tuple[Path, ...] = setting(
        (),
        positional=True,
        metavar="VIDEO",
        help="video files or folders (searched recursively); may be left out with --pairs",
    )
    stride: float = setting(DEFAULT_STRIDE, metavar="S", help="a window every S seconds")
    future_frames: int | None = setting(
        None,
        metavar="F",
        help="frames hidden in each window: the last F (whole frames, a multiple of "
        "the model's tubelet), or the middle F with --mask-type center "
        "(default: half the window)",
    )
    mask_type: str = setting(
        "temporal",
        choices=SURPRISE_MASK_TYPES,
        help="temporal hides the final frames of each window, center the middle ones",
    )
    pairs: Path | None = setting(
        None,
        metavar="FILE.csv",
        help="rows possible,impossible[,group], paths relative to the file: relative "
        "accuracy and AUROC of surprise, for the model and each baseline",
    )
    seed: int = setting(0, metavar="S", help="seeds the bootstrap of the relative accuracy's confidence interval")
    resamples: int = setting(DEFAULT_RESAMPLES, metavar="N", help="bootstrap resamples")
    error_scale: float = setting(
        DEFAULT_ERROR_SCALE, metavar="E", help="the per-patch error drawn in the top colour of the error-map videos"
    )


@dataclass(frozen=True)
class WindowSurprise:
    """One window of one video: where it lies (seconds on the video's clock), what it hid, and each method's loss.

    `start` and `end` are the window's first and last instants, `hidden_start` and `hidden_end` those of its
    hidden frames; `padded` counts the instants after the video's last frame (a video shorter than one window);
    `losses` maps the model (`MODEL`) and each baseline to its loss on the hidden patches.
    """

    video: str
    start: float
    end: float
    hidden_start: float
    hidden_end: float
    padded: int
    losses: dict[str, float]

    @property
    def excess(self) -> float:
        """The model's loss less the lowest baseline loss (`EXCESS`)."""
        return self.losses[MODEL] - min(value for name, value in self.losses.items() if name != MODEL)

    @property
    def time(self) -> float:
        """The middle of the hidden span: where the window sits on a plot over time."""
        return (self.hidden_start + self.hidden_end) / 2

    def value(self, method: str) -> float:
        """The loss of `method`, or `EXCESS`."""
        return self.excess if method == EXCESS else self.losses[method]


@dataclass(frozen=True)
class VideoSummary:
    """One method's surprise over one video's windows: `max`, `mean`, and the window of the maximum (the
    first of equal ones): its hidden span `peak_start`-`peak_end` and `peak_time`, the middle of it."""

    max: float
    mean: float
    peak_start: float
    peak_end: float
    peak_time: float


@dataclass(frozen=True)
class VideoSurprise:
    """A video's windows in time order, and the files written for it."""

    video: Path
    windows: list[WindowSurprise]
    files: tuple[Path, ...] = ()

    @property
    def padded(self) -> int:
        """Instants padded past the video's end (only a video shorter than one window has any)."""
        return sum(window.padded for window in self.windows)

    def methods(self) -> list[str]:
        """The model, the baselines, then `EXCESS`."""
        return [*self.windows[0].losses, EXCESS]

    def summary(self, method: str) -> VideoSummary:
        """`method`'s surprise over the windows (see `VideoSummary`)."""
        values = [window.value(method) for window in self.windows]
        peak = self.windows[int(np.argmax(values))]
        return VideoSummary(max(values), math.fsum(values) / len(values), peak.hidden_start, peak.hidden_end, peak.time)

    def surprise(self, method: str, aggregation: str) -> float:
        """One number for the video: the `aggregation` ('max' or 'mean') of `method`'s window losses."""
        summary = self.summary(method)
        return summary.max if aggregation == "max" else summary.mean


@dataclass
class SurpriseReport(Report):
    """What `surprise` did (`written`: every file; `skipped`: unreadable videos, and pairs left out for them).

    Attributes:
        videos: Each video read, its windows and files.
        short: The videos shorter than one window: read as one window, its last frame repeated (`padded`).
        left_out: The pairs left out for a video that could not be read (also in `skipped`).
        pairs: The pairs evaluated (those with both videos read).
        figures: With pairs, the paired figures per method (the model, each baseline, `EXCESS`) and aggregation.
        out_dir: Where the files went.
        precision: The precision the model ran at, in words.
    """

    videos: list[VideoSurprise] = field(default_factory=list)
    short: list[Path] = field(default_factory=list)
    left_out: list[Skipped] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    figures: list[PairFigures] = field(default_factory=list)
    out_dir: Path | None = None
    precision: str = ""


@dataclass(frozen=True)
class HiddenFrames:
    """Which frames of a window are hidden under `mask_type`: input frames `first` to `last` (inclusive), whole
    tokens of `t_patch_size` frames."""

    mask_type: str
    first: int
    last: int
    t_patch_size: int

    @property
    def count(self) -> int:
        """How many input frames are hidden."""
        return self.last - self.first + 1

    def token_mask(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """The tokens (L,) of the token grid (t, h, w) these frames are, True = hidden."""
        t, h, w = grid
        slices = torch.zeros(t, dtype=torch.bool)
        slices[self.first // self.t_patch_size : self.last // self.t_patch_size + 1] = True
        return slices.repeat_interleave(h * w)

    def mask_ratio(self, grid: tuple[int, int, int]) -> float:
        """The `mask_ratio` at which `mask_type` hides exactly these frames' tokens on the token grid (t, h, w).

        The masks keep int(L * (1 - ratio)) tokens (`hvm1.models.masking.num_kept`): the ratio aims half a token
        above the count kept, so that rounding cannot drop one."""
        total = math.prod(grid)
        kept = total - int(self.token_mask(grid).sum())
        return 1 - (kept + 0.5) / total


def hidden_frames(num_frames: int, t_patch_size: int, future_frames: int | None, mask_type: str) -> HiddenFrames:
    """The frames a window of `num_frames` hides: `future_frames` of them, default half.

    Args:
        num_frames: The window's frames (the model's frame count).
        t_patch_size: Frames per token (the model's tubelet): hidden frames are whole tokens.
        future_frames: How many to hide: the last ones (`temporal`) or the middle ones (`center`).
        mask_type: 'temporal' or 'center'.

    Returns:
        The hidden frames.

    Raises:
        ValueError: an unknown mask type; `future_frames` that hides no frame, leaves none visible, is not a
            multiple of the tubelet, or (center) leaves unequal numbers of tokens before and after.
    """
    if mask_type not in SURPRISE_MASK_TYPES:
        raise ValueError(f"mask_type must be one of {', '.join(SURPRISE_MASK_TYPES)}, got {mask_type!r}")
    count = num_frames // 2 if future_frames is None else future_frames
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"future_frames must be a whole number of frames, got {future_frames!r}")
    if count < 1:
        raise ValueError(
            f"future_frames {count} hides no frame: hide at least {t_patch_size} of the {num_frames} frames"
        )
    if count >= num_frames:
        raise ValueError(
            f"future_frames {count} leaves no visible frame of the window's {num_frames}: the model "
            f"predicts from what it sees (at most {num_frames - t_patch_size})"
        )
    if count % t_patch_size:
        raise ValueError(
            f"future_frames {count} is not a multiple of the model's tubelet of {t_patch_size} frames: "
            "frames are hidden a whole token at a time"
        )
    visible = (num_frames - count) // t_patch_size
    if mask_type == "center":
        if visible % 2:
            raise ValueError(
                f"future_frames {count} with --mask-type center leaves {visible} tubelets of "
                f"{t_patch_size} frames, which do not split evenly before and after the gap"
            )
        first = visible // 2 * t_patch_size
    else:
        first = num_frames - count
    return HiddenFrames(mask_type, first, first + count - 1, t_patch_size)


@dataclass(frozen=True)
class WindowLosses:
    """A window's losses on its hidden patches: per method (`MODEL`, then the baselines) the mean, and the
    model's loss of every patch `model_patches` (L,) on the token grid `grid` (t, h, w), with `mask` (L,), 1 =
    hidden."""

    losses: dict[str, float]
    model_patches: torch.Tensor
    mask: torch.Tensor
    grid: tuple[int, int, int]


def window_losses(
    model: VideoMAE, clip: torch.Tensor, hidden: HiddenFrames, precision: Precision | str = "fp32"
) -> WindowLosses:
    """The model's and the applicable baselines' losses on one window's hidden patches.

    The model completes the normalised clip (C, T, H, W) with `hidden`'s frames masked (its own masking:
    `mask_type` at `hidden.mask_ratio(grid)`) at `precision`; its loss is `model.forward_loss` averaged over the
    hidden patches, as `hvm1 score` computes it. The baselines (`hvm1.eval.scores.baselines_for`) predict the
    same patches from the visible frames, scored as `hvm1 score` scores them.

    Raises:
        RuntimeError: the model masked other tokens than the hidden frames' (a model whose masking differs).
    """
    batch = clip.unsqueeze(0).float()  # (1, C, T, H, W)
    token_grid = model.token_grid(batch)
    parameter = next(model.parameters())
    with torch.inference_mode(), resolve_precision(precision, parameter.device).autocast(parameter.device):
        _, pred, mask = model(
            batch.to(parameter.device, parameter.dtype),
            mask_ratio=hidden.mask_ratio(token_grid),
            mask_type=hidden.mask_type,
        )
    pred, mask = pred.to("cpu", torch.float32), mask.to("cpu", torch.float32)
    if not torch.equal(mask[0].bool(), hidden.token_mask(token_grid)):
        raise RuntimeError(f"the model hid other tokens than frames {hidden.first}-{hidden.last}")
    grid = model.prediction_grid(token_grid)
    target = model.target_frames(batch)  # (1, C, T', H, W)
    target_patches = grid.patchify(target)
    model_patches = model.forward_loss(target_patches, pred, reduction="none")  # (1, L)
    losses = {MODEL: float(masked_mean(model_patches, mask, dim=1)[0])}
    removed = grid.pixel_mask(mask)
    for method in baselines_for(hidden.mask_type):
        predicted = grid.patchify(baseline_completion(target, removed, method))
        per_patch = baseline_patch_loss(target_patches, predicted, method, model.config.norm_pix_loss)
        losses[method] = float(masked_mean(per_patch, mask, dim=1)[0])
    return WindowLosses(losses, model_patches[0], mask[0], token_grid)


def surprise_video(
    model: VideoMAE,
    video: str | os.PathLike,
    preset: VideoPreset,
    *,
    stride: float = DEFAULT_STRIDE,
    hidden: HiddenFrames,
    precision: Precision | str = "fp32",
    error_video: str | os.PathLike | None = None,
    error_scale: float = DEFAULT_ERROR_SCALE,
    thumbnails: Thumbnails | None = None,
) -> VideoSurprise:
    """`window_losses` of every window of `video` (`hvm1.data.windows.load_windows` with `preset`, one pass).

    Args:
        model: The MAE.
        video: The video file.
        preset: How windows are read (the model's visualisation preset: `preprocessing.visualisation()`).
        stride: Seconds between window starts.
        hidden: Which frames of each window are hidden (`hidden_frames`).
        precision: The model's precision.
        error_video: Where to write the MP4 of the model's per-patch error over each window's hidden frames
            (`hvm1.viz.surprise.error_map_frames`), as the windows come; None: no video.
        error_scale: The error drawn in the top colour.
        thumbnails: A `hvm1.viz.surprise.Thumbnails` offered each window's first hidden frame, or None.

    Returns:
        The windows (the files: the error video, when written).

    Raises:
        VideoError: the video cannot be read (a partly written error video is removed).
        ValueError: a stride of 0 or below.
    """
    from hvm1.data import load_windows
    from hvm1.viz.grid import Mp4Writer
    from hvm1.viz.surprise import error_map_frames

    path = Path(video)
    windows: list[WindowSurprise] = []
    config = model.config
    fps = (preset.target_fps / preset.sampling_rate) * config.pred_t_dim / config.num_frames
    writer = Mp4Writer(error_video, fps) if error_video is not None else None
    with writer if writer is not None else contextlib.nullcontext():
        for window, clip in load_windows(preset, path, stride):
            result = window_losses(model, clip, hidden, precision)
            instants = window.clip.instants
            windows.append(
                WindowSurprise(
                    str(path),
                    float(window.start),
                    float(window.end),
                    float(instants[hidden.first]),
                    float(instants[hidden.last]),
                    window.padded,
                    result.losses,
                )
            )
            frames = window.clip.frames  # (T, H', W', 3) uint8, before the crop
            if thumbnails is not None:
                thumbnails.add(windows[-1].time, _thumbnail(frames[hidden.first].numpy()))
            if writer is not None:
                for image in error_map_frames(*_hidden_errors(model, clip, preset, result), error_scale):
                    writer.write(image)
    return VideoSurprise(path, windows, () if writer is None else (writer.path,))


def _thumbnail(frame: np.ndarray, height: int = 64) -> np.ndarray:
    from PIL import Image

    width = max(1, round(frame.shape[1] * height / frame.shape[0]))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


def _hidden_errors(
    model: VideoMAE, clip: torch.Tensor, preset: VideoPreset, result: WindowLosses
) -> tuple[np.ndarray, torch.Tensor]:
    """The hidden predicted frames (uint8, cropped as the model sees them) and their per-patch errors."""
    from hvm1.viz.grid import to_uint8

    t, h, w = result.grid
    hidden_slices = result.mask.reshape(t, h * w).bool().all(dim=1)
    u = model.config.pred_t_patch_size
    target = model.target_frames(clip.unsqueeze(0))[0]  # (C, T', H, W)
    frames = to_uint8(target, preset.mean, preset.std)  # (T', H, W, 3)
    frame_hidden = hidden_slices.repeat_interleave(u)
    errors = result.model_patches.reshape(t, h, w).repeat_interleave(u, dim=0)
    return frames[frame_hidden.numpy()], errors[frame_hidden]


def write_surprise_csv(videos: Sequence[VideoSurprise], path: str | os.PathLike) -> Path:
    """Write every window of `videos` as CSV: `WINDOW_COLUMNS`, then `model_loss`, each baseline's `*_loss`, and
    `model_minus_best_baseline` (numbers in full precision; the columns of the first video's windows)."""
    from hvm1.files import write_atomically

    methods = videos[0].methods()[:-1] if videos else [MODEL]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*WINDOW_COLUMNS, *(f"{method}_loss" for method in methods), EXCESS])
    for surprise in videos:
        for w in surprise.windows:
            writer.writerow(
                [
                    w.video,
                    repr(w.start),
                    repr(w.end),
                    repr(w.hidden_start),
                    repr(w.hidden_end),
                    w.padded,
                    *(repr(w.losses[method]) for method in methods),
                    repr(w.excess),
                ]
            )
    return write_atomically(Path(path), lambda handle: handle.write(text.getvalue().encode()))


def read_surprise_csv(path: str | os.PathLike) -> list[WindowSurprise]:
    """The windows of a file `write_surprise_csv` wrote.

    Raises:
        ValueError: the file does not start with the window columns.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        names = tuple(reader.fieldnames or ())
        if names[: len(WINDOW_COLUMNS)] != WINDOW_COLUMNS or names[-1:] != (EXCESS,):
            raise ValueError(f"{path}: not a surprise windows file (columns {names})")
        methods = [name.removesuffix("_loss") for name in names[len(WINDOW_COLUMNS) : -1]]
        return [
            WindowSurprise(
                row["video"],
                float(row["window_start"]),
                float(row["window_end"]),
                float(row["hidden_start"]),
                float(row["hidden_end"]),
                int(row["padded"]),
                {method: float(row[f"{method}_loss"]) for method in methods},
            )
            for row in reader
        ]


def summary_json(report: SurpriseReport, **settings: Any) -> dict[str, Any]:
    """The JSON summary of a run: `settings`, then per video and method the max, mean and time of the peak, and
    (with pairs) the paired figures and the pairs left out."""
    videos = []
    for surprise in report.videos:
        summaries = {method: vars(surprise.summary(method)) for method in surprise.methods()}
        videos.append(
            {
                "video": str(surprise.video),
                "windows": len(surprise.windows),
                "padded": surprise.padded,
                "surprise": summaries,
            }
        )
    out: dict[str, Any] = {**settings, "videos": videos}
    if report.pairs or report.figures:
        out["pairs"] = {
            "evaluated": len(report.pairs),
            "left_out": [vars(skipped) for skipped in report.left_out],
            "figures": [
                {
                    "method": f.method,
                    "aggregation": f.aggregation,
                    "pairs": f.pairs,
                    "relative_accuracy": f.accuracy,
                    "interval": [f.interval.low, f.interval.high],
                    "confidence": f.interval.confidence,
                    "auroc": f.auroc,
                    "groups": f.groups,
                }
                for f in report.figures
            ],
        }
    return out


def paired_evaluation(
    pairs: Sequence[Pair], videos: Mapping[Path, VideoSurprise], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> list[PairFigures]:
    """The paired figures (`hvm1.eval.paired.pair_figures`) of every method (the model, each baseline, `EXCESS`)
    and aggregation over windows ('max', 'mean'), for `pairs` whose videos are all in `videos`."""
    if not pairs:
        return []
    methods = next(iter(videos.values())).methods()
    figures = []
    for method in methods:
        for aggregation in AGGREGATIONS:
            scores = {path: surprise.surprise(method, aggregation) for path, surprise in videos.items()}
            figures.append(
                pair_figures(pairs, scores, method=method, aggregation=aggregation, resamples=resamples, seed=seed)
            )
    return figures


def write_pair_outcomes(
    pairs: Sequence[Pair], videos: Mapping[Path, VideoSurprise], figures: Sequence[PairFigures], path: str | os.PathLike
) -> Path:
    """Write per pair, method and aggregation the two videos' surprise and the outcome (1 right, 0.5 tie, 0) as
    CSV."""
    from hvm1.files import write_atomically

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        [
            "possible",
            "impossible",
            "group",
            "method",
            "aggregation",
            "possible_surprise",
            "impossible_surprise",
            "outcome",
        ]
    )
    for figure in figures:
        for pair, outcome in zip(pairs, figure.outcomes):
            writer.writerow(
                [
                    pair.possible,
                    pair.impossible,
                    pair.group,
                    figure.method,
                    figure.aggregation,
                    repr(videos[pair.possible].surprise(figure.method, figure.aggregation)),
                    repr(videos[pair.impossible].surprise(figure.method, figure.aggregation)),
                    outcome,
                ]
            )
    return write_atomically(Path(path), lambda handle: handle.write(text.getvalue().encode()))


def _videos_of(config: SurpriseConfig) -> tuple[list[Path], list[Pair]]:
    from hvm1.data import find_videos

    pairs = read_pairs(config.pairs) if config.pairs is not None else []
    videos = find_videos(config.videos) if config.videos else []
    if not videos and not pairs:
        raise ValueError("name the videos (VIDEO ... or --pairs FILE.csv)")
    return videos, pairs


def surprise_videos(
    model: VideoMAE,
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model_name: str = MODEL,
    preprocessing: Preprocessing | None = None,
    stride: float = DEFAULT_STRIDE,
    future_frames: int | None = None,
    mask_type: str = "temporal",
    pairs: Sequence[Pair] = (),
    precision: Precision | str = "fp32",
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    error_scale: float = DEFAULT_ERROR_SCALE,
    progress: Progress = SILENT,
) -> SurpriseReport:
    """`surprise_video` on each of `videos` and of the `pairs`' videos, then the files and the paired figures.

    Writes into `out_dir`: `surprise.csv` (every window: `write_surprise_csv`), per video `STEM_surprise.png`
    (`hvm1.viz.surprise.plot_surprise`, peaks marked) and `STEM_errors.mp4` (the model's per-patch error over the
    hidden frames; stems from `hvm1.viz.output_stems`), `summary.json` (`summary_json`), and with pairs
    `pairs.csv` (`write_pair_outcomes`). A video that cannot be read is skipped and named, and so is every pair
    it belongs to; the rest are scored.

    Args:
        model: The MAE.
        videos: Video files (a pair's videos are added to them, each read once).
        out_dir: Where the files go.
        model_name: The model's name on the plots.
        preprocessing: The model's (default: `hvm1.zoo.preprocessing_for(model)`); windows are read with its
            visualisation preset at the model's size and frame count.
        stride: Seconds between window starts.
        future_frames: Frames hidden per window (`hidden_frames`; default half the window).
        mask_type: 'temporal' (the last frames) or 'center' (the middle ones).
        pairs: Possible/impossible pairs for the paired figures.
        precision: The model's precision (`hvm1.devices.resolve_precision`).
        seed: Seeds the bootstrap.
        resamples: Bootstrap resamples.
        error_scale: The per-patch error drawn in the top colour of the error videos.
        progress: Told of short videos and of each video done.

    Returns:
        The report: windows, files, skipped videos and pairs, paired figures.

    Raises:
        ValueError: a stride of 0 or below, `future_frames` or `mask_type` the model can't hide, a scale of 0.
    """
    from hvm1.data import check_stride
    from hvm1.viz.runs import output_stems
    from hvm1.viz.surprise import Thumbnails, plot_surprise, surprise_peaks
    from hvm1.zoo import preprocessing_for

    stride = check_stride(stride)
    if not error_scale > 0:
        raise ValueError(f"error_scale must be > 0, got {error_scale}")
    config = model.config
    hidden = hidden_frames(config.num_frames, config.t_patch_size, future_frames, mask_type)
    preset = (preprocessing or preprocessing_for(model)).at_size(config.img_size, config.num_frames).visualisation()
    paths = list(dict.fromkeys([*map(Path, videos), *(v for pair in pairs for v in (pair.possible, pair.impossible))]))
    out = Path(out_dir)
    report = SurpriseReport(
        out_dir=out, precision=resolve_precision(precision, next(model.parameters()).device).describe()
    )
    read: dict[Path, VideoSurprise] = {}
    progress.start(len(paths), "video")
    for done, (video, stem) in enumerate(zip(paths, output_stems(paths)), start=1):
        thumbnails = Thumbnails()
        try:
            result = surprise_video(
                model,
                video,
                preset,
                stride=stride,
                hidden=hidden,
                precision=precision,
                error_video=out / f"{stem}_errors.mp4",
                error_scale=error_scale,
                thumbnails=thumbnails,
            )
        except Exception as error:  # one video's failure, never the run's
            report.skipped.append(skipped_for(video, error))
            progress.advance(done, video.name)
            continue
        if result.padded:
            report.short.append(video)
            progress.note(
                f"{video} is shorter than one window: read as one window, its last frame repeated for "
                f"{result.padded} of its {config.num_frames} frames"
            )
        losses = {
            model_name if method == MODEL else method: [w.losses[method] for w in result.windows]
            for method in result.windows[0].losses
        }
        distance = max(1, math.ceil(hidden.count * preset.sampling_rate / preset.target_fps / stride))
        plot = plot_surprise(
            [w.time for w in result.windows],
            losses,
            out / f"{stem}_surprise.png",
            model=model_name,
            thumbnails=thumbnails.chosen(),
            peaks=surprise_peaks(losses[model_name], PEAKS, distance),
            title=str(video),
        )
        result = VideoSurprise(result.video, result.windows, (*result.files, plot))
        report.videos.append(result)
        report.written.extend(result.files)
        read[video] = result
        progress.advance(done, video.name)
    progress.close()
    if report.videos:
        report.written.append(write_surprise_csv(report.videos, out / "surprise.csv"))
    reasons = {s.path: s.reason for s in report.skipped}
    for pair in pairs:
        missing = [video for video in (pair.possible, pair.impossible) if video not in read]
        if missing:
            why = "; ".join(f"{video}: {reasons.get(str(video), 'not read')}" for video in missing)
            report.left_out.append(Skipped(f"{pair.possible},{pair.impossible}", f"pair left out ({why})"))
            report.skipped.append(report.left_out[-1])
        else:
            report.pairs.append(pair)
    report.figures = paired_evaluation(report.pairs, read, resamples=resamples, seed=seed)
    if report.figures:
        report.written.append(write_pair_outcomes(report.pairs, read, report.figures, out / "pairs.csv"))
    settings = {
        "model": model_name,
        "mask_type": hidden.mask_type,
        "hidden_frames": hidden.count,
        "window_frames": config.num_frames,
        "stride": stride,
        "precision": report.precision,
    }
    report.written.append(_write_json(summary_json(report, **settings), out / "summary.json"))
    return report


def surprise(config: SurpriseConfig, progress: Progress = SILENT) -> SurpriseReport:
    """`hvm1 surprise`: load the model the config names and run `surprise_videos` over its videos and pairs.

    Args:
        config: The command's settings.
        progress: Told of a download, the precision, short videos, and each video done.

    Returns:
        The report (see `surprise_videos`).

    Raises:
        ValueError: bad settings (stride, future frames, mask type, no model, no videos, a malformed pairs file),
            before the model is loaded where they do not depend on it.
        OSError: the pairs file cannot be read.
    """
    from hvm1.data import check_stride
    from hvm1.devices import resolve_device
    from hvm1.files import output_folder
    from hvm1.inference import precision_for_run
    from hvm1.zoo import load_for_command

    check_stride(config.stride)
    if not config.error_scale > 0:
        raise ValueError(f"error_scale must be > 0, got {config.error_scale}")
    if config.mask_type not in SURPRISE_MASK_TYPES:
        raise ValueError(f"mask_type must be one of {', '.join(SURPRISE_MASK_TYPES)}, got {config.mask_type!r}")
    videos, pairs = _videos_of(config)
    device = resolve_device(config.device)
    loaded = load_for_command(config, model_type="mae", device=device, progress=progress)
    model = cast(VideoMAE, loaded.model)
    hidden_frames(model.config.num_frames, model.config.t_patch_size, config.future_frames, config.mask_type)
    out_dir = output_folder(config.out_dir, "surprise")
    precision = precision_for_run(config.precision, device, [model], progress)
    progress.keeping(f"the files of the videos done so far, in {out_dir}")
    return surprise_videos(
        model,
        videos,
        out_dir,
        model_name=loaded.stem,
        preprocessing=loaded.preprocessing,
        stride=config.stride,
        future_frames=config.future_frames,
        mask_type=config.mask_type,
        pairs=pairs,
        precision=precision,
        seed=config.seed,
        resamples=config.resamples,
        error_scale=config.error_scale,
        progress=progress,
    )


def _write_json(data: dict[str, Any], path: Path) -> Path:
    from hvm1.files import write_atomically

    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    return write_atomically(path, lambda handle: handle.write(text.encode()))
