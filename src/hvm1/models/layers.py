"""Building blocks shared by the ViT and the MAE: tubelet patch embedding, attention, MLP, transformer block.

Parameter names and shapes are the published ones (`patch_embed.proj`, `attn.q`/`attn.k`/`attn.v`/`attn.proj`,
`mlp.fc1`/`mlp.fc2`, `norm1`/`norm2`), so published state dicts load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

# --- Linear layers with their weights packed once for CPU inference --------------------------------------
#
# oneDNN multiplies by a weight it has reordered into its own blocked layout once ("packed") faster than
# by the plain (out, in) matrix, which it reorders again at every call: on the AVX-512/AMX Xeon
# (benchmarks/bench_packing.py), bf16 products ran 12-34% faster packed than as autocast runs them at 2049
# tokens and 16-46% at 206, and float32 ones 4-26% at 206 tokens (the MAE encoder at mask 0.9).
# A layer marked for packing (`pack_linear_weights`) packs its weight at the first call it serves, doing
# there the cast and the reorder the plain call does anyway, into memory of its own (a MAE-H completion's
# first bf16 forward took 0.75-1.08 s against 0.66-0.69 s unpacked, the next ones 0.35-0.38 s); every later
# call saves them. The packed copy lives beside the parameter, never in it, so `state_dict()` keeps the
# published keys, shapes and values. It serves only calls whose result it gives exactly as the plain layer
# would in that precision (no gradients, CPU input, the packed dtype the one the product runs in: the
# input's, or autocast's), and it is made again when the weight or bias changed since (in place, by
# `load_state_dict`, or replaced). Anything else (training, other devices) runs the plain `nn.Linear`.

_PACKED = "_hvm1_packed"


def _version(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place version counter; None for an inference tensor (made under `inference_mode`),
    which keeps none (and can be changed in place only inside `inference_mode`)."""
    return None if tensor.is_inference() else tensor._version


def _stamp(layer: nn.Linear) -> tuple:
    """What a packed copy must match: the layer's weight and bias objects, versions and storage."""
    return tuple((p, _version(p), p.data_ptr()) if p is not None else None for p in (layer.weight, layer.bias))


def _same(one: tuple | None, other: tuple) -> bool:
    return one is not None and all(
        (a is None and b is None) or (a is not None and b is not None and a[0] is b[0] and a[1:] == b[1:])
        for a, b in zip(one, other)
    )


def _dropped() -> None:
    """What a `PackedWeight` becomes when copied or unpickled: nothing (see `PackedWeight.__reduce__`)."""
    return None


class PackedWeight:
    """A linear layer's mark for packed inference in `dtype` and, once it served a call, its weight in
    oneDNN's packed layout and its bias in `dtype`, with the `_stamp` of the parameters they were made from."""

    __slots__ = ("dtype", "weight", "bias", "stamp")

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.stamp: tuple | None = None

    def __reduce__(self):
        # oneDNN's packed tensors have no storage to copy or save: a copied, pickled or saved model (deepcopy,
        # torch.save of the module) comes without its packed copies and runs the plain layers until marked again.
        return _dropped, ()

    def serves(self, layer: nn.Linear, x: torch.Tensor) -> bool:
        """Whether the packed weight computes `layer(x)` here: no gradients wanted, the input and the weight on
        the CPU, and the product's dtype (autocast's, else the input's) the packed one."""
        if torch.is_grad_enabled() or x.device.type != "cpu" or not x.is_floating_point():
            return False
        if layer.weight.device.type != "cpu":
            return False
        compute = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        return compute == self.dtype

    def packed(self, layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The packed weight and the bias in `dtype`, made now if not yet or if the parameters changed since."""
        stamp = _stamp(layer)
        weight, bias = self.weight, self.bias
        if weight is None or not _same(self.stamp, stamp):
            with torch.no_grad():
                weight = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach().to(self.dtype), None)
                bias = None if layer.bias is None else layer.bias.detach().to(self.dtype)
            self.weight, self.bias, self.stamp = weight, bias, stamp
        return weight, bias


def can_pack_linear_weights(dtype: torch.dtype) -> bool:
    """Whether this PyTorch build can pack linear weights for CPU inference in `dtype` (float32 or bfloat16):
    oneDNN is built in and exposes its packed linear product."""
    ops = torch.ops.mkldnn
    return (dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()
            and hasattr(ops, "_reorder_linear_weight") and hasattr(ops, "_linear_pointwise"))


def pack_linear_weights(model: nn.Module, dtype: torch.dtype) -> int:
    """Mark every CPU `nn.Linear` of `model` for packed inference in `dtype` (each packs its weight at the
    first call it serves, see `PackedWeight`) and return how many were marked; 0 where this build cannot
    (`can_pack_linear_weights`). The parameters are untouched; the packed copies take as much memory again as
    the linear weights in `dtype`."""
    if not can_pack_linear_weights(dtype):
        return 0
    marked = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.weight.device.type == "cpu":
            module.__dict__[_PACKED] = PackedWeight(dtype)
            marked += 1
    return marked


def unpack_linear_weights(model: nn.Module) -> None:
    """Drop the marks and packed copies `pack_linear_weights` made (their memory is freed)."""
    for module in model.modules():
        module.__dict__.pop(_PACKED, None)


def packed_input(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`x` cast to the dtype `layer`'s packed weight computes in, where it will serve; else `x` itself.
    For an input several layers read (q, k and v), so that it is cast once rather than by each."""
    mark = layer.__dict__.get(_PACKED)
    if mark is not None and mark.serves(layer, x):
        return x.to(mark.dtype)
    return x


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)`, through the packed weight where it serves (the bias added inside the product): bit for bit
    what the plain layer gives in bf16. (oneDNN could also apply the GELU inside fc1's product, to the float32
    accumulator; a trial gained nothing beyond the noise, and the results would then differ from the plain
    layers', so it is not done.)"""
    mark = layer.__dict__.get(_PACKED)
    if mark is None or not mark.serves(layer, x):
        return layer(x)
    weight, bias = mark.packed(layer)
    return torch.ops.mkldnn._linear_pointwise(x.to(mark.dtype), weight, bias, "none", [], "")


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
            in_chans, embed_dim, kernel_size=(t_patch_size, patch_size, patch_size),
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
        x = packed_input(self.q, x)
        q, k, v = self._heads(linear(self.q, x)), self._heads(linear(self.k, x)), self._heads(linear(self.v, x))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (N, heads, L, d)
        return linear(self.proj, out.transpose(1, 2).reshape(n, length, dim))

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax attention matrix (N, heads, L, L) for input x (already normed)."""
        x = packed_input(self.q, x)
        q, k = self._heads(linear(self.q, x)), self._heads(linear(self.k, x))
        return ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)

    def query_attention_probs(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Row `index` of the attention matrix, (N, heads, L), without forming the L x L matrix."""
        x = packed_input(self.q, x)
        q = self._heads(linear(self.q, x[:, index : index + 1]))  # (N, heads, 1, d)
        k = self._heads(linear(self.k, x))  # (N, heads, L, d)
        return ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1).squeeze(2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(self.fc2, F.gelu(linear(self.fc1, x)))  # exact (erf) GELU, as published


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
    """The published initialisation: xavier-uniform linear layers (and the flattened patch projection),
    zero biases, unit LayerNorms. Applied with `module.apply`."""
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
        if module.proj.bias is not None:
            nn.init.zeros_(module.proj.bias)

