"""Completion scores: how well an MAE fills in removed patches, against baselines that need no model.

For one clip, each mask type and each mask ratio, every method completes the same masked clip and is scored
on the removed part only:

- `loss`: the MAE loss, the mean squared error per removed patch in normalised pixels, as in training (with
  `norm_pix_loss`, target and prediction patches are each standardised by their own mean and variance first;
  a model's prediction already is);
- `psnr`: 10 log10(255^2 / MSE) over the removed pixels and channels, in 0-255 RGB (normalisation undone,
  clamped to 0-255, not rounded); infinite when the completion is exact there;
- `ssim`: the SSIM map of each frame (Gaussian window 11 px, sigma 1.5, the constants of Wang et al. 2004
  for 0-255 values, reflect padding, per channel) between the completion (original pixels where visible,
  the method's where removed) and the original, averaged over channels and over the removed pixels only.
  A window that straddles the edge of the removed region also sees visible pixels, equal in both images,
  so SSIM is a little kinder near edges than inside large holes.

The baselines predict removed pixels from visible ones (all in normalised units, on the frames the MAE
predicts): `mean` is 0 (the dataset mean colour); `nearest_frame` copies, per pixel, the nearest frame in time
in which that pixel is visible (the earlier one on a tie: for temporal and center masks the last visible
frame before the gap or the first after it, for random masks the nearest visible tubelet at the same place);
`interpolate` blends linearly in time between the nearest visible frames before and after (the one side
there is at the ends). A pixel visible in no frame gets the mean. `interpolate` is scored for center and
random masks; for temporal masks (nothing visible after the gap) it equals `nearest_frame`.

Masks are shared: temporal and center masks are fixed, and random masks come from one uniform noise per
video, seeded by the seed and the video's file name, so every model and baseline sees the same mask and a
higher ratio removes a superset of a lower one's tokens.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F

from hvm1.devices import Precision, resolve_precision
from hvm1.models import VideoMAE
from hvm1.models.mae import masked_mean, patch_loss, standardise_patches, unstandardise_patches
from hvm1.models.masking import MASK_TYPES, check_mask_ratio, make_masking, mask_noise
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DeviceSettings, OutputSettings, OverrideSettings, setting
from hvm1.viz.runs import drawn_videos, each_video
from hvm1.zoo import Preprocessing, preprocessing_for

logger = logging.getLogger(__name__)

BASELINES = ("mean", "nearest_frame", "interpolate")
#: The mask ratios `score_videos` sweeps unless told otherwise.
DEFAULT_SCORE_RATIOS = (0.25, 0.5, 0.75, 0.9, 0.95)
SCORE_COLUMNS = ("video", "mask_type", "mask_ratio", "method", "loss", "psnr", "ssim")
METRICS = ("loss", "psnr", "ssim")


@dataclass(frozen=True)
class Score:
    """One method's completion of one masked clip, scored on the removed patches (see the module doc)."""

    video: str
    mask_type: str
    mask_ratio: float
    method: str
    loss: float
    psnr: float
    ssim: float


@dataclass
class ScoreReport(Report):
    """What `score_videos` did: the scores of the videos it read (`skipped`: those it could not read).

    Attributes:
        scores: A row per video, mask type, mask ratio and method.
        videos: How many videos it was given.
        out_dir: Where `hvm1 score` wrote scores.csv and scores.png (None from `score_videos`).
        models: The models' names.
    """

    scores: list[Score] = field(default_factory=list)
    videos: int = 0
    out_dir: Path | None = None
    models: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ScoreConfig(OverrideSettings, DeviceSettings, OutputSettings):
    """`hvm1 score`: MAE completions scored on the removed patches against baselines, for each video, mask type
    and mask ratio, on shared seeded masks."""

    paths: tuple[Path, ...] = setting(
        positional=True, metavar="PATH", help="video files or folders (searched recursively)"
    )
    models: tuple[str, ...] = setting(
        (),
        option="--model",
        repeat=True,
        metavar="NAME",
        help="a zoo MAE name or a checkpoint file; repeatable (all models share one token grid)",
    )
    checkpoints: tuple[Path, ...] = setting(
        (),
        option="--checkpoint",
        repeat=True,
        metavar="FILE",
        help="a checkpoint file (named after its stem); repeatable",
    )
    mask_types: tuple[str, ...] = setting(MASK_TYPES, choices=MASK_TYPES, metavar="TYPE", help="mask types to score")
    mask_ratios: tuple[float, ...] = setting(DEFAULT_SCORE_RATIOS, metavar="R", help="mask ratios to sweep")
    num_vids: int | None = setting(None, metavar="K", help="draw K of the videos at random with --seed")
    seed: int = setting(0, metavar="S", help="seeds the random masks and the draw of videos")
    autorotate: bool = setting(
        True, help="turn videos upright as players show them (display matrix); off: read them as stored"
    )


