"""The table of published HVM-1 models: every one is a `ZooEntry` of `MODELS` (its hub file, architecture,
preprocessing, class names and published figures), and what its first use downloads.

Names are `x_y_z`: model type `x` (mae, vit), pretraining data `y` (hvm1 and kinetics at 224 px, hvm1@448 at
448 px), finetuning data `z` (none, ssv2-{50,10}shot, kinetics-{50,10}shot, imagenet-2pt); `mae` exists only
with `none`. The files live in the hub repo `eminorhan/hvm-1` as `{y}_{z}.pth` (mae and vit `_none` share one).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from hvm1.labels import label_set
from hvm1.models import ViTConfig, build_model, get_config

from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, VIDEO_MEAN, VIDEO_STD, Preprocessing

HUB_REPO = "eminorhan/hvm-1"


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
    ("hvm1", "ssv2-10shot"): 17.5,
    ("hvm1", "ssv2-50shot"): 35.2,
    ("hvm1", "kinetics-10shot"): 14.8,
    ("hvm1", "kinetics-50shot"): 32.0,
    ("hvm1", "imagenet-2pt"): 44.7,
    ("hvm1@448", "ssv2-10shot"): 16.8,
    ("hvm1@448", "ssv2-50shot"): 36.4,
    ("hvm1@448", "kinetics-10shot"): 16.9,
    ("hvm1@448", "kinetics-50shot"): 36.7,
    ("hvm1@448", "imagenet-2pt"): 52.3,
    ("kinetics", "ssv2-10shot"): 19.0,
    ("kinetics", "ssv2-50shot"): 38.2,
    ("kinetics", "kinetics-10shot"): 20.6,
    ("kinetics", "kinetics-50shot"): 37.3,
    ("kinetics", "imagenet-2pt"): 51.0,
}

# Published DAVIS-2017 label propagation with each pretraining's ImageNet-2% model (the official evaluation's
# global statistics).
PUBLISHED_DAVIS = {
    "hvm1": {
        "J&F-Mean": 0.563,
        "J-Mean": 0.545,
        "J-Recall": 0.636,
        "J-Decay": 0.209,
        "F-Mean": 0.582,
        "F-Recall": 0.685,
        "F-Decay": 0.253,
    },
    "hvm1@448": {
        "J&F-Mean": 0.539,
        "J-Mean": 0.531,
        "J-Recall": 0.600,
        "J-Decay": 0.218,
        "F-Mean": 0.547,
        "F-Recall": 0.619,
        "F-Decay": 0.297,
    },
    "kinetics": {
        "J&F-Mean": 0.579,
        "J-Mean": 0.558,
        "J-Recall": 0.661,
        "J-Decay": 0.204,
        "F-Mean": 0.601,
        "F-Recall": 0.712,
        "F-Decay": 0.248,
    },
}


def _entry(model_type: str, pretraining: str, finetuning: str) -> ZooEntry:
    pre, fine = PRETRAININGS[pretraining], FINETUNINGS[finetuning]
    architecture = "mae_vit_huge_patch14" if model_type == "mae" else "vit_huge_patch14"
    config = get_config(architecture, img_size=pre.img_size, num_frames=16, num_classes=fine.num_classes)
    preprocessing = Preprocessing(
        img_size=pre.img_size,
        num_frames=16,
        mean=fine.mean,
        std=fine.std,
        single_image=fine.single_image,
        train_short_side=pre.train_short_side,
        mask_ratio=pre.mask_ratio,
        blr=pre.blr,
    )
    return ZooEntry(
        name=f"{model_type}_{pretraining}_{finetuning}",
        model_type=model_type,
        pretraining=pretraining,
        finetuning=finetuning,
        filename=f"{pretraining}_{finetuning}.pth",
        config=config,
        preprocessing=preprocessing,
        top1=PUBLISHED_TOP1.get((pretraining, finetuning)),
        labels=fine.labels,
    )


MODELS: dict[str, ZooEntry] = {
    entry.name: entry
    for pretraining in PRETRAININGS
    for entry in (_entry("mae", pretraining, "none"), *(_entry("vit", pretraining, fine) for fine in FINETUNINGS))
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


def cached_path(name: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The cached file zoo model `name` loads from (the whole file, or the weights-only one a first load
    fetched; `hub.is_weights_only` tells which), or None. Checked without network.

    Args:
        name: a zoo name.
        revision: the hub revision.
        cache_dir: the hub cache folder.

    Returns:
        The cached file, or None.
    """
    from hvm1.hub import cached_weights  # huggingface_hub (slow to import) only where the hub is asked

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
    return (
        f"fetching {weights_nbytes(entry.name) / 1e9:.2f} GB from {entry.repo_id} once: the weights in "
        f"{entry.filename} ({published_file_size(entry.name)}; the rest is optimizer state)"
    )
