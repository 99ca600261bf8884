"""The spatiotemporal ViT: the HVM-1 encoder with final norm, dropout and an optional linear head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from .configs import ViTConfig
from .layers import Block, PatchEmbed, init_weights, run_blocks
from .positions import sized_pos_embed, token_grid


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic-depth rate of each block: linear from 0 to `rate`."""
    return [rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]


def encoder_blocks(config: ViTConfig) -> nn.ModuleList:
    """The encoder's `depth` blocks, with stochastic depth rising linearly to `drop_path_rate`."""
    return nn.ModuleList(
        Block(config.embed_dim, config.num_heads, config.mlp_ratio, config.qkv_bias, config.layer_norm_eps, rate)
        for rate in drop_path_rates(config.drop_path_rate, config.depth)
    )


class VideoViT(nn.Module):
    """HVM-1 video ViT, published state-dict layout (`cls_token`, `pos_embed_*`, `patch_embed`, `blocks`,
    `norm`, `head`).

    Input: a normalised video (N, C, T, H, W): T any multiple of `t_patch_size`, H and W any multiples of
    `patch_size` (the configured size is the one the position embeddings were trained at; other sizes get
    them interpolated, see `hvm1.models.positions`). L = (T / u) * (H / p) * (W / p). Outputs:
    `forward` -> logits (N, num_classes), or the embedding (N, embed_dim) when there is no head;
    `forward_features` -> all final-normed tokens (N, 1 + L, embed_dim), CLS first;
    `get_last_activation` -> the last block's output before the final norm (N, 1 + L, embed_dim);
    `forward_intermediates` -> chosen blocks' outputs;
    `get_last_selfattention` -> (N, heads, 1 + L, 1 + L); `cls_attention` -> (N, heads, L).
    `class_names`: the names of the head's outputs in order, as the loader found them (a zoo model's label
    set, a file's recorded names), or None (`hvm1.labels.class_names_of` then says how to give them).
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        t, h, w = config.grid_size
        # Registration order fixes the state-dict and parameter order: keep it as published.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
        self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embed = PatchEmbed(config.in_chans, dim, config.patch_size, config.t_patch_size)
        self.blocks = encoder_blocks(config)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.head_drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(dim, config.num_classes) if config.num_classes else nn.Identity()
        self.grad_checkpointing = False
        self.class_names: tuple[str, ...] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The published initialisation (a no-op in cost on the meta device)."""
        for p in (self.cls_token, self.pos_embed_spatial, self.pos_embed_temporal, self.pos_embed_class):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(init_weights)
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=2e-5)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them.

        Args:
            enable: turn it on (True) or off.
        """
        self.grad_checkpointing = enable

    def transformer_blocks(self) -> list[nn.Module]:
        """The transformer blocks in the order they run: the units FSDP shards and `torch.compile` compiles
        (and activation checkpointing recomputes)."""
        return list(self.blocks)

    def no_weight_decay(self) -> set[str]:
        """The parameters finetuning exempts from weight decay besides the 1-D ones (biases, norms): the CLS
        token and the position embeddings, as the published ViT lists them (timm's `no_weight_decay`)."""
        return {"cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class"}

    def layer_ids(self) -> dict[str, int]:
        """Each parameter's layer for layer-wise lr decay, as the published finetuning numbers them: 0 for the
        embeddings (patch embedding, CLS token, position embeddings), i + 1 for block i, and depth + 1 (the
        top) for the final norm and the head."""
        ids = dict.fromkeys((name for name, _ in self.named_parameters()), len(self.blocks) + 1)
        ids |= dict.fromkeys(("cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class"), 0)
        ids |= {name: 0 for name, _ in self.patch_embed.named_parameters(prefix="patch_embed")}
        for index, block in enumerate(self.blocks):
            ids |= {name: index + 1 for name, _ in block.named_parameters(prefix=f"blocks.{index}")}
        return ids

    def embed_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """Patch-embed and add positions.

        Args:
            video: a normalised clip (N, C, T, H, W); H, W multiples of the patch, T of the tubelet.

        Returns:
            The tokens (N, 1 + L, embed_dim), CLS first.

        Raises:
            ValueError: a clip size that does not divide into tokens.
        """
        cfg = self.config
        grid = token_grid(video, cfg.in_chans, cfg.patch_size, cfg.t_patch_size)
        x = self.patch_embed(video.to(self.cls_token.dtype))  # (N, L, C)
        x = x + sized_pos_embed(self.pos_embed_spatial, self.pos_embed_temporal, grid)
        cls = (self.cls_token + self.pos_embed_class).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """All tokens after the blocks and the final norm.

        Args:
            video: a normalised clip (N, C, T, H, W).

        Returns:
            The tokens (N, 1 + L, embed_dim), CLS first.
        """
        return self.norm(self.get_last_activation(video))

    def get_last_activation(self, video: torch.Tensor) -> torch.Tensor:
        """The last block's output, all tokens, before the final norm (the published name).

        Args:
            video: a normalised clip (N, C, T, H, W).

        Returns:
            The tokens (N, 1 + L, embed_dim), CLS first.
        """
        return run_blocks(self.blocks, self.embed_tokens(video), self.grad_checkpointing)

    def block_indices(self, indices: int | Sequence[int] | None = None) -> list[int]:
        """Blocks chosen as timm does.

        Args:
            indices: None for all, an int n for the last n, a sequence for those blocks (negative from the end).

        Returns:
            The chosen block indices, sorted, each in 0..depth-1.

        Raises:
            ValueError: an index outside the model's blocks (named in the message).
        """
        depth = len(self.blocks)
        if indices is None:
            chosen = list(range(depth))
        elif isinstance(indices, int):
            if not 0 < indices <= depth:
                raise ValueError(f"indices={indices}: the last n blocks needs 1 <= n <= depth {depth}")
            chosen = list(range(depth - indices, depth))
        else:
            chosen = [int(i) for i in indices]
            bad = [i for i in chosen if not -depth <= i < depth]
            if bad:
                raise ValueError(
                    f"block indices {bad} are outside this model's {depth} blocks "
                    f"(0..{depth - 1}, or -{depth}..-1 from the end)"
                )
        return sorted({i % depth for i in chosen})

    def forward_intermediates(
        self,
        video: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        intermediates_only: bool = True,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The outputs of the chosen blocks, in block order; blocks after the last chosen one are not run.

        Args:
            video: a normalised clip (N, C, T, H, W).
            indices: the blocks, as `block_indices` takes them.
            norm: apply the final norm to each output.
            intermediates_only: False (timm's form) also returns the final features and runs every block.

        Returns:
            A list of (N, 1 + L, embed_dim) tensors, CLS first; with `intermediates_only=False`,
            `(forward_features(video), intermediates)`.

        Raises:
            ValueError: an index outside the model's blocks.
        """
        chosen = self.block_indices(indices)
        last = len(self.blocks) - 1 if not intermediates_only else chosen[-1]
        x = self.embed_tokens(video)
        intermediates = []
        for index in range(last + 1):
            x = run_blocks(self.blocks[index : index + 1], x, self.grad_checkpointing)
            if index in chosen:
                intermediates.append(self.norm(x) if norm else x)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """From `forward_features` output to logits.

        Args:
            features: the output of `forward_features`, (N, 1 + L, embed_dim).
            pre_logits: return the CLS embedding (N, embed_dim) instead of the logits.

        Returns:
            The logits (N, num_classes) (the embedding where the model has no head), or the embedding.
        """
        x = self.head_drop(features[:, 0])
        if pre_logits:
            return x
        return self.head(x)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Classify a clip (`forward_head(forward_features(video))`).

        Args:
            video: a normalised clip (N, C, T, H, W).

        Returns:
            The logits (N, num_classes), or without a head the final-normed CLS embedding (N, embed_dim).
        """
        return self.forward_head(self.forward_features(video))

    def _last_block(self) -> Block:
        return cast(Block, self.blocks[-1])

    def _last_block_input(self, video: torch.Tensor) -> torch.Tensor:
        x = run_blocks(self.blocks[:-1], self.embed_tokens(video), self.grad_checkpointing)
        return self._last_block().norm1(x)

    def get_last_selfattention(self, video: torch.Tensor) -> torch.Tensor:
        """The last block's softmax attention, all heads, as published.

        This forms the full L x L matrix (4.3 GB per 448 px clip at ViT-H); `cls_attention` does not.

        Args:
            video: a normalised clip (N, C, T, H, W).

        Returns:
            The attention (N, heads, 1 + L, 1 + L), CLS first.
        """
        return self._last_block().attn.attention_probs(self._last_block_input(video))

    def cls_attention(self, video: torch.Tensor) -> torch.Tensor:
        """The CLS row of the last block's attention to the patch tokens, without the L x L matrix.

        Args:
            video: a normalised clip (N, C, T, H, W).

        Returns:
            The attention (N, heads, L): `get_last_selfattention(video)[:, :, 0, 1:]`, not renormalised.
        """
        return self._last_block().attn.query_attention_probs(self._last_block_input(video), 0)[:, :, 1:]
