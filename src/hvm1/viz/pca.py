"""Feature maps: the patch tokens of a clip reduced to three principal components and shown as colours.

A clip's patch tokens form a (t, h, w, C) grid (t = frames / tubelet). One PCA is fitted jointly over the
tokens of every time step (and, with several clips in one fit, of every clip), so a colour means the same
feature in every frame and video; each of the first three components is min-max scaled over the fitted
tokens to [0, 1] and used as R, G, B. Optionally, as DINOv2 does, the first component separates foreground
from background: tokens whose scaled first component is at least `foreground_threshold` are on one side,
the others on the other, and the smaller side is taken as the foreground (the sign of a component is
arbitrary); the PCA is then refitted on the foreground tokens alone and the background drawn black.
A component's sign is fixed so that its largest loading is positive, so the same tokens give the same picture.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from hvm1.data import whole_frame_preset
from hvm1.devices import Precision, resolve_precision
from hvm1.models import VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.settings import setting
from hvm1.zoo import Preprocessing, preprocessing_for

from .grid import ANIMATION_FORMATS, make_grid, save_jpeg, to_uint8, write_animation
from .runs import RunReport, VideoRunConfig, Written, each_video, prepared_run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PCAFit:
    """A fitted reduction: `mean` (C,), `components` (3, C) rows of unit length, the `low`/`high` (3,) of the
    projections over the fitted tokens (for the min-max scaling), and each component's share of the variance."""

    mean: torch.Tensor
    components: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    explained: torch.Tensor

    def colours(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., C) to colours (..., 3) in [0, 1] (values beyond the fitted range are clipped)."""
        projected = (tokens.double() - self.mean) @ self.components.T
        return ((projected - self.low) / (self.high - self.low).clamp(min=1e-12)).clamp(0, 1)


@dataclass(frozen=True)
class FeatureMaps:
    """The colour maps of clips: `maps` (V, t, h, w, 3) float in [0, 1] (background black), `foreground`
    (V, t, h, w) bool or None when no foreground step ran, and the `fit` that made the colours."""

    maps: torch.Tensor
    foreground: torch.Tensor | None
    fit: PCAFit


def fit_pca(tokens: torch.Tensor, num_components: int = 3) -> PCAFit:
    """Fit a PCA to tokens (M, C) in float64 (SVD of the centred tokens); see the module doc for signs."""
    if tokens.ndim != 2 or tokens.shape[0] < 2:
        raise ValueError(f"a PCA needs tokens (M >= 2, C), got {tuple(tokens.shape)}")
    if tokens.shape[1] < num_components:
        raise ValueError(f"{num_components} components need at least that many channels, got {tokens.shape[1]}")
    x = tokens.double()
    mean = x.mean(dim=0)
    _, singular, vh = torch.linalg.svd(x - mean, full_matrices=False)
    components = vh[:num_components]
    biggest = components.abs().argmax(dim=1, keepdim=True)
    components = components * torch.gather(components, 1, biggest).sign()
    projected = (x - mean) @ components.T
    variance = singular**2
    return PCAFit(
        mean,
        components,
        projected.amin(dim=0),
        projected.amax(dim=0),
        variance[:num_components] / variance.sum().clamp(min=1e-300),
    )


def pca_feature_maps(
    tokens: torch.Tensor | Sequence[torch.Tensor], foreground_threshold: float | None = None
) -> FeatureMaps:
    """Colour maps of token grids (V, t, h, w, C) (or a list of (t, h, w, C) of one size) from one joint PCA.

    With `foreground_threshold` (in [0, 1], DINOv2 uses 0.5), the foreground step of the module doc runs.
    """
    grids = tokens if isinstance(tokens, torch.Tensor) else torch.stack(list(tokens))
    if grids.ndim != 5:
        raise ValueError(f"expected token grids (V, t, h, w, C), got {tuple(grids.shape)}")
    flat = grids.reshape(-1, grids.shape[-1])  # (V * t * h * w, C)
    fit = fit_pca(flat)
    if foreground_threshold is None:
        return FeatureMaps(fit.colours(grids).float(), None, fit)
    if not 0.0 <= foreground_threshold <= 1.0:
        raise ValueError(f"foreground_threshold must be in [0, 1], got {foreground_threshold}")
    above = fit.colours(flat)[:, 0] >= foreground_threshold
    chosen = above if int(above.sum()) <= len(above) - int(above.sum()) else ~above
    if int(chosen.sum()) < 4:
        raise ValueError(
            f"the foreground step kept {int(chosen.sum())} of {len(chosen)} tokens at threshold "
            f"{foreground_threshold}: too few to refit a PCA; try another threshold"
        )
    refit = fit_pca(flat[chosen])
    colours = torch.where(chosen.unsqueeze(1), refit.colours(flat), torch.zeros(1, dtype=torch.float64))
    return FeatureMaps(colours.reshape(*grids.shape[:-1], 3).float(), chosen.reshape(grids.shape[:-1]), refit)


def patch_token_grid(
    model: VideoViT, clip: torch.Tensor, layer: int | None = None, precision: Precision | str = "fp32"
) -> torch.Tensor:
    """The patch tokens of a normalised clip (C, T, H, W) as a grid (t, h, w, C), float32 on the CPU.

    `layer` None: the final-normed tokens (`forward_features`); an index: that block's output with the final
    norm applied (`forward_intermediates(indices=[layer], norm=True)`, negative from the end). The clip may
    have any size the model takes (H, W multiples of the patch, T of the tubelet). The model runs at
    `precision` (`hvm1.devices.resolve_precision`; default fp32).
    """
    if not isinstance(model, VideoViT):
        raise TypeError(
            f"feature maps need a VideoViT (an MAE's encoder: load with model_type='vit'), got {type(model).__name__}"
        )
    config = model.config
    _, frames, height, width = clip.shape
    grid = (frames // config.t_patch_size, height // config.patch_size, width // config.patch_size)
    parameter = next(model.parameters())
    batch = clip.unsqueeze(0).to(parameter.device, parameter.dtype)
    with torch.inference_mode(), resolve_precision(precision, parameter.device).autocast(parameter.device):
        if layer is None:
            tokens = model.forward_features(batch)
        else:
            tokens = model.forward_intermediates(batch, indices=[layer], norm=True)[0]
    return tokens[0, 1:].to("cpu", torch.float32).reshape(*grid, -1)  # CLS dropped; time-major order


def feature_map_tiles(
    clip: torch.Tensor, maps: torch.Tensor, mean: Sequence[float], std: Sequence[float], t_patch_size: int
) -> np.ndarray:
    """Tiles (2, t, H, W, 3) uint8: the first frame of each tubelet over its map, upsampled (nearest) to the frame."""
    frames = to_uint8(clip[:, ::t_patch_size], mean, std)  # (t, H, W, 3)
    return np.stack([frames, _map_tiles(maps, *frames.shape[1:3])])


def feature_map_grid(
    clip: torch.Tensor, maps: torch.Tensor, mean: Sequence[float], std: Sequence[float], t_patch_size: int
) -> np.ndarray:
    """The picture of one clip: frames (the first of each tubelet) over their feature maps (t, h, w, 3), 1 px
    padding."""
    return make_grid(feature_map_tiles(clip, maps, mean, std, t_patch_size))


def feature_map_frames(
    clip: torch.Tensor, maps: torch.Tensor, mean: Sequence[float], std: Sequence[float], t_patch_size: int
) -> np.ndarray:
    """Animation frames (T, H + 2, 2 * (W + 1) + 1, 3): every frame beside the map of its tubelet."""
    frames = to_uint8(clip, mean, std)  # (T, H, W, 3)
    colours = np.repeat(_map_tiles(maps, *frames.shape[1:3]), t_patch_size, axis=0)[: len(frames)]
    return np.stack([make_grid(np.stack([frames[i], colours[i]])[None]) for i in range(len(frames))])


def _map_tiles(maps: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Maps (t, h, w, 3) in [0, 1] to uint8 tiles (t, height, width, 3), each token a block of pixels."""
    upsampled = F.interpolate(maps.permute(0, 3, 1, 2), size=(height, width), mode="nearest")  # (t, 3, H, W)
    return (upsampled.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def pca_videos(
    model: VideoViT,
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    preprocessing: Preprocessing | None = None,
    layer: int | None = None,
    joint: bool = False,
    foreground_threshold: float | None = None,
    animate: str | None = None,
    precision: Precision | str = "fp32",
    progress: Progress = SILENT,
    full_frame: bool = False,
) -> RunReport:
    """Write a feature-map picture for each of `videos` to `out_dir/{stem}_{model_name}_pca.jpg`.

    Videos are read as `complete_videos` reads them (visualisation preset at `preprocessing`'s size and
    frames, default the model's; the model takes any size, its position embeddings interpolated); tokens come from
    `patch_token_grid(layer)`, colours from
    `pca_feature_maps`, fitted per video or, with `joint`, once over all videos read. `animate` ('mp4' or
    'gif') also writes each frame beside its map. `full_frame`: the whole frame at its aspect ratio
    (`hvm1.data.whole_frame_preset`) instead of a square crop. Unreadable videos are reported in `skipped`.
    """
    if animate is not None and animate not in ANIMATION_FORMATS:
        raise ValueError(f"animate must be one of {', '.join(ANIMATION_FORMATS)}, got {animate!r}")
    pre = preprocessing or preprocessing_for(model)
    preset = pre.visualisation()
    if full_frame:
        preset = whole_frame_preset(preset, model.config.patch_size)
    report = RunReport(out_dir=Path(out_dir), videos=len(videos))
    read: list[tuple[Path, Path, torch.Tensor, torch.Tensor]] = []
    t_patch = model.config.t_patch_size

    def write(video: Path, stem: Path, clip: torch.Tensor, maps: torch.Tensor) -> None:
        base = Path(out_dir) / stem.parent / f"{stem.name}_{model_name}_pca"
        files = [save_jpeg(feature_map_grid(clip, maps, preset.mean, preset.std, t_patch), f"{base}.jpg")]
        if animate:
            frames = feature_map_frames(clip, maps, preset.mean, preset.std, t_patch)
            files.append(write_animation(frames, f"{base}.{animate}", preset.target_fps / preset.sampling_rate))
        report.pictures.append(Written(video, tuple(files)))
        report.written.extend(files)

    for video, stem, clip in each_video(videos, preset, report.skipped, progress):
        tokens = patch_token_grid(model, clip, layer, precision)
        if joint:
            read.append((video, stem, clip, tokens))
        else:
            write(video, stem, clip, pca_feature_maps(tokens[None], foreground_threshold).maps[0])
    if read:
        maps = pca_feature_maps([tokens for *_, tokens in read], foreground_threshold).maps
        for (video, stem, clip, _), video_maps in zip(read, maps):
            write(video, stem, clip, video_maps)
    return report


@dataclass(frozen=True, kw_only=True)
class PcaConfig(VideoRunConfig):
    """`hvm1 pca`: a ViT's patch tokens reduced by PCA to 3 components, drawn as colours, one picture per video."""

    layer: int | None = setting(
        None,
        metavar="K",
        help="tokens of block K (0-based, negative from the end), final "
        "norm applied (default: the final-normed output)",
    )
    joint: bool = setting(False, help="one PCA across all the videos, so a colour means the same feature in each")
    foreground: float | None = setting(
        None,
        metavar="T",
        help="DINOv2's foreground step: split at T (e.g. 0.5) on "
        "the scaled first component, keep the smaller side, refit on it, draw the rest "
        "black",
    )
    animate: str | None = setting(
        None, choices=ANIMATION_FORMATS, help="also write each frame beside its map over time"
    )


def pca(config: PcaConfig, progress: Progress = SILENT) -> RunReport:
    """`hvm1 pca`: load the ViT the config names and `pca_videos` on its videos.

    Args:
        config: The command's settings.
        progress: Told of downloads, the precision, and each video done.

    Returns:
        The pictures written and the videos skipped.
    """
    with prepared_run(config, "vit", "pca", progress) as run:
        name = run.name if config.layer is None else f"{run.name}_layer{config.layer}"
        return pca_videos(
            cast(VideoViT, run.model),
            run.videos,
            run.out_dir,
            model_name=name,
            preprocessing=run.preprocessing,
            layer=config.layer,
            joint=config.joint,
            foreground_threshold=config.foreground,
            animate=config.animate,
            precision=run.precision,
            progress=progress,
            full_frame=config.full_frame,
        )
