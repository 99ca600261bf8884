"""How each zoo model reads its inputs: `Preprocessing` (image size, frames, mean/std, image or video, and the
settings each command's preset takes), and its JSON form recorded in model files."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from hvm1.models import VideoViT, ViTConfig
from hvm1.settings import SizeSettings

if TYPE_CHECKING:  # the data layer is imported when a preset is built, not with hvm1
    from hvm1.data.transforms import ImagePreset, ImageTrainPreset, VideoPreset

#: Published HVM-1 video normalisation (every channel), and ImageNet's, used by the published image
#: finetuning and testing. The only definition: the data layer takes statistics as plain numbers.
VIDEO_MEAN = (0.45, 0.45, 0.45)

VIDEO_STD = (0.225, 0.225, 0.225)

IMAGENET_MEAN = (0.485, 0.456, 0.406)

IMAGENET_STD = (0.229, 0.224, 0.225)

# The key under which a converted file, or a training checkpoint's args, records a model's preprocessing.
PREPROCESSING_METADATA_KEY = "hvm1_preprocessing"


def _size_defaults(img_size: int) -> dict[str, Any]:
    # For models outside the zoo only (zoo entries carry the published values): the published 448 px run
    # trained at short side 448, mask ratio 0.95 and base lr 6e-4; the 224 px runs jittered the short side in
    # [256, 320] (scaled here for other sizes), at mask ratio 0.9 and base lr 1.2e-3.
    if img_size >= 448:
        return {"train_short_side": img_size, "mask_ratio": 0.95, "blr": 6e-4}
    return {
        "train_short_side": (round(img_size * 256 / 224), round(img_size * 320 / 224)),
        "mask_ratio": 0.9,
        "blr": 1.2e-3,
    }


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """Everything about a model's inputs, and the preset of each command (timm's pretrained config).

    A clip is `num_frames` frames scaled to [0, 1] and normalised per channel with `mean` / `std`;
    `single_image`: the model was finetuned on one image repeated to `num_frames` frames (imagenet-2pt), so
    `evaluate` reads images. The presets: `visualisation()` (complete, attention), `evaluation()` (embed,
    evaluate on videos), `image_evaluation()` (evaluate on images), `training()` (pretrain, finetune).
    `train_short_side`, `mask_ratio` (pretraining) and `blr` (finetuning base lr) are the published
    training settings; left None they take the values for the image size (see `_size_defaults`).
    `autorotate` (every preset's): videos turned by their display rotation and images by their EXIF
    orientation, as players show them (False: as stored); a way of reading files, not recorded with a model.
    """

    img_size: int
    num_frames: int
    mean: tuple[float, float, float] = VIDEO_MEAN
    std: tuple[float, float, float] = VIDEO_STD
    single_image: bool = False
    sampling_rate: int = 8  # embed, evaluate, pretrain, finetune: every 8th frame at target_fps
    visualisation_sampling_rate: int = 4
    target_fps: float = 30.0
    train_short_side: int | tuple[int, int] | None = None
    mask_ratio: float | None = None
    blr: float | None = None
    autorotate: bool = True

    def __post_init__(self) -> None:
        for name, value in _size_defaults(self.img_size).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def at_size(self, img_size: int, num_frames: int) -> Preprocessing:
        """The same preprocessing for a model built at another image size or frame count (e.g. with
        `--set img_size=448`): the size-bound training settings then take that size's values.

        Args:
            img_size: the model's image size.
            num_frames: the model's frame count.

        Returns:
            The preprocessing at that size.
        """
        if (img_size, num_frames) == (self.img_size, self.num_frames):
            return self
        resized: dict[str, Any] = {"img_size": img_size, "num_frames": num_frames}
        if img_size != self.img_size:
            resized |= dict.fromkeys(_size_defaults(img_size))
        return dataclasses.replace(self, **resized)

    def for_images(self) -> Preprocessing:
        """The preprocessing of this model finetuned on still images, as the published ImageNet finetuning
        did: ImageNet mean/std, one image repeated to `num_frames`."""
        return dataclasses.replace(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, single_image=True)

    def for_videos(self) -> Preprocessing:
        """The preprocessing of this model finetuned on videos, as the published video finetuning did: the
        video mean/std, clips of `num_frames` frames."""
        return dataclasses.replace(self, mean=VIDEO_MEAN, std=VIDEO_STD, single_image=False)

    def visualisation(self) -> VideoPreset:
        """`complete` and `attention`: every 4th frame from the center of the video, short side
        img_size + 32, center crop (the published visualisation)."""
        from hvm1.data.transforms import visualisation_preset

        preset = visualisation_preset(self.img_size, self.num_frames, self.mean, self.std)
        return dataclasses.replace(
            preset,
            sampling_rate=self.visualisation_sampling_rate,
            target_fps=self.target_fps,
            autorotate=self.autorotate,
        )

    def evaluation(self, crop: str = "center", sampling_rate: int | None = None) -> VideoPreset:
        """`embed` and `evaluate` on videos: short side img_size * 256 / 224, a center crop or (`crop`
        'uniform') the left, center and right crops; every `sampling_rate`-th frame (default the model's).

        Args:
            crop: 'center', or 'uniform' for the left, center and right crops.
            sampling_rate: take every `sampling_rate`-th frame (default the model's).

        Returns:
            The preset.
        """
        from hvm1.data.transforms import video_eval_preset

        preset = video_eval_preset(
            self.img_size, self.num_frames, self.mean, self.std, sampling_rate or self.sampling_rate, crop=crop
        )
        return dataclasses.replace(preset, target_fps=self.target_fps, autorotate=self.autorotate)

    def image_evaluation(self) -> ImagePreset:
        """`evaluate` on images: short side img_size + 32 (bicubic), center crop, normalised with this
        model's mean/std, repeated to `num_frames`."""
        from hvm1.data.transforms import image_eval_preset

        return dataclasses.replace(
            image_eval_preset(self.img_size, self.num_frames, self.mean, self.std), autorotate=self.autorotate
        )

    def training(
        self,
        crop_scale: tuple[float, float],
        sampling_rate: int | None = None,
        short_side: int | tuple[int, int] | None = None,
    ) -> VideoPreset:
        """`pretrain` and `finetune` on videos: a random start, short side `train_short_side` (or
        `short_side`; a range is drawn per clip), random resized crop of area `crop_scale` and aspect
        0.75-1.33, flip.

        Args:
            crop_scale: the range of the crop's area, as fractions of the frame's.
            sampling_rate: take every `sampling_rate`-th frame (default the model's).
            short_side: the short side before cropping (default `train_short_side`); a range is drawn per clip.

        Returns:
            The preset.
        """
        from hvm1.data.transforms import video_train_preset

        side = short_side if short_side is not None else self.train_short_side
        assert side is not None  # __post_init__ fills train_short_side
        preset = video_train_preset(
            self.img_size,
            self.num_frames,
            self.mean,
            self.std,
            side,
            crop_scale,
            sampling_rate or self.sampling_rate,
        )
        return dataclasses.replace(preset, target_fps=self.target_fps, autorotate=self.autorotate)

    def image_training(self, crop_scale: tuple[float, float]) -> ImageTrainPreset:
        """`finetune --images`: random resized crop of area `crop_scale` and aspect 0.75-1.33, flip,
        normalised with this model's mean/std, repeated to `num_frames`.

        Args:
            crop_scale: the range of the crop's area, as fractions of the image's.

        Returns:
            The preset.
        """
        from hvm1.data.transforms import ImageTrainPreset

        return ImageTrainPreset(self.img_size, self.num_frames, self.mean, self.std, crop_scale, self.autorotate)


def preprocessing_to_json(pre: Preprocessing) -> str:
    """`pre` as the JSON text a file records (see `PREPROCESSING_METADATA_KEY`); `autorotate`, how files are
    read rather than what the model takes, is left out.

    Args:
        pre: the preprocessing.

    Returns:
        The JSON text.
    """
    return json.dumps({key: value for key, value in dataclasses.asdict(pre).items() if key != "autorotate"})


def preprocessing_from_json(text: str) -> Preprocessing:
    """The `Preprocessing` a file recorded with `preprocessing_to_json` (fields it lacks take their defaults).

    Args:
        text: the JSON text.

    Returns:
        The preprocessing.
    """
    fields = json.loads(text)
    known = {f.name for f in dataclasses.fields(Preprocessing)}
    fields = {key: tuple(value) if isinstance(value, list) else value for key, value in fields.items() if key in known}
    return Preprocessing(**fields)


def sized_preprocessing(settings: SizeSettings, preprocessing: Preprocessing, model: torch.nn.Module) -> Preprocessing:
    """The loaded model's preprocessing at the settings' `img_size` and `num_frames` where given, reading inputs
    upright or as stored as `autorotate` says.

    Args:
        settings: the command's size settings (`img_size`, `num_frames`, `autorotate`).
        preprocessing: the model's preprocessing as loaded.
        model: the loaded model.

    Returns:
        The preprocessing the command reads its inputs with.

    Raises:
        ValueError: A size the model can't divide into tokens (naming both).
    """
    config: ViTConfig = cast(VideoViT, model).config
    if settings.img_size and settings.img_size % config.patch_size:
        raise ValueError(
            f"img_size {settings.img_size} is not a multiple of the model's patch size {config.patch_size}"
        )
    if settings.num_frames and settings.num_frames % config.t_patch_size:
        raise ValueError(
            f"num_frames {settings.num_frames} is not a multiple of the model's tubelet {config.t_patch_size}"
        )
    sized = preprocessing.at_size(
        settings.img_size or preprocessing.img_size, settings.num_frames or preprocessing.num_frames
    )
    return dataclasses.replace(sized, autorotate=settings.autorotate)
