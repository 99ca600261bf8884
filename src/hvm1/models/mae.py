"""The spatiotemporal masked autoencoder (MAE): the HVM-1 encoder on visible tokens plus a pixel decoder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .configs import MAEConfig
from .layers import Block, PatchEmbed, init_weights, run_blocks
from .masking import Masking, gather_tokens, make_masking
from .positions import sized_pos_embed, token_grid
from .vit import encoder_blocks


def patchify(video: torch.Tensor, patch_size: int, t_patch_size: int) -> torch.Tensor:
    """(N, C, T, H, W) -> (N, L, u * p * p * C); a patch vector is ordered (frame, row, column, channel)."""
    n, c, t, h, w = video.shape
    u, p = t_patch_size, patch_size
    x = video.reshape(n, c, t // u, u, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (N, t, h, w, u, p, p, C)
    return x.reshape(n, (t // u) * (h // p) * (w // p), u * p * p * c)


def unpatchify(
    patches: torch.Tensor, grid: tuple[int, int, int], patch_size: int, t_patch_size: int, channels: int = 3
) -> torch.Tensor:
    """The inverse of `patchify`: (N, t*h*w, u*p*p*C) -> (N, C, t*u, h*p, w*p)."""
    n = patches.shape[0]
    t, h, w = grid
    u, p = t_patch_size, patch_size
    x = patches.reshape(n, t, h, w, u, p, p, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (N, C, t, u, h, p, w, p)
    return x.reshape(n, channels, t * u, h * p, w * p)


@dataclass(frozen=True)
class TokenGrid:
    """How frames split into the MAE's patches: `grid` (t, h, w) tokens, each `t_patch` frames of
    `patch` x `patch` pixels, numbered time-major (index = ti * h * w + hi * w + wi)."""

    grid: tuple[int, int, int]
    patch: int
    t_patch: int

    @property
    def num_tokens(self) -> int:
        """L = t * h * w."""
        return math.prod(self.grid)

    def patchify(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, C, t * t_patch, h * patch, w * patch) -> patches (N, L, t_patch * patch * patch * C)."""
        return patchify(frames, self.patch, self.t_patch)

    def unpatchify(self, patches: torch.Tensor, channels: int = 3) -> torch.Tensor:
        """The inverse of `patchify`: (N, L, t_patch * patch * patch * C) -> frames (N, C, T, H, W)."""
        return unpatchify(patches, self.grid, self.patch, self.t_patch, channels)

    def pixel_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The pixels a token mask (N, L) removes (its nonzero tokens): (N, T, H, W) bool, one value per pixel
        of the frames, shared by the channels."""
        t, h, w = self.grid
        tokens = mask.bool().reshape(-1, t, h, w)  # token order is time-major: t * h * w
        tokens = tokens.repeat_interleave(self.t_patch, 1)
        return tokens.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)


#: Added to a patch's variance before the norm-pix standardisation divides by its square root (as published).
NORM_PIX_EPS = 1.0e-6


def standardise_patches(patches: torch.Tensor) -> torch.Tensor:
    """Each patch (N, L, D) standardised by its own mean and (unbiased) variance: the `norm_pix_loss` target."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + NORM_PIX_EPS) ** 0.5


