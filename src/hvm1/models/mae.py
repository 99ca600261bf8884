"""The spatiotemporal masked autoencoder (MAE): the HVM-1 encoder on visible tokens plus a pixel decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from .configs import MAEConfig
from .layers import Block, PatchEmbed, init_weights, linear, run_blocks
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
            self.cls_token, self.decoder_cls_token, self.mask_token,
            self.pos_embed_spatial, self.pos_embed_temporal, self.pos_embed_class,
            self.decoder_pos_embed_spatial, self.decoder_pos_embed_temporal, self.decoder_pos_embed_class,
        ):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(init_weights)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them."""
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
        """The masking of `batch` clips of `num_patches` tokens (default: the configured size's L), on this
        model's device (see `hvm1.models.masking`)."""
        return make_masking(
            mask_type, mask_ratio, batch, num_patches or self.config.num_patches,
            device=self.cls_token.device, noise=noise, generator=generator,
        )

    def token_grid(self, video: torch.Tensor) -> tuple[int, int, int]:
        """The token grid (t, h, w) of `video`; a ValueError naming the sizes unless it divides into tokens."""
        cfg = self.config
        return token_grid(video, cfg.in_chans, cfg.patch_size, cfg.t_patch_size)

    def forward_encoder(self, video: torch.Tensor, masking: Masking) -> torch.Tensor:
        """Encode the visible tokens: (N, C, T, H, W) -> (N, K, embed_dim), CLS dropped, final-normed."""
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
        """Predict every token's pixels: latent (N, K, embed_dim) -> pred (N, L, u' * p * p * C), on the
        token grid (t, h, w) of the input (default: the configured size's)."""
        x = linear(self.decoder_embed, latent)  # (N, K, Cd)
        n, kept, ddim = x.shape
        num_patches = masking.ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(n, num_patches - kept, ddim)], dim=1)
        x = gather_tokens(x, masking.ids_restore)  # every token back in its place: (N, L, Cd)
        grid = grid or self.config.grid_size
        x = x + sized_pos_embed(self.decoder_pos_embed_spatial, self.decoder_pos_embed_temporal, grid)
        cls = (self.decoder_cls_token + self.decoder_pos_embed_class).expand(n, -1, -1)
        x = run_blocks(self.decoder_blocks, torch.cat([cls, x], dim=1), self.grad_checkpointing)
        return linear(self.decoder_pred, self.decoder_norm(x))[:, 1:]

    def target_frames(self, video: torch.Tensor) -> torch.Tensor:
        """The frames the decoder predicts: (T / u) * u' of them (`pred_t_dim` at the configured frame count)
        at linspace(0, T - 1) rounded down."""
        cfg = self.config
        count = video.shape[2] // cfg.t_patch_size * cfg.pred_t_patch_size
        if count == video.shape[2]:
            return video  # every frame (the HVM-1 models): no copy
        frames = torch.linspace(0, video.shape[2] - 1, count).long().to(video.device)
        return torch.index_select(video, 2, frames)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """Target frames (N, C, pred_t_dim, H, W) -> patches (N, L, u' * p * p * C)."""
        return patchify(video, self.config.patch_size, self.config.pred_t_patch_size)

    def unpatchify(self, patches: torch.Tensor, grid: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Patches (N, L, u' * p * p * C) on the token grid (t, h, w) (default: the configured size's) ->
        frames (N, C, t * u', h * p, w * p)."""
        cfg = self.config
        return unpatchify(patches, grid or cfg.grid_size, cfg.patch_size, cfg.pred_t_patch_size, cfg.in_chans)

    def forward_loss(self, target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the removed patches only."""
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(dim=-1)  # (N, L)
        # With nothing removed (mask_ratio 0) the loss is 0, not 0 / 0.
        return (per_patch * mask).sum() / mask.sum().clamp(min=1)

    def forward(
        self,
        video: torch.Tensor,
        mask_ratio: float = 0.9,
        visualize: bool = False,
        mask_type: str = "random",
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
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
