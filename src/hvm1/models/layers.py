"""Building blocks shared by the ViT and the MAE: tubelet patch embedding, attention, MLP, transformer block.

Parameter names and shapes are the published ones (`patch_embed.proj`, `attn.q`/`attn.k`/`attn.v`/`attn.proj`,
`mlp.fc1`/`mlp.fc2`, `norm1`/`norm2`), so published state dicts load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class PatchEmbed(nn.Module):
    """Tubelet embedding: a Conv3d with kernel = stride = (t_patch_size, patch_size, patch_size).

    Computed as one matrix product over flattened tubelets (same weights, same result as the
    convolution, faster on CPU). Tokens come out time-major: index = ti * h * w + hi * w + wi.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, t_patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.t_patch_size = t_patch_size
        self.proj = nn.Conv3d(
            in_chans,
            embed_dim,
            kernel_size=(t_patch_size, patch_size, patch_size),
            stride=(t_patch_size, patch_size, patch_size),
        )

    def tubelets(self, video: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> flattened tubelets (N, L, C * u * p * p), time-major."""
        n, c, t, h, w = video.shape
        u, p = self.t_patch_size, self.patch_size
        x = video.reshape(n, c, t // u, u, h // p, p, w // p, p)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (N, t, h, w, C, u, p, p)
        return x.reshape(n, (t // u) * (h // p) * (w // p), c * u * p * p)

    def embed_tubelets(self, tubelets: torch.Tensor) -> torch.Tensor:
        """Flattened tubelets (N, K, C * u * p * p) -> tokens (N, K, embed_dim)."""
        weight = self.proj.weight.reshape(self.proj.out_channels, -1)  # (E, C*u*p*p)
        return F.linear(tubelets, weight, self.proj.bias)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> (N, L, embed_dim) with L = (T / u) * (H / p) * (W / p)."""
        return self.embed_tubelets(self.tubelets(video))


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v projections (as published), run by SDPA."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        return x.view(n, length, self.num_heads, self.head_dim).transpose(1, 2)  # (N, heads, L, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (N, heads, L, d)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax attention matrix (N, heads, L, L) for input x (already normed)."""
        q, k = self._heads(self.q(x)), self._heads(self.k(x))
        return ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)

    def query_attention_probs(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Row `index` of the attention matrix, (N, heads, L), without forming the L x L matrix."""
        q = self._heads(self.q(x[:, index : index + 1]))  # (N, heads, 1, d)
        k = self._heads(self.k(x))  # (N, heads, L, d)
        return ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1).squeeze(2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as published


class DropPath(nn.Module):
    """Stochastic depth per sample: drops the residual branch with probability `rate` in training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, eps: float, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, grad_checkpointing: bool) -> torch.Tensor:
    """Apply `blocks` in order; with `grad_checkpointing`, recompute each block's activations in backward."""
    for block in blocks:
        if grad_checkpointing and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


def separable_pos_embed(spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
    """Position embedding of every token: (1, t*h*w, C) from spatial (1, h*w, C) and temporal (1, t, C)."""
    t, hw = temporal.shape[1], spatial.shape[1]
    return spatial.repeat(1, t, 1) + temporal.repeat_interleave(hw, dim=1)


def init_weights(module: nn.Module) -> None:
    """The published initialisation: xavier-uniform linear layers (and the flattened patch projection's weight),
    zero linear biases, unit LayerNorms. Applied with `module.apply`. The patch projection's bias keeps the
    default init `nn.Conv3d` gave it when built (uniform in +-1/sqrt(C * u * p * p)), as the published MAE's
    does: its init touches the projection's weight only."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, PatchEmbed):
        w = module.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