def unstandardise_patches(standardised: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """The inverse of `standardise_patches`: `standardised` (N, L, D) back to pixels with the mean and variance
    of each of `patches` (N, L, D) (a `norm_pix_loss` model's prediction, in the units of its target)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return standardised * (var + NORM_PIX_EPS) ** 0.5 + mean


def patch_loss(target: torch.Tensor, pred: torch.Tensor, norm_pix_loss: bool) -> torch.Tensor:
    """The MAE loss of every patch (N, L): the mean squared error between `pred` and the target patches
    (N, L, D), the target standardised first with `norm_pix_loss` (`pred` taken as it is)."""
    if norm_pix_loss:
        target = standardise_patches(target)
    return ((pred - target) ** 2).mean(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The mean of `values` (N, L) over the removed tokens (`mask` 1), over all of them (`dim=None`, a scalar)
    or along `dim` (`dim=1`: one mean per clip); 0 where nothing is removed, not 0 / 0."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim=dim) / mask.sum(dim=dim).clamp(min=1)


class VideoMAE(nn.Module):
    """HVM-1 spatiotemporal MAE with the published state-dict layout and call signature.

    `model(video, mask_ratio=0.9, visualize=False, mask_type='random', noise=None)` returns
    `(loss, pred, mask)`, plus `comparison` (N, 3, C, pred_t_dim, H, W) with `visualize=True`:
    original, masked (removed patches 0) and completion (removed patches predicted), in normalised units.
    pred: (N, L, u' * p * p * C); mask: (N, L), 1 = removed. The encoder runs on the visible tokens only.
    Like `VideoViT`, it takes any T that is a multiple of `t_patch_size` and any H, W that are multiples of
    `patch_size`, with the encoder's and the decoder's position embeddings interpolated to the token grid;
    the decoder then predicts (T / u) * u' frames (`pred_t_dim` at the configured frame count).
    """

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        dim, ddim = config.embed_dim, config.decoder_embed_dim
        t, h, w = config.grid_size
        # Registration order fixes the state-dict and parameter order: keep it as published.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_cls_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
        self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.decoder_pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, ddim))
        self.decoder_pos_embed_temporal = nn.Parameter(torch.zeros(1, t, ddim))
        self.decoder_pos_embed_class = nn.Parameter(torch.zeros(1, 1, ddim))
        self.patch_embed = PatchEmbed(config.in_chans, dim, config.patch_size, config.t_patch_size)
        self.blocks = encoder_blocks(config)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.decoder_embed = nn.Linear(dim, ddim)
        self.decoder_blocks = nn.ModuleList(
            Block(ddim, config.decoder_num_heads, config.mlp_ratio, config.qkv_bias, config.layer_norm_eps)
            for _ in range(config.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(ddim, eps=config.layer_norm_eps)
        patch_pixels = config.pred_t_patch_size * config.patch_size**2 * config.in_chans
        self.decoder_pred = nn.Linear(ddim, patch_pixels)
        self.grad_checkpointing = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The published initialisation (a no-op in cost on the meta device)."""
        for p in (
            self.cls_token,
            self.decoder_cls_token,
            self.mask_token,
            self.pos_embed_spatial,
            self.pos_embed_temporal,
            self.pos_embed_class,
            self.decoder_pos_embed_spatial,
            self.decoder_pos_embed_temporal,
            self.decoder_pos_embed_class,
        ):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(init_weights)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them.

        Args:
            enable: turn it on (True) or off.
        """
        self.grad_checkpointing = enable

    def transformer_blocks(self) -> list[nn.Module]:
        """The transformer blocks in the order they run, the encoder's then the decoder's: the units FSDP
        shards and `torch.compile` compiles (and activation checkpointing recomputes)."""
        return [*self.blocks, *self.decoder_blocks]

    def make_masking(
        self,
        batch: int,
        mask_ratio: float,
        mask_type: str = "random",
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_patches: int | None = None,
    ) -> Masking:
        """The masking of a batch of clips, on this model's device (see `hvm1.models.masking`).

        Args:
            batch: clips in the batch.
            mask_ratio: the fraction of tokens removed, in [0, 1).
            mask_type: 'random', 'temporal' or 'center'.
            noise: (N, L) per-token noise for random masking (default: drawn from `generator`).
            generator: the generator random noise is drawn from.
            num_patches: tokens per clip (default: the configured size's L).

        Returns:
            The `Masking`: the mask (N, L), 1 where removed, and the kept and restoring token indices.

        Raises:
            ValueError: a mask ratio outside [0, 1), an unknown mask type, or noise of the wrong shape.
        """
        return make_masking(
            mask_type,
            mask_ratio,
            batch,
            num_patches or self.config.num_patches,
            device=self.cls_token.device,
            noise=noise,
            generator=generator,
        )

    def token_grid(self, video: torch.Tensor) -> tuple[int, int, int]:
        """The token grid of a clip.

        Args:
            video: a clip (N, C, T, H, W).

        Returns:
            `(t, h, w)`: temporal tokens, rows and columns of patches.

        Raises:
            ValueError: the clip does not divide into tokens (its sizes named).
        """
        cfg = self.config
        return token_grid(video, cfg.in_chans, cfg.patch_size, cfg.t_patch_size)

    def forward_encoder(self, video: torch.Tensor, masking: Masking) -> torch.Tensor:
        """Encode the visible tokens.

        Args:
            video: a normalised clip (N, C, T, H, W).
            masking: which tokens are visible (`make_masking`).

        Returns:
            The K visible tokens, final-normed, CLS dropped: (N, K, embed_dim).
        """
        grid = self.token_grid(video)
        # Only the visible tubelets are embedded: (N, K, C*u*p*p) -> (N, K, embed_dim).
        tubelets = gather_tokens(self.patch_embed.tubelets(video.to(self.cls_token.dtype)), masking.ids_keep)
        x = self.patch_embed.embed_tubelets(tubelets)
        pos = sized_pos_embed(self.pos_embed_spatial, self.pos_embed_temporal, grid).expand(x.shape[0], -1, -1)
        x = x + gather_tokens(pos, masking.ids_keep)
        cls = (self.cls_token + self.pos_embed_class).expand(x.shape[0], -1, -1)
        x = run_blocks(self.blocks, torch.cat([cls, x], dim=1), self.grad_checkpointing)
        return self.norm(x)[:, 1:]

    def forward_decoder(
        self, latent: torch.Tensor, masking: Masking, grid: tuple[int, int, int] | None = None
    ) -> torch.Tensor:
        """Predict every token's pixels from the visible tokens' encoding.

        Args:
            latent: the output of `forward_encoder`, (N, K, embed_dim).
            masking: the masking the encoder used.
            grid: the token grid (t, h, w) of the input (default: the configured size's).

        Returns:
            The predicted patches (N, L, u' * p * p * C).
        """
        x = self.decoder_embed(latent)  # (N, K, Cd)
        n, kept, ddim = x.shape
        num_patches = masking.ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(n, num_patches - kept, ddim)], dim=1)
        x = gather_tokens(x, masking.ids_restore)  # every token back in its place: (N, L, Cd)
        grid = grid or self.config.grid_size
        x = x + sized_pos_embed(self.decoder_pos_embed_spatial, self.decoder_pos_embed_temporal, grid)
        cls = (self.decoder_cls_token + self.decoder_pos_embed_class).expand(n, -1, -1)
        x = run_blocks(self.decoder_blocks, torch.cat([cls, x], dim=1), self.grad_checkpointing)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def target_frames(self, video: torch.Tensor) -> torch.Tensor:
        """The frames the decoder predicts.

        Args:
            video: a clip (N, C, T, H, W).

        Returns:
            (T / u) * u' of its frames (`pred_t_dim` at the configured frame count), at linspace(0, T - 1)
            rounded down; the clip itself when that is every frame.
        """
        cfg = self.config
        count = video.shape[2] // cfg.t_patch_size * cfg.pred_t_patch_size
        if count == video.shape[2]:
            return video  # every frame (the HVM-1 models): no copy
        frames = torch.linspace(0, video.shape[2] - 1, count).long().to(video.device)
        return torch.index_select(video, 2, frames)

    def prediction_grid(self, grid: tuple[int, int, int] | None = None) -> TokenGrid:
        """How the predicted frames split into patches: u' = `pred_t_patch_size` frames per token.

        Args:
            grid: the token grid (t, h, w) of an input (default: the configured size's; `token_grid(video)`
                gives a video's).

        Returns:
            The `TokenGrid` of the predicted frames.
        """
        cfg = self.config
        return TokenGrid(grid or cfg.grid_size, cfg.patch_size, cfg.pred_t_patch_size)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """Split target frames into the decoder's patches.

        Args:
            video: target frames (N, C, pred_t_dim, H, W) (`target_frames`).

        Returns:
            The patches (N, L, u' * p * p * C).
        """
        return patchify(video, self.config.patch_size, self.config.pred_t_patch_size)

    def unpatchify(self, patches: torch.Tensor, grid: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Put the decoder's patches back together into frames (the inverse of `patchify`).

        Args:
            patches: (N, L, u' * p * p * C).
            grid: their token grid (t, h, w) (default: the configured size's).

        Returns:
            The frames (N, C, t * u', h * p, w * p).
        """
        return self.prediction_grid(grid).unpatchify(patches, self.config.in_chans)

    def pixel_mask(self, mask: torch.Tensor, grid: tuple[int, int, int] | None = None) -> torch.Tensor:
        """The pixels of the predicted frames that a token mask removes.

        Args:
            mask: the token mask (N, L), nonzero where removed.
            grid: the token grid (t, h, w) (default: the configured size's).

        Returns:
            (N, t * u', h * p, w * p) bool, shared by the channels.
        """
        return self.prediction_grid(grid).pixel_mask(mask)

    def loss_target(self, target: torch.Tensor) -> torch.Tensor:
        """What the decoder is trained to predict for target patches.

        Args:
            target: the target patches (N, L, D).

        Returns:
            The patches themselves, or with `norm_pix_loss` each standardised by its own mean and variance
            (`standardise_patches`).
        """
        return standardise_patches(target) if self.config.norm_pix_loss else target

    def forward_loss(
        self, target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor | None = None, reduction: str = "mean"
    ) -> torch.Tensor:
        """The MAE loss: the mean squared error of each predicted patch against `loss_target(target)`.

        Args:
            target: the target patches (N, L, D).
            pred: the predicted patches (N, L, D).
            mask: the token mask (N, L), nonzero where removed; needed for "mean".
            reduction: "mean" averages over the removed patches (a scalar; 0 when none is); "none" gives each
                patch's own loss (N, L), for a caller to average over any subset.

        Returns:
            The loss, a scalar or (N, L).

        Raises:
            ValueError: for another `reduction`, or "mean" without a mask.
        """
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        per_patch = patch_loss(target, pred, self.config.norm_pix_loss)  # (N, L)
        if reduction == "none":
            return per_patch
        if mask is None:
            raise ValueError("forward_loss(reduction='mean') averages over the removed patches: pass their mask")
        return masked_mean(per_patch, mask)

    def forward(
        self,
        video: torch.Tensor,
        mask_ratio: float = 0.9,
        visualize: bool = False,
        mask_type: str = "random",
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Mask a clip, encode the visible tokens, predict every token's pixels, and score the removed ones.

        Args:
            video: a normalised clip (N, C, T, H, W); H, W multiples of the patch, T of the tubelet.
            mask_ratio: the fraction of tokens removed, in [0, 1).
            visualize: also return the comparison of original, masked and completed frames.
            mask_type: 'random' (tokens anywhere), 'temporal' (the final frames) or 'center' (the middle
                frames in time).
            noise: (N, L) per-token noise that makes random masking reproducible.

        Returns:
            `(loss, pred, mask)`: the MAE loss over the removed patches (a scalar), the predicted patches
            (N, L, u' * p * p * C) and the mask (N, L), 1 where removed; with `visualize=True` also
            `comparison` (N, 3, C, T', H, W): original, masked, completion.

        Raises:
            ValueError: a clip size that does not divide into tokens, a mask ratio outside [0, 1) or an
                unknown mask type.
        """
        grid = self.token_grid(video)
        masking = self.make_masking(video.shape[0], mask_ratio, mask_type, noise, num_patches=math.prod(grid))
        pred = self.forward_decoder(self.forward_encoder(video, masking), masking, grid)
        # The target stays in the input's precision (float32 under bf16 autocast) and so does the loss.
        target_video = self.target_frames(video)
        target = self.patchify(target_video)
        loss = self.forward_loss(target, pred.to(target.dtype), masking.mask)
        if not visualize:
            return loss, pred, masking.mask
        removed = masking.mask.unsqueeze(-1).bool()  # (N, L, 1)
        masked = self.unpatchify(target.masked_fill(removed, 0.0), grid)
        completion = self.unpatchify(torch.where(removed, pred.to(target.dtype), target), grid)
        comparison = torch.stack([target_video, masked, completion], dim=1)
        return loss, pred, masking.mask, comparison