def to_rgb255(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised frames (N, C, T, H, W) to float RGB in [0, 255]: normalisation undone, clamped, not rounded."""
    shape = (1, -1, 1, 1, 1)
    mean_t = torch.tensor(mean, dtype=frames.dtype).view(shape)
    std_t = torch.tensor(std, dtype=frames.dtype).view(shape)
    return ((frames * std_t + mean_t) * 255).clamp(0, 255)


def masked_psnr(completion: torch.Tensor, original: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """PSNR per clip (N,) in dB of 0-255 frames (N, C, T, H, W) over the `removed` pixels (N, T, H, W)."""
    weight = removed.unsqueeze(1).to(completion.dtype)  # (N, 1, T, H, W)
    squared = ((completion.double() - original.double()) ** 2 * weight).sum(dim=(1, 2, 3, 4))
    mse = squared / (weight.sum(dim=(1, 2, 3, 4)) * completion.shape[1]).clamp(min=1)
    return 10 * torch.log10(255.0**2 / mse)  # mse 0: inf


def masked_ssim(
    completion: torch.Tensor, original: torch.Tensor, removed: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """SSIM per clip (N,) of 0-255 frames (N, C, T, H, W), its per-frame map averaged over `removed` (N, T, H, W).

    Each frame and channel gets the SSIM map of Wang et al. (2004): Gaussian-weighted local means, variances
    and covariance (window `window` px, `sigma`), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, reflect padding at
    the frame border; the map is averaged over channels, then over the removed pixels of all frames.
    """
    n, c, t, h, w = completion.shape
    # Frames and channels as a batch of one-channel images: (N * T * C, 1, H, W).
    a = completion.double().permute(0, 2, 1, 3, 4).reshape(n * t * c, 1, h, w)
    b = original.double().permute(0, 2, 1, 3, 4).reshape(n * t * c, 1, h, w)
    coords = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    pad = window // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        x = F.conv2d(x, kernel.view(1, 1, 1, -1))
        return F.conv2d(x, kernel.view(1, 1, -1, 1))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    ssim_map = ssim_map.reshape(n, t, c, h, w).mean(dim=2)  # (N, T, H, W)
    weight = removed.double()
    return (ssim_map * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp(min=1)


def baseline_completion(frames: torch.Tensor, removed: torch.Tensor, method: str) -> torch.Tensor:
    """A baseline's prediction of every pixel, (N, C, T, H, W) normalised, from the visible ones of `frames`.

    `removed` (N, T, H, W) bool marks the pixels a method may not see; `method` is one of `BASELINES` (see
    the module doc). Visible pixels of the prediction are those of `frames`.
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; valid: {', '.join(BASELINES)}")
    if method == "mean":
        return torch.where(removed.unsqueeze(1), torch.zeros_like(frames), frames)
    t = frames.shape[2]
    visible = ~removed  # (N, T, H, W)
    index = torch.arange(t).view(1, t, 1, 1).expand_as(visible)
    # The last visible frame at or before each frame (-1: none), and the first at or after it (t: none).
    before = torch.where(visible, index, torch.full_like(index, -1)).cummax(dim=1).values
    after = torch.where(visible, index, torch.full_like(index, t)).flip(1).cummin(dim=1).values.flip(1)
    has_before, has_after = before >= 0, after < t

    def at(frame_index: torch.Tensor) -> torch.Tensor:  # (N, T, H, W) frame indices -> (N, C, T, H, W) values
        return torch.gather(frames, 2, frame_index.clamp(0, t - 1).unsqueeze(1).expand_as(frames))

    from_before, from_after = at(before), at(after)
    if method == "nearest_frame":
        take_after = has_after & (~has_before | (after - index < index - before))  # ties go to the earlier frame
        prediction = torch.where(take_after.unsqueeze(1), from_after, from_before)
    else:
        span = (after - before).clamp(min=1).to(frames.dtype)
        weight_after = ((index - before).to(frames.dtype) / span).unsqueeze(1)
        blend = from_before + weight_after * (from_after - from_before)
        prediction = torch.where(
            (has_before & has_after).unsqueeze(1), blend, torch.where(has_after.unsqueeze(1), from_after, from_before)
        )
    seen = (has_before | has_after).unsqueeze(1)
    return torch.where(seen, prediction, torch.zeros_like(frames))


def baseline_patch_loss(target: torch.Tensor, pred: torch.Tensor, method: str, norm_pix_loss: bool) -> torch.Tensor:
    """A baseline's loss of every patch (N, L), as the model's loss is computed: the mean squared error between
    its predicted patches `pred` and the target patches (N, L, D), both standardised per patch with
    `norm_pix_loss` (a baseline predicts pixels, a norm-pix model standardised patches; `mean` predicts 0, the
    standardised patches' mean, so it is taken as it is).
    """
    loss_pred = standardise_patches(pred) if norm_pix_loss and method != "mean" else pred
    return patch_loss(target, loss_pred, norm_pix_loss)


def baselines_for(mask_type: str, baselines: Sequence[str] = BASELINES) -> tuple[str, ...]:
    """The baselines among `baselines` that are scored for `mask_type` (`interpolate` not for temporal)."""
    return tuple(b for b in baselines if not (b == "interpolate" and mask_type == "temporal"))


def score_clip(
    models: Mapping[str, VideoMAE],
    clip: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    video: str = "",
    mask_types: Sequence[str] = MASK_TYPES,
    mask_ratios: Sequence[float] = DEFAULT_SCORE_RATIOS,
    baselines: Sequence[str] = BASELINES,
    generator: torch.Generator | None = None,
    norm_pix_loss: bool | None = None,
    precision: Precision | str = "fp32",
) -> list[Score]:
    """Score each of `models` (name -> MAE) and the `baselines` on one normalised clip (C, T, H, W).

    Every mask type x mask ratio gives one shared mask (random masks from one noise drawn from `generator`,
    see the module doc); each method's completion is scored with `loss`, `psnr`, `ssim` on the removed
    patches, its `mean`/`std` undoing the normalisation. All models must share the token grid. The
    baselines' loss follows `norm_pix_loss` (default: the models' common setting; False without models).
    Models run at `precision` (`hvm1.devices.resolve_precision`; default fp32), scores are computed in
    float32/float64. Rows come in the order mask type, ratio, models (in `models`' order), baselines.
    """
    for ratio in mask_ratios:
        check_mask_ratio(ratio)
    for mask_type in mask_types:
        if mask_type not in MASK_TYPES:
            raise ValueError(f"unknown mask_type {mask_type!r}; valid: {', '.join(MASK_TYPES)}")
    for method in baselines:
        if method not in BASELINES:
            raise ValueError(f"unknown baseline {method!r}; valid: {', '.join(BASELINES)}")
    if not models:
        raise ValueError("score_clip needs at least one model (it fixes the token grid)")
    names = list(models)
    first = models[names[0]]
    grid = first.prediction_grid()
    for name in names[1:]:
        other = models[name].prediction_grid()
        if other != grid or models[name].config.num_frames != first.config.num_frames:
            raise ValueError(
                f"models {names[0]!r} and {name!r} cut clips into different token grids "
                f"({other} vs {grid}); scores are compared on one shared mask"
            )
    if norm_pix_loss is None:
        settings = {models[name].config.norm_pix_loss for name in names}
        if len(settings) > 1:
            raise ValueError("the models differ in norm_pix_loss; pass norm_pix_loss= for the baselines' loss")
        norm_pix_loss = settings.pop()
    batch = clip.unsqueeze(0).float()  # (1, C, T, H, W)
    target = first.target_frames(batch)  # (1, C, T', H, W)
    target_patches = grid.patchify(target)
    original255 = to_rgb255(target, mean, std)
    noise = mask_noise("random", 1, grid.num_tokens, generator=generator) if "random" in mask_types else None
    rows: list[Score] = []

    def add(
        mask_type: str, ratio: float, method: str, pred_patches: torch.Tensor, loss: torch.Tensor, mask: torch.Tensor
    ) -> None:
        removed = grid.pixel_mask(mask)
        completion = torch.where(removed.unsqueeze(1), grid.unpatchify(pred_patches, target.shape[1]), target)
        completion255 = to_rgb255(completion, mean, std)
        rows.append(
            Score(
                video,
                mask_type,
                float(ratio),
                method,
                float(loss[0]),
                float(masked_psnr(completion255, original255, removed)[0]),
                float(masked_ssim(completion255, original255, removed)[0]),
            )
        )

    for mask_type in mask_types:
        for ratio in mask_ratios:
            type_noise = noise if mask_type == "random" else None
            mask = make_masking(mask_type, ratio, 1, grid.num_tokens, noise=type_noise).mask  # (1, L)
            for name in names:
                model = models[name]
                parameter = next(model.parameters())
                with torch.inference_mode(), resolve_precision(precision, parameter.device).autocast(parameter.device):
                    _, pred, model_mask = model(
                        batch.to(parameter.device, parameter.dtype),
                        mask_ratio=ratio,
                        mask_type=mask_type,
                        noise=None if type_noise is None else type_noise.to(parameter.device),
                    )
                pred, model_mask = pred.to("cpu", torch.float32), model_mask.to("cpu", torch.float32)
                if not torch.equal(model_mask, mask):
                    raise RuntimeError(f"model {name!r} masked other tokens than the shared {mask_type} mask")
                loss = masked_mean(model.forward_loss(target_patches, pred, reduction="none"), mask, dim=1)
                if model.config.norm_pix_loss:  # back to pixels with each target patch's own mean and variance
                    pred = unstandardise_patches(pred, target_patches)
                add(mask_type, ratio, name, pred, loss, mask)
            removed = grid.pixel_mask(mask)
            for method in baselines_for(mask_type, baselines):
                pred = grid.patchify(baseline_completion(target, removed, method))
                loss = masked_mean(baseline_patch_loss(target_patches, pred, method, norm_pix_loss), mask, dim=1)
                add(mask_type, ratio, method, pred, loss, mask)
    return rows


def score_videos(
    models: Mapping[str, VideoMAE],
    videos: Sequence[str | os.PathLike],
    *,
    preprocessing: Preprocessing | None = None,
    mask_types: Sequence[str] = MASK_TYPES,
    mask_ratios: Sequence[float] = DEFAULT_SCORE_RATIOS,
    baselines: Sequence[str] = BASELINES,
    seed: int = 0,
    precision: Precision | str = "fp32",
    progress: Progress = SILENT,
) -> ScoreReport:
    """`score_clip` on each of `videos`, read with the published visualisation preset at the models' size.

    `preprocessing` gives the mean/std (default: the first model's). A video's random masks are seeded by
    `seed` and its file name (`hvm1.data.file_generator`), so it gets the same masks whichever videos run
    beside it. A video whose reading raises anything is reported in the result's `skipped` with the reason;
    the others are still scored.
    """
    from hvm1.data import file_generator

    if not models:
        raise ValueError("score_videos needs at least one model")
    first = next(iter(models.values()))
    config = first.config
    preset = (preprocessing or preprocessing_for(first)).at_size(config.img_size, config.num_frames).visualisation()
    report = ScoreReport(videos=len(videos), models=tuple(models))
    for video, _, clip in each_video(videos, preset, report.skipped, progress):
        report.scores.extend(
            score_clip(
                models,
                clip,
                preset.mean,
                preset.std,
                video=str(video),
                mask_types=mask_types,
                mask_ratios=mask_ratios,
                baselines=baselines,
                generator=file_generator(seed, video),
                precision=precision,
            )
        )
    return report


def write_scores(scores: Sequence[Score], path: str | os.PathLike) -> Path:
    """Write `scores` as CSV with the columns `SCORE_COLUMNS` (numbers in full precision, `inf` as inf)."""
    from hvm1.files import write_atomically

    def write(handle) -> None:
        import io

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(SCORE_COLUMNS)
        for s in scores:
            writer.writerow(
                [s.video, s.mask_type, repr(s.mask_ratio), s.method, repr(s.loss), repr(s.psnr), repr(s.ssim)]
            )
        handle.write(text.getvalue().encode())

    return write_atomically(Path(path), write)


def read_scores(path: str | os.PathLike) -> list[Score]:
    """Read a file `write_scores` wrote."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != SCORE_COLUMNS:
            raise ValueError(f"{path}: expected the columns {','.join(SCORE_COLUMNS)}, got {reader.fieldnames}")
        return [
            Score(
                row["video"],
                row["mask_type"],
                float(row["mask_ratio"]),
                row["method"],
                float(row["loss"]),
                float(row["psnr"]),
                float(row["ssim"]),
            )
            for row in reader
        ]


def summarise(scores: Sequence[Score]) -> list[Score]:
    """The mean of each metric over videos, per mask type, mask ratio and method (video `"mean"`), in the
    order they first appear. PSNR is averaged in dB; one infinite PSNR makes the mean infinite."""
    groups: dict[tuple[str, float, str], list[Score]] = defaultdict(list)
    for s in scores:
        groups[(s.mask_type, s.mask_ratio, s.method)].append(s)
    return [
        Score(
            "mean", mask_type, ratio, method, *(math.fsum(getattr(s, m) for s in group) / len(group) for m in METRICS)
        )
        for (mask_type, ratio, method), group in groups.items()
    ]


def plot_scores(scores: Sequence[Score], path: str | os.PathLike, title: str | None = None) -> Path:
    """A PNG of each metric (rows: loss, PSNR, SSIM) against the mask ratio per mask type (columns), one line
    per method, each point the mean over videos. Infinite PSNRs are drawn at the top of their axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = summarise(scores)
    mask_types = list(dict.fromkeys(s.mask_type for s in summary))
    methods = list(dict.fromkeys(s.method for s in summary))
    labels = {"loss": "loss (normalised)", "psnr": "PSNR (dB)", "ssim": "SSIM"}
    figure = Figure(figsize=(3.2 * len(mask_types), 7.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(METRICS), len(mask_types), squeeze=False, sharex=True)
    finite_psnr = [s.psnr for s in summary if math.isfinite(s.psnr)]
    psnr_top = (max(finite_psnr) + 5) if finite_psnr else 60.0
    for column, mask_type in enumerate(mask_types):
        for row, metric in enumerate(METRICS):
            ax = axes[row][column]
            for method in methods:
                points = sorted(
                    (s.mask_ratio, getattr(s, metric))
                    for s in summary
                    if s.mask_type == mask_type and s.method == method
                )
                if not points:
                    continue
                xs = [x for x, _ in points]
                ys = [min(y, psnr_top) if metric == "psnr" else y for _, y in points]
                ax.plot(xs, ys, marker="o", markersize=3, label=method)
            if row == 0:
                ax.set_title(mask_type)
            if column == 0:
                ax.set_ylabel(labels[metric])
            if row == len(METRICS) - 1:
                ax.set_xlabel("mask ratio")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def score(config: ScoreConfig, progress: Progress = SILENT) -> ScoreReport:
    """`hvm1 score`: load every model the config names, `score_videos`, and write `scores.csv` and `scores.png`.

    Args:
        config: The command's settings.
        progress: Told of the precision, and each video done.

    Returns:
        The scores, the files written and the videos skipped.

    Raises:
        ValueError: No model named, or two models of one name.
    """
    from hvm1.devices import resolve_device
    from hvm1.files import output_folder
    from hvm1.inference import precision_for_run
    from hvm1.zoo import file_stem, load_model

    videos = drawn_videos(config.paths, config.num_vids, config.seed, progress)
    sources: list[str | Path] = [*config.models, *config.checkpoints]
    if not sources:
        raise ValueError("name at least one --model NAME or --checkpoint FILE")
    device = resolve_device(config.device)
    models: dict[str, VideoMAE] = {}
    for source in sources:
        name = file_stem(source) if isinstance(source, Path) else source
        if name in models:
            raise ValueError(f"two models are named {name!r}; scores are told apart by name")
        models[name] = cast(VideoMAE, load_model(source, model_type="mae", device=device, **config.overrides))
    first = next(iter(models.values()))
    preprocessing = dataclasses.replace(preprocessing_for(sources[0], first), autorotate=config.autorotate)
    out_dir = output_folder(config.out_dir, "score")
    precision = precision_for_run(config.precision, device, models.values(), progress)
    progress.keeping(f"nothing was written (scores go to {out_dir} when every video is scored)")
    report = score_videos(
        models,
        videos,
        preprocessing=preprocessing,
        mask_types=config.mask_types,
        mask_ratios=config.mask_ratios,
        seed=config.seed,
        precision=precision,
        progress=progress,
    )
    report.out_dir = out_dir
    if report.scores:
        report.written.append(write_scores(report.scores, out_dir / "scores.csv"))
        report.written.append(plot_scores(report.scores, out_dir / "scores.png", title=", ".join(models)))
    return report
