"""Architecture configs: typed, frozen dataclasses with the published field names, and the table of named sizes.

The field names are the ones the published checkpoints' `args` and the HVM-1 code use (`t_patch_size`,
`embed_dim`, `pred_t_dim`, ...), so a config can be read straight from a checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ViTConfig:
    """A spatiotemporal ViT encoder (with an optional linear head on the final-normed CLS token).

    Defaults are the HVM-1 backbone: ViT-H/14, 16 frames of 224 px, tubelet 2, no head.
    `dropout` (before the head) and `drop_path_rate` (stochastic depth, linear over the blocks) act in
    training mode only.
    """

    img_size: int = 224
    patch_size: int = 14
    num_frames: int = 16
    t_patch_size: int = 2
    in_chans: int = 3
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    num_classes: int = 0
    layer_norm_eps: float = 1e-6
    sep_pos_embed: bool = True
    cls_embed: bool = True
    dropout: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        _check_config(self)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """The token grid (t, h, w) = (num_frames / t_patch_size, img_size / patch_size, same)."""
        side = self.img_size // self.patch_size
        return self.num_frames // self.t_patch_size, side, side

    @property
    def num_patches(self) -> int:
        """L, the number of patch tokens (t * h * w), CLS not counted."""
        t, h, w = self.grid_size
        return t * h * w

    def replace(self, **changes: Any) -> ViTConfig:
        """A copy with `changes` applied (and checked).

        Args:
            **changes: the fields to change, by name.

        Returns:
            The new config.

        Raises:
            TypeError: a field that does not exist.
            ValueError: a value the architecture cannot take.
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class MAEConfig(ViTConfig):
    """A spatiotemporal masked autoencoder: the ViT encoder plus a lighter decoder that predicts pixels.

    The decoder predicts `pred_t_dim` frames (evenly spaced over the input's `num_frames`), so each
    prediction tubelet spans `t_patch_size * pred_t_dim / num_frames` frames.
    """

    decoder_embed_dim: int = 512
    decoder_depth: int = 4
    decoder_num_heads: int = 16
    pred_t_dim: int = 16
    norm_pix_loss: bool = False

    @property
    def pred_t_patch_size(self) -> int:
        """u', the frames of the prediction target covered by one token."""
        return self.t_patch_size * self.pred_t_dim // self.num_frames

    def encoder_config(self) -> ViTConfig:
        """The ViT config of this MAE's encoder (no head)."""
        fields = {f.name for f in dataclasses.fields(ViTConfig)}
        return ViTConfig(**{k: v for k, v in self.to_dict().items() if k in fields} | {"num_classes": 0})


def _check_config(cfg: ViTConfig) -> None:
    problems = []
    if cfg.img_size % cfg.patch_size:
        problems.append(f"img_size {cfg.img_size} is not a multiple of patch_size {cfg.patch_size}")
    if cfg.num_frames % cfg.t_patch_size:
        problems.append(f"num_frames {cfg.num_frames} is not a multiple of t_patch_size {cfg.t_patch_size}")
    if cfg.embed_dim % cfg.num_heads:
        problems.append(f"embed_dim {cfg.embed_dim} is not divisible by num_heads {cfg.num_heads}")
    if not (cfg.sep_pos_embed and cfg.cls_embed):
        problems.append("only sep_pos_embed=True and cls_embed=True are supported (every published model has both)")
    if isinstance(cfg, MAEConfig):
        if cfg.decoder_embed_dim % cfg.decoder_num_heads:
            problems.append(
                f"decoder_embed_dim {cfg.decoder_embed_dim} is not divisible by "
                f"decoder_num_heads {cfg.decoder_num_heads}"
            )
        if (cfg.t_patch_size * cfg.pred_t_dim) % cfg.num_frames or cfg.pred_t_dim > cfg.num_frames:
            problems.append(
                f"pred_t_dim {cfg.pred_t_dim} must be at most num_frames {cfg.num_frames} and give a whole "
                f"prediction tubelet (t_patch_size * pred_t_dim / num_frames)"
            )
    if problems:
        raise ValueError(f"invalid {type(cfg).__name__}: " + "; ".join(problems))


# Named widths: (embed_dim, depth, num_heads). HVM-1 is "huge" at patch 14.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
PATCH_SIZES = (14, 16)
# The HVM-1 decoder; every named MAE uses it.
DECODER: dict[str, Any] = {"decoder_embed_dim": 512, "decoder_depth": 4, "decoder_num_heads": 16}


def _named_architectures() -> dict[str, ViTConfig]:
    table: dict[str, ViTConfig] = {}
    for size, (embed_dim, depth, num_heads) in SIZES.items():
        for patch in PATCH_SIZES:
            common: dict[str, Any] = dict(patch_size=patch, embed_dim=embed_dim, depth=depth, num_heads=num_heads)
            table[f"vit_{size}_patch{patch}"] = ViTConfig(**common)
            table[f"mae_vit_{size}_patch{patch}"] = MAEConfig(**common, **DECODER)
    return table


ARCHITECTURES: dict[str, ViTConfig] = _named_architectures()


class UnknownArchitectureError(ValueError):
    """An architecture name that is not in `ARCHITECTURES`."""


def get_config(name: str, **overrides: Any) -> ViTConfig:
    """The config of a named architecture, with overrides.

    Args:
        name: a named size (`vit_huge_patch14`, `mae_vit_base_patch16`, ...).
        **overrides: config fields to change.

    Returns:
        The config (`ViTConfig`, or `MAEConfig` for an `mae_` name).

    Raises:
        UnknownArchitectureError: `name` is no named size; the message lists the valid names.
    """
    try:
        base = ARCHITECTURES[name]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown architecture {name!r}; valid names: {', '.join(ARCHITECTURES)}"
        ) from None
    return base.replace(**overrides) if overrides else base


def heads_for_width(embed_dim: int) -> int | None:
    """The head count of the named size with exactly this width, or None (used for checkpoints that don't say)."""
    for width, _, heads in SIZES.values():
        if width == embed_dim:
            return heads
    return None


def config_fields(model_type: str) -> tuple[str, ...]:
    """The field names of the config class of `model_type` ('vit' or 'mae')."""
    return tuple(f.name for f in dataclasses.fields(CONFIG_CLASSES[model_type]))


CONFIG_CLASSES: dict[str, type[ViTConfig]] = {"vit": ViTConfig, "mae": MAEConfig}
