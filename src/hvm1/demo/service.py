"""What the demo page runs, without the page: one shared model, uploads checked against limits, one run at a time.

`DemoService` holds the loaded MAE (and optionally a ViT for attention and PCA feature maps), checks an
upload's size and duration before decoding it, reads it with the published visualisation preset, and makes
the completion picture, its animation, completion scores and the ViT's pictures. Runs take a lock, so however
the page calls it the model works on one clip at a time. Everything it writes goes under its own `workdir`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hvm1.data import VideoError, video_duration
from hvm1.devices import Precision, resolve_precision
from hvm1.eval.classify import RankedClass, top_classes
from hvm1.eval.scores import baseline_completion, baselines_for, masked_psnr, masked_ssim, to_rgb255
from hvm1.models import VideoMAE, VideoViT
from hvm1.models.masking import check_mask_ratio
from hvm1.progress import SILENT, Progress
from hvm1.viz import (
    Completion,
    attention_grid,
    attention_maps,
    complete_clip,
    completion_fps,
    completion_frames,
    completion_grid,
    mp4_encoder,
    write_animation,
)
from hvm1.viz.grid import H264_ENCODERS  # the encoders whose MP4 a browser plays
from hvm1.viz.pca import feature_map_grid, patch_token_grid, pca_feature_maps
from hvm1.viz.runs import picture_preset  # the preset complete_videos reads with, so page and CLI agree
from hvm1.zoo import Preprocessing

logger = logging.getLogger(__name__)

#: How many of a finetuned ViT's classes the demo names, most probable first.
DEMO_TOP_K = 5

# Result folders kept on disk: the page copies a result's files into its own cache as it sends them, so
# only the newest few (the one being sent and the one before) are still needed.
_RESULTS_KEPT = 2


class DemoInputError(ValueError):
    """An upload the demo refuses or cannot read; the message is meant for the person who uploaded it."""


@dataclass(frozen=True)
class UploadLimits:
    """The largest upload the demo takes: `max_megabytes` on disk and `max_seconds` of video."""

    max_megabytes: float = 200.0
    max_seconds: float = 600.0

    @property
    def max_bytes(self) -> int:
        """`max_megabytes` in bytes (1 MB = 10^6 bytes)."""
        return int(self.max_megabytes * 1_000_000)


@dataclass(frozen=True)
class DemoClips:
    """One video read for the loaded models: the MAE's input and the ViT's (None without a ViT), normalised."""

    name: str
    mae: torch.Tensor  # (C, T, H, W)
    vit: torch.Tensor | None


@dataclass(frozen=True)
class MethodScore:
    """How well one method filled the removed patches: PSNR (dB) and SSIM there (see `hvm1.eval.scores`)."""

    method: str
    psnr: float
    ssim: float


@dataclass(frozen=True)
class DemoResult:
    """One completion: the picture (3 rows x T' frames, uint8), its animation file (`animation_format`), the
    attention picture and the PCA feature-map picture (None without a ViT), the ViT's `top_classes` on the clip
    (a finetuned ViT whose classes have names; empty otherwise), the MAE loss, the scores of the
    MAE and of the baselines that need no model on the same mask (empty when not asked for or not yet made),
    the seconds the completion took and the seconds so far, the precision, and whether all is `done`."""

    picture: np.ndarray
    animation: Path
    attention: np.ndarray | None
    feature_maps: np.ndarray | None
    loss: float
    scores: tuple[MethodScore, ...]
    seconds: float
    completion_seconds: float
    precision: str
    mask_type: str
    mask_ratio: float
    seed: int
    done: bool
    top_classes: tuple[RankedClass, ...] = ()


class DemoService:
    """The models and work behind the demo page, shared by every visitor.

    `mae` completes clips; `vit` (optional) draws the last block's CLS attention. `mae_preprocessing` /
    `vit_preprocessing` give each model's mean/std (default: `preprocessing_for(model)`). Both models run at
    `precision` (see `hvm1.devices.resolve_precision`, resolved once on the MAE's device; default fp32).
    Files go under `workdir`, which the caller creates and removes.
    """

    def __init__(
        self,
        mae: VideoMAE,
        workdir: str | os.PathLike,
        *,
        mae_name: str,
        mae_preprocessing: Preprocessing | None = None,
        vit: VideoViT | None = None,
        vit_name: str | None = None,
        vit_preprocessing: Preprocessing | None = None,
        limits: UploadLimits = UploadLimits(),
        precision: Precision | str = "fp32",
    ) -> None:
        if not isinstance(mae, VideoMAE):
            raise TypeError(f"the demo completes clips with a VideoMAE, got {type(mae).__name__}")
        if vit is not None and not isinstance(vit, VideoViT):
            raise TypeError(f"attention maps need a VideoViT, got {type(vit).__name__}")
        self.mae, self.vit = mae, vit
        self.mae_name, self.vit_name = mae_name, vit_name
        self.limits = limits
        self.device = next(mae.parameters()).device
        self.precision = resolve_precision(precision, self.device)
        self.workdir = Path(workdir)
        self._mae_preset = picture_preset(mae, mae_preprocessing)
        self._vit_preset = None if vit is None else picture_preset(vit, vit_preprocessing)
        # Browsers play H.264 MP4; MPEG-4 Part 2 (a PyAV build without an H.264 encoder) only as a GIF.
        self.animation_format = "mp4" if mp4_encoder() in H264_ENCODERS else "gif"
        self._lock = threading.Lock()
        self._runs = 0

    @property
    def precision_text(self) -> str:
        """The precision and device the models compute in, e.g. 'fp32 on cpu' or 'bf16 autocast on cuda'."""
        return f"{self.precision.describe()} on {self.device.type}"

    def check_upload(self, path: str | os.PathLike, name: str | None = None) -> None:
        """Refuse an upload over the limits, no longer there, or that is no video: `DemoInputError` naming it
        (`name`, default the file name) and the reason, never the server-side path. Reads only the header,
        never decodes.

        Args:
            path: the uploaded file.
            name: the name the visitor knows it by (default the file name).

        Raises:
            DemoInputError: the upload is refused (its name and the reason).
        """
        path = Path(path)
        name = name or path.name
        try:
            size = path.stat().st_size
        except OSError as error:  # its message would show the server-side path
            reason = (
                "is no longer on the server: upload it again"
                if isinstance(error, FileNotFoundError)
                else (f"cannot be opened ({error.strerror or type(error).__name__})")
            )
            raise DemoInputError(f"{name} {reason}") from None
        if size > self.limits.max_bytes:
            raise DemoInputError(
                f"{name} is {size / 1e6:.1f} MB; this demo takes videos up to {self.limits.max_megabytes:g} MB"
            )
        try:
            seconds = video_duration(path)
        except VideoError as error:
            raise DemoInputError(f"{name} {_reason(error)}") from None
        if seconds is not None and seconds > self.limits.max_seconds:
            raise DemoInputError(
                f"{name} is {seconds:.0f} s long; this demo takes videos up to {self.limits.max_seconds:g} s"
            )

    def read(self, path: str | os.PathLike, name: str | None = None) -> DemoClips:
        """Check `path` (see `check_upload`) and read its clip for each loaded model (the published
        visualisation preset: the center clip, short side `img_size + 32`, center crop).

        Args:
            path: the uploaded file.
            name: the name the visitor knows it by (default the file name).

        Returns:
            The `DemoClips`: the clip as each loaded model reads it.

        Raises:
            DemoInputError: the upload is refused or cannot be read.
        """
        name = name or Path(path).name
        self.check_upload(path, name)
        try:
            mae_clip, _ = self._mae_preset.load(path)
            vit_clip = None
            if self._vit_preset is not None:
                same = self._vit_preset == self._mae_preset
                vit_clip = mae_clip if same else self._vit_preset.load(path)[0]
        except VideoError as error:
            raise DemoInputError(f"{name} {_reason(error)}") from None
        except OSError as error:  # gone or unreadable between the check and the read
            raise DemoInputError(f"{name} cannot be read ({error.strerror or type(error).__name__})") from None
        return DemoClips(name, mae_clip, vit_clip)

    def stages(
        self,
        clips: DemoClips,
        mask_type: str = "center",
        mask_ratio: float = 0.5,
        seed: int = 0,
        progress: Progress = SILENT,
        score: bool = True,
    ) -> Iterator[DemoResult]:
        """Complete `clips` with the MAE (random masks drawn from `seed`) and yield the result as it grows.

        First the completion picture and animation, then (unless `score` is False) with the scores against
        the baselines, then (with a ViT) with the attention and PCA feature maps; `done` marks the last.
        Each stage holds the service's lock, so the models work on one clip at a time whoever calls.

        Args:
            clips: what `read` returned.
            mask_type: 'random', 'temporal' or 'center'.
            mask_ratio: the fraction of tokens removed.
            seed: the seed of random masks.
            progress: gets a stage of the steps ('demo'): a note saying what each step does as it begins, the
                steps done advanced before it.
            score: also score the completion against the baselines.

        Yields:
            The `DemoResult` as it grows; its `done` marks the last.
        """
        check_mask_ratio(mask_ratio)
        vit, vit_preset, vit_clip = self.vit, self._vit_preset, clips.vit
        with_vit = vit is not None and vit_clip is not None
        steps = ["complete", "draw", *(["score"] if score else []), *(["attention", "pca"] if with_vit else [])]

        def step(name: str, text: str) -> None:
            progress.advance(steps.index(name))
            progress.note(text)

        progress.start(len(steps), "step", "demo")

        start = time.perf_counter()
        with self._lock:
            step("complete", "masking and completing")
            generator = torch.Generator().manual_seed(int(seed))
            completion = complete_clip(self.mae, clips.mae, mask_type, mask_ratio, generator, self.precision)
            preset = self._mae_preset
            step("draw", "drawing the completion")
            picture = completion_grid(completion, preset.mean, preset.std)
            frames = completion_frames(completion, preset.mean, preset.std)
            fps = completion_fps(self.mae, preset.sampling_rate, preset.target_fps)
            animation = write_animation(frames, self._result_folder() / f"completion.{self.animation_format}", fps)
        seconds = time.perf_counter() - start
        result = DemoResult(
            picture=picture,
            animation=animation,
            attention=None,
            feature_maps=None,
            loss=completion.loss,
            scores=(),
            seconds=seconds,
            completion_seconds=seconds,
            precision=self.precision_text,
            mask_type=mask_type,
            mask_ratio=mask_ratio,
            seed=int(seed),
            done=len(steps) == 2,
        )
        logger.info("completed %s (%s %.2f) in %.2f s", clips.name, mask_type, mask_ratio, seconds)
        yield result
        if score:
            with self._lock:
                step("score", "scoring against the baselines")
                scores = _scores(completion, preset.mean, preset.std, mask_type)
            result = dataclasses.replace(
                result, scores=scores, seconds=time.perf_counter() - start, done=steps[-1] == "score"
            )
            yield result
        if vit is not None and vit_preset is not None and vit_clip is not None:
            with self._lock:
                step("attention", "attention maps")
                maps = attention_maps(vit, vit_clip, self.precision)[0]
                attention = attention_grid(vit_clip, maps, vit_preset.mean, vit_preset.std)
                step("pca", "PCA feature maps")
                with self.precision.autocast(self.device):
                    tokens = patch_token_grid(vit, vit_clip)  # (t, h, w, C)
                colours = pca_feature_maps(tokens[None]).maps[0]
                feature_maps = feature_map_grid(
                    vit_clip, colours, vit_preset.mean, vit_preset.std, vit.config.t_patch_size
                )
                top: tuple[RankedClass, ...] = ()
                if vit.class_names is not None:
                    with torch.inference_mode(), self.precision.autocast(self.device):
                        logits = vit(vit_clip[None].to(self.device)).float().cpu()[0]  # (classes,)
                    top = tuple(top_classes(logits, vit.class_names, DEMO_TOP_K))
            result = dataclasses.replace(
                result,
                attention=attention,
                feature_maps=feature_maps,
                top_classes=top,
                seconds=time.perf_counter() - start,
                done=True,
            )
            yield result
        progress.advance(len(steps))
        progress.close()

    def _result_folder(self) -> Path:
        """A new folder for one run's files; older ones beyond the newest few are removed."""
        self._runs += 1
        results = self.workdir / "results"
        folder = results / f"{self._runs:06d}"
        folder.mkdir(parents=True)
        for old in sorted(results.iterdir())[:-_RESULTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
        return folder


def _scores(completion: Completion, mean, std, mask_type: str) -> tuple[MethodScore, ...]:
    """PSNR and SSIM on the removed pixels of the MAE's completion and of each baseline's, as `hvm1 score`
    computes them, from the completion already made (no second forward pass)."""
    original = to_rgb255(completion.original, mean, std)
    removed = completion.removed
    methods = {"MAE": completion.completion}
    for method in baselines_for(mask_type):
        methods[method] = baseline_completion(completion.original, removed, method)
    return tuple(
        MethodScore(
            name,
            float(masked_psnr(to_rgb255(frames, mean, std), original, removed)[0]),
            float(masked_ssim(to_rgb255(frames, mean, std), original, removed)[0]),
        )
        for name, frames in methods.items()
    )


def _reason(error: VideoError) -> str:
    """A VideoError's reason without the (temporary, server-side) path of the file."""
    return error.reason or "cannot be read"
