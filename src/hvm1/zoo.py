"""The named HVM-1 models and `load_model`, the one entry point that turns a name or a file into a model.

Every published model is one row of `MODELS`: its hub file, architecture, and preprocessing. Names are
`x_y_z`: model type `x` (mae, vit), pretraining data `y` (hvm1 and kinetics at 224 px, hvm1@448 at 448 px),
finetuning data `z` (none, ssv2-{50,10}shot, kinetics-{50,10}shot, imagenet-2pt); `mae` exists only with
`none`. The files live in the hub repo `eminorhan/hvm-1` as `{y}_{z}.pth` (mae and vit `_none` share one).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from .checkpoint import (
    CheckpointContents,
    CheckpointError,
    as_dtype,
    attach_class_names,
    check_overrides,
    load_checkpoint,
    read_checkpoint,
    save_safetensors,
    shape_config,
)
from .labels import label_set
from .models import MAEConfig, VideoMAE, VideoViT, ViTConfig, build_model, get_config
from .progress import SILENT, Progress
from .settings import ModelSettings, SizeSettings

if TYPE_CHECKING:  # the data layer is imported when a preset is built, not with hvm1
    from .data.transforms import ImagePreset, ImageTrainPreset, VideoPreset

HUB_REPO = "eminorhan/hvm-1"

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
    return {"train_short_side": (round(img_size * 256 / 224), round(img_size * 320 / 224)), "mask_ratio": 0.9,
            "blr": 1.2e-3}


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
        from .data.transforms import visualisation_preset

        preset = visualisation_preset(self.img_size, self.num_frames, self.mean, self.std)
        return dataclasses.replace(preset, sampling_rate=self.visualisation_sampling_rate, target_fps=self.target_fps,
                                   autorotate=self.autorotate)

    def evaluation(self, crop: str = "center", sampling_rate: int | None = None) -> VideoPreset:
        """`embed` and `evaluate` on videos: short side img_size * 256 / 224, a center crop or (`crop`
        'uniform') the left, center and right crops; every `sampling_rate`-th frame (default the model's).

        Args:
            crop: 'center', or 'uniform' for the left, center and right crops.
            sampling_rate: take every `sampling_rate`-th frame (default the model's).

        Returns:
            The preset.
        """
        from .data.transforms import video_eval_preset

        preset = video_eval_preset(self.img_size, self.num_frames, self.mean, self.std,
                                   sampling_rate or self.sampling_rate, crop=crop)
        return dataclasses.replace(preset, target_fps=self.target_fps, autorotate=self.autorotate)

    def image_evaluation(self) -> ImagePreset:
        """`evaluate` on images: short side img_size + 32 (bicubic), center crop, normalised with this
        model's mean/std, repeated to `num_frames`."""
        from .data.transforms import image_eval_preset

        return dataclasses.replace(image_eval_preset(self.img_size, self.num_frames, self.mean, self.std),
                                   autorotate=self.autorotate)

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
        from .data.transforms import video_train_preset

        side = short_side if short_side is not None else self.train_short_side
        assert side is not None  # __post_init__ fills train_short_side
        preset = video_train_preset(
            self.img_size, self.num_frames, self.mean, self.std, side, crop_scale,
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
        from .data.transforms import ImageTrainPreset

        return ImageTrainPreset(self.img_size, self.num_frames, self.mean, self.std, crop_scale, self.autorotate)


@dataclass(frozen=True, kw_only=True)
class ZooEntry:
    """One named model: where its weights are, what architecture they fit, and how inputs are prepared.

    `config` fixes the architecture (`MAEConfig` for mae, `ViTConfig` for vit); image size, frames and class
    count are read from it. `preprocessing` is everything about its inputs, with each command's preset. `top1`
    is the published validation top-1 (%) of a finetuned model, else None. `labels` names the published label
    set of its head (`hvm1.labels.LABEL_SETS`), None without a head.
    """

    name: str
    model_type: str
    pretraining: str
    finetuning: str
    filename: str
    config: ViTConfig
    preprocessing: Preprocessing
    top1: float | None = None
    labels: str | None = None
    repo_id: str = HUB_REPO

    @property
    def img_size(self) -> int:
        """Input height and width in pixels (224 or 448)."""
        return self.config.img_size

    @property
    def num_frames(self) -> int:
        """Input frames per clip (16)."""
        return self.config.num_frames

    @property
    def num_classes(self) -> int:
        """Classes of the head: 0 (none), 174 (SSv2), 700 (Kinetics-700) or 1000 (ImageNet)."""
        return self.config.num_classes

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The names of the head's outputs in order (`hvm1.labels.label_set(labels)`), None without a head."""
        return label_set(self.labels) if self.labels else None


@dataclass(frozen=True)
class _Pretraining:
    img_size: int
    train_short_side: int | tuple[int, int]
    mask_ratio: float
    blr: float  # of the finetuning runs from it


@dataclass(frozen=True)
class _Finetuning:
    num_classes: int
    labels: str | None = None
    mean: tuple[float, float, float] = VIDEO_MEAN
    std: tuple[float, float, float] = VIDEO_STD
    single_image: bool = False


# The two axes of the zoo, in the published order; the table below is their product.
PRETRAININGS = {
    "hvm1": _Pretraining(224, (256, 320), 0.9, 1.2e-3),
    "hvm1@448": _Pretraining(448, 448, 0.95, 6e-4),
    "kinetics": _Pretraining(224, (256, 320), 0.9, 1.2e-3),
}
FINETUNINGS = {
    "none": _Finetuning(0),
    "ssv2-50shot": _Finetuning(174, "ssv2"),
    "ssv2-10shot": _Finetuning(174, "ssv2"),
    "kinetics-50shot": _Finetuning(700, "kinetics700"),
    "kinetics-10shot": _Finetuning(700, "kinetics700"),
    "imagenet-2pt": _Finetuning(1000, "imagenet1k", IMAGENET_MEAN, IMAGENET_STD, single_image=True),
}
# Published validation top-1 (%) of the saved finetuned checkpoints, single random view.
PUBLISHED_TOP1 = {
    ("hvm1", "ssv2-10shot"): 17.5, ("hvm1", "ssv2-50shot"): 35.2, ("hvm1", "kinetics-10shot"): 14.8,
    ("hvm1", "kinetics-50shot"): 32.0, ("hvm1", "imagenet-2pt"): 44.7,
    ("hvm1@448", "ssv2-10shot"): 16.8, ("hvm1@448", "ssv2-50shot"): 36.4, ("hvm1@448", "kinetics-10shot"): 16.9,
    ("hvm1@448", "kinetics-50shot"): 36.7, ("hvm1@448", "imagenet-2pt"): 52.3,
    ("kinetics", "ssv2-10shot"): 19.0, ("kinetics", "ssv2-50shot"): 38.2, ("kinetics", "kinetics-10shot"): 20.6,
    ("kinetics", "kinetics-50shot"): 37.3, ("kinetics", "imagenet-2pt"): 51.0,
}

# Published DAVIS-2017 label propagation with each pretraining's ImageNet-2% model (the official evaluation's
# global statistics).
PUBLISHED_DAVIS = {
    "hvm1": {"J&F-Mean": 0.563, "J-Mean": 0.545, "J-Recall": 0.636, "J-Decay": 0.209, "F-Mean": 0.582,
             "F-Recall": 0.685, "F-Decay": 0.253},
    "hvm1@448": {"J&F-Mean": 0.539, "J-Mean": 0.531, "J-Recall": 0.600, "J-Decay": 0.218, "F-Mean": 0.547,
                 "F-Recall": 0.619, "F-Decay": 0.297},
    "kinetics": {"J&F-Mean": 0.579, "J-Mean": 0.558, "J-Recall": 0.661, "J-Decay": 0.204, "F-Mean": 0.601,
                 "F-Recall": 0.712, "F-Decay": 0.248},
}


def _entry(model_type: str, pretraining: str, finetuning: str) -> ZooEntry:
    pre, fine = PRETRAININGS[pretraining], FINETUNINGS[finetuning]
    architecture = "mae_vit_huge_patch14" if model_type == "mae" else "vit_huge_patch14"
    config = get_config(architecture, img_size=pre.img_size, num_frames=16, num_classes=fine.num_classes)
    preprocessing = Preprocessing(
        img_size=pre.img_size, num_frames=16, mean=fine.mean, std=fine.std, single_image=fine.single_image,
        train_short_side=pre.train_short_side, mask_ratio=pre.mask_ratio, blr=pre.blr,
    )
    return ZooEntry(
        name=f"{model_type}_{pretraining}_{finetuning}", model_type=model_type, pretraining=pretraining,
        finetuning=finetuning, filename=f"{pretraining}_{finetuning}.pth", config=config,
        preprocessing=preprocessing, top1=PUBLISHED_TOP1.get((pretraining, finetuning)), labels=fine.labels,
    )


MODELS: dict[str, ZooEntry] = {
    entry.name: entry
    for pretraining in PRETRAININGS
    for entry in (
        _entry("mae", pretraining, "none"), *(_entry("vit", pretraining, fine) for fine in FINETUNINGS)
    )
}


class UnknownModelError(ValueError):
    """A model name that is not in the zoo (and not an existing file); the message lists the closest names."""


def get_available_models() -> list[str]:
    """The names of all published HVM-1 models, in the published order.

    Returns:
        The zoo names (`mae_hvm1_none`, `vit_hvm1@448_ssv2-10shot`, ...); `hvm1.load_model` accepts each.
    """
    return list(MODELS)


def get_model_entry(name: str) -> ZooEntry:
    """The zoo entry of a published model.

    Args:
        name: a zoo name, as `get_available_models` lists them.

    Returns:
        Its entry: file, architecture, preprocessing, class names.

    Raises:
        UnknownModelError: `name` is not in the zoo; the message lists the closest valid names.
    """
    try:
        return MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, MODELS, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"valid names: {', '.join(MODELS)}"
        raise UnknownModelError(f"unknown model {name!r} (not a zoo name, nor an existing file); {hint}") from None


def preprocessing_for(
    source: str | os.PathLike | ZooEntry | ViTConfig | torch.nn.Module, model: VideoViT | VideoMAE | None = None
) -> Preprocessing:
    """The preprocessing of a zoo name or entry, a checkpoint file, a model or a config.

    A file converted from a zoo model (`hvm1 convert NAME`) or written by `hvm1 pretrain`/`finetune` records
    its model's preprocessing; any other file, model or config gets the video mean/std and the settings for
    its image size and frames. A model doesn't know how it was trained: pass its zoo name or file when it
    has one (the imagenet-2pt models expect the ImageNet mean/std and one image repeated to 16 frames).

    Args:
        source: a zoo name or entry, a checkpoint file, a model or a config.
        model: the model built from `source` (overrides included): the preprocessing is then at that
            model's size and frames.

    Returns:
        Its `Preprocessing`: size, frames, mean/std, image or video, and each command's preset.

    Raises:
        UnknownModelError: a name that is neither in the zoo nor an existing file.
    """
    pre = _preprocessing_of(source)
    if model is not None:
        pre = pre.at_size(model.config.img_size, model.config.num_frames)
    return pre


def _preprocessing_of(source: str | os.PathLike | ZooEntry | ViTConfig | torch.nn.Module) -> Preprocessing:
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        return _recorded_preprocessing(read_checkpoint(source))
    if isinstance(source, (str, os.PathLike)):
        source = get_model_entry(str(source))
    if isinstance(source, ZooEntry):
        return source.preprocessing
    config = source if isinstance(source, ViTConfig) else getattr(source, "config", None)
    if not isinstance(config, ViTConfig):
        raise TypeError(
            f"expected a zoo name, file, ZooEntry, ViTConfig or hvm1 model, got {type(source).__name__}"
        )
    return Preprocessing(img_size=config.img_size, num_frames=config.num_frames)


def _recorded_preprocessing(contents: CheckpointContents) -> Preprocessing:
    recorded = contents.metadata.get(PREPROCESSING_METADATA_KEY) or contents.args.get(PREPROCESSING_METADATA_KEY)
    if recorded:
        return preprocessing_from_json(recorded)
    shapes = contents.config or shape_config(contents)
    if not {"img_size", "num_frames"} <= shapes.keys():
        raise CheckpointError(f"cannot tell the image size and frames of {contents.path} from its tensors")
    return Preprocessing(img_size=shapes["img_size"], num_frames=shapes["num_frames"])


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


def cached_path(
    name: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path | None:
    """The cached file zoo model `name` loads from (the whole file, or the weights-only one a first load
    fetched; `hub.is_weights_only` tells which), or None. Checked without network.

    Args:
        name: a zoo name.
        revision: the hub revision.
        cache_dir: the hub cache folder.

    Returns:
        The cached file, or None.
    """
    from .hub import cached_weights  # huggingface_hub (0.1 s to import) only where the hub is asked

    entry = get_model_entry(name)
    return cached_weights(entry.repo_id, entry.filename, revision=revision, cache_dir=cache_dir)


def weights_nbytes(name: str) -> int:
    """The bytes of the weights in zoo model `name`'s file (float32, as published): about what its first load
    downloads. The `_none` files hold the MAE, so `vit_*_none` fetches the decoder too.

    Args:
        name: a zoo name.

    Returns:
        The bytes.
    """
    entry = get_model_entry(name)
    stored = MODELS[f"mae_{entry.pretraining}_none"] if entry.finetuning == "none" else entry
    model = build_model(stored.config, device="meta")
    return sum(t.numel() * 4 for t in model.state_dict().values())


def _entry_config(entry: ZooEntry, model_type: str | None) -> tuple[str, ViTConfig]:
    model_type = model_type or entry.model_type
    if model_type == entry.model_type:
        return model_type, entry.config
    if model_type == "vit" and isinstance(entry.config, MAEConfig):
        return model_type, entry.config.encoder_config()
    raise ValueError(
        f"model {entry.name!r} is a {entry.model_type} and cannot be loaded as model_type={model_type!r}"
        + (f"; use {entry.name.replace('vit_', 'mae_', 1)!r}" if entry.finetuning == "none" else "")
    )


def _with_overrides(config: ViTConfig, overrides: dict[str, Any]) -> ViTConfig:
    overrides = check_overrides(overrides, type(config))
    return config.replace(**overrides) if overrides else config


def load_model(
    name_or_path: str | os.PathLike,
    *,
    pretrained: bool = True,
    model_type: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    full_download: bool = False,
    rules: Collection[str] = (),
    seed: int = 0,
    report: list[str] | None = None,
    **config_overrides: Any,
) -> VideoViT | VideoMAE:
    """Load an HVM-1 model by zoo name (see `get_available_models`) or from a checkpoint file, in eval mode.

    A zoo name fetches the weights in its file from the hub once, about a third of it (`hub.fetch_weights`:
    the optimizer state is skipped), builds the entry's architecture and loads the weights, which must fit it
    exactly. A file may be a published training checkpoint, a state dict, or a `.safetensors` file from
    `hvm1 convert`. Either way the file is read safely and memory-mapped (optimizer state is never read) into
    a model built on the meta device. A ViT with a head carries the names of its outputs as
    `model.class_names`: a zoo model's published label set, or the names a file records (`hvm1 convert`,
    `hvm1 finetune`); None where the file records none.

    Args:
        name_or_path: a zoo name or a checkpoint file.
        pretrained: False builds the architecture only, without downloading (randomly initialised, or empty
            with `device='meta'`).
        model_type: 'vit' builds the encoder alone from an MAE checkpoint; 'mae' or None: what the file holds.
        device: where the weights go (default: the CPU, memory-mapped from the file).
        dtype: the weights' dtype (default float32).
        revision: the hub revision of a zoo model's file.
        cache_dir: the hub cache folder (default: the `HF_*` environment's).
        full_download: download a zoo model's whole file, verified by its SHA-256, instead of its weights alone.
        rules: opt-in key rules: 'fresh-head' with `num_classes=N` replaces a missing head, or one of another
            class count, by a new one drawn with `seed` (weight normal(0, 0.02), bias as `nn.Linear` makes it).
        seed: the seed of a fresh head.
        report: a list that gets a line per rule that applied.
        **config_overrides: architecture fields, e.g. `num_heads=4` for a file whose width matches no named
            size, or `drop_path_rate=0.1` for finetuning.

    Returns:
        The model (`VideoViT` or `VideoMAE`) in eval mode.

    Raises:
        UnknownModelError: an unknown name that is not an existing file either.
        FileNotFoundError: a path that names no file.
        DownloadError: a zoo model's file can't be fetched.
        CheckpointError: the file is no checkpoint, or its tensors don't fit the architecture.
    """
    if Path(name_or_path).is_file():
        return load_checkpoint(
            name_or_path, pretrained=pretrained, model_type=model_type, device=device, dtype=dtype, rules=rules,
            seed=seed, report=report, **config_overrides,
        )
    name = str(name_or_path)
    if name not in MODELS and (os.sep in name or "/" in name or Path(name).suffix in (".pth", ".pt", ".safetensors")):
        raise FileNotFoundError(f"checkpoint file not found: {name}")
    entry = get_model_entry(name)
    model_type, config = _entry_config(entry, model_type)
    config = _with_overrides(config, config_overrides)
    if not pretrained:
        return attach_class_names(build_model(config, device=device), entry.class_names).to(as_dtype(dtype)).eval()
    if torch.device(device or "cpu").type == "meta":
        raise ValueError("device='meta' builds an empty model: pass pretrained=False with it")
    from .hub import fetch_weights  # huggingface_hub (0.1 s to import) only where the hub is asked

    path = fetch_weights(
        entry.repo_id, entry.filename, revision=revision, cache_dir=cache_dir, description=f"model {name!r}",
        load_hint=f"hvm1.load_model('/path/to/{entry.filename}', model_type={model_type!r})",
        full_download=full_download,
    )
    try:
        model = load_checkpoint(path, config=config, model_type=model_type, device=device, dtype=dtype, rules=rules,
                                seed=seed, report=report)
        return attach_class_names(model, entry.class_names)
    except CheckpointError as error:
        raise CheckpointError(f"model {name!r} ({entry.filename} from {entry.repo_id}): {error}") from None


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded for a command, with what the command needs to know about it: `source` (the zoo name,
    or the checkpoint file's resolved path), `stem` (for output file names: the zoo name or `file_stem`)
    and `preprocessing` (the entry's or the file's, at the size and frames the model was built with)."""

    model: torch.nn.Module
    source: str
    stem: str
    preprocessing: Preprocessing


def file_stem(path: str | os.PathLike) -> str:
    """The name output files give a checkpoint file: its stem, and for a training run's own checkpoints
    (`checkpoint-last.pth`, `-best`, `-previous`, the same in every run) the run folder's name before it:
    `runs/pre/checkpoint-last.pth` -> 'pre-last'.

    Args:
        path: the checkpoint file.

    Returns:
        The name.
    """
    path = Path(path)
    if path.stem.startswith("checkpoint-") and path.parent.name:
        return f"{path.parent.resolve().name}-{path.stem.removeprefix('checkpoint-')}"
    return path.stem


def load_for_inputs(
    name_or_path: str | os.PathLike,
    *,
    model_type: str | None = None,
    device: torch.device | str | None = None,
    img_size: int | None = None,
    full_download: bool = False,
    before_download: Callable[[ZooEntry], None] | None = None,
    **config_overrides: Any,
) -> LoadedModel:
    """`load_model` for a command that reads inputs: the model with its name and its preprocessing
    (`preprocessing_for(name_or_path, model)`).

    A zoo name is first built on the meta device, so a wrong model type, override or `img_size` fails before
    anything is downloaded; `before_download(entry)` is then called when its weights are not cached yet (a
    CLI says what it is about to fetch). `img_size`, when given, is the image size the caller requires:
    a model of another size is a ValueError naming both.

    Args:
        name_or_path: a zoo name or a checkpoint file.
        model_type: as `load_model` takes it.
        device: where the weights go.
        img_size: the image size the caller requires, if any: a model of another size is refused.
        full_download: download a zoo model's whole file.
        before_download: called with the zoo entry when its weights are not cached yet.
        **config_overrides: architecture fields.

    Returns:
        The `LoadedModel`: the model, its name and its preprocessing.

    Raises:
        ValueError: a model of another size than `img_size` (both named), a wrong model type or override.
    """
    is_file = Path(name_or_path).is_file()
    if not is_file and str(name_or_path) in MODELS:  # anything else: load_model names the missing file or name
        entry = MODELS[str(name_or_path)]
        if img_size and img_size != entry.img_size:
            raise ValueError(f"model {entry.name!r} takes {entry.img_size} px frames, not the {img_size} px asked for")
        load_model(entry.name, pretrained=False, device="meta", model_type=model_type, **config_overrides)
        if before_download is not None and (full_download or cached_path(entry.name) is None):
            before_download(entry)
    if is_file:  # one read of the file for its weights and its preprocessing (unpickling is not free)
        contents = read_checkpoint(name_or_path)
        model = load_checkpoint(contents, model_type=model_type, device=device, **config_overrides)
        preprocessing = _recorded_preprocessing(contents)
    else:
        model = load_model(name_or_path, model_type=model_type, device=device, full_download=full_download,
                           **config_overrides)
        preprocessing = _preprocessing_of(name_or_path)
    if img_size and img_size != model.config.img_size:
        raise ValueError(f"{name_or_path} holds a model of {model.config.img_size} px frames, not the {img_size} px asked for")
    source = str(Path(name_or_path).resolve()) if is_file else str(name_or_path)
    stem = file_stem(name_or_path) if is_file else str(name_or_path)
    return LoadedModel(model, source, stem, preprocessing.at_size(model.config.img_size, model.config.num_frames))


def published_file_size(name: str) -> str:
    """About how large zoo model `name`'s published file is, in words: a training checkpoint, so its float32
    weights and AdamW's two moments of each.

    Args:
        name: a zoo name.

    Returns:
        The size in words.
    """
    return f"about {3 * weights_nbytes(name) / 1e9:.2f} GB"


def first_use_download(name: str, full_download: bool = False) -> str | None:
    """What the first use of zoo model `name` downloads, as a sentence; None when nothing is downloaded (the
    weights are cached) or downloads are off (`HF_HUB_OFFLINE`: the loader then says so, and what to do).

    Args:
        name: a zoo name.
        full_download: whether the whole file is asked for.

    Returns:
        The sentence, or None.
    """
    from huggingface_hub import constants

    entry = get_model_entry(name)
    if constants.HF_HUB_OFFLINE or (cached_path(entry.name) is not None and not full_download):
        return None
    if full_download:
        return f"downloading the whole {entry.filename} ({published_file_size(entry.name)}) from {entry.repo_id} once"
    return (f"fetching {weights_nbytes(entry.name) / 1e9:.2f} GB from {entry.repo_id} once: the weights in "
            f"{entry.filename} ({published_file_size(entry.name)}; the rest is optimizer state)")


def load_for_command(
    settings: ModelSettings,
    *,
    model_type: str | None = None,
    device: torch.device | str | None = None,
    default: str | None = None,
    progress: Progress = SILENT,
) -> LoadedModel:
    """The one way a command loads its model: `load_for_inputs` with the model settings of its config.

    Args:
        settings: The command's `model` or `checkpoint` (exactly one, unless `default` names the model to take
            when neither is set), `overrides` and `full_download`.
        model_type: 'mae' or 'vit' (None: what the file holds).
        device: Where the model goes (default: the CPU).
        default: The zoo name used when the settings name no model.
        progress: Told, before a zoo model's weights are fetched, what the download is.

    Returns:
        The model with its name and preprocessing.

    Raises:
        ValueError: Both or neither of model and checkpoint are set.
    """
    if settings.model is not None and settings.checkpoint is not None:
        raise ValueError("give one of --model NAME and --checkpoint FILE, not both")
    source = settings.model_source if settings.model_source is not None else default
    if source is None:
        raise ValueError("name the model: --model NAME (see `hvm1 list`) or --checkpoint FILE")

    def before_download(entry: ZooEntry) -> None:
        if (sentence := first_use_download(entry.name, settings.full_download)) is not None:
            progress.note(f"{sentence}, into the Hugging Face cache")

    return load_for_inputs(source, model_type=model_type, device=device, full_download=settings.full_download,
                           before_download=before_download, **settings.overrides)


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
        raise ValueError(f"img_size {settings.img_size} is not a multiple of the model's patch size {config.patch_size}")
    if settings.num_frames and settings.num_frames % config.t_patch_size:
        raise ValueError(f"num_frames {settings.num_frames} is not a multiple of the model's tubelet "
                         f"{config.t_patch_size}")
    sized = preprocessing.at_size(settings.img_size or preprocessing.img_size,
                                  settings.num_frames or preprocessing.num_frames)
    return dataclasses.replace(sized, autorotate=settings.autorotate)


def convert(
    name_or_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    dtype: torch.dtype | str | None = None,
    model_type: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    full_download: bool = False,
    **config_overrides: Any,
) -> Path:
    """Write a zoo model or checkpoint file as one `.safetensors` file: weights and full config, no optimizer
    state, the zoo model's preprocessing when the source has one, and the head's class names when the model
    has them (`load_model(output).class_names` reads them back); returns the output path.

    `load_model(output)` then needs no overrides and gives the same outputs (exactly in float32); `dtype`
    'bfloat16' or 'float16' halves the file. The other arguments are `load_model`'s.

    Args:
        name_or_path: a zoo name or a checkpoint file.
        output: the `.safetensors` file to write.
        dtype: the weights' dtype in the file; 'bfloat16' or 'float16' halves it.
        model_type: as `load_model` takes it.
        revision: as `load_model` takes it.
        cache_dir: as `load_model` takes it.
        full_download: as `load_model` takes it.
        **config_overrides: architecture fields, as `load_model` takes them.

    Returns:
        The output path.
    """
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ValueError(f"the output must be a .safetensors file, got {output}")
    model = load_model(
        name_or_path, model_type=model_type, revision=revision, cache_dir=cache_dir, full_download=full_download,
        **config_overrides,
    )
    if Path(name_or_path).is_file():
        recorded = read_checkpoint(name_or_path).metadata.get(PREPROCESSING_METADATA_KEY)
    else:
        recorded = preprocessing_to_json(get_model_entry(str(name_or_path)).preprocessing)
    metadata = {PREPROCESSING_METADATA_KEY: recorded} if recorded else None
    return save_safetensors(model, output, dtype=dtype, metadata=metadata)
