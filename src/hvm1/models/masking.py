"""Token masking for the MAE, as published: which tokens each sample keeps, in one place.

Every mask type is a per-token noise sorted ascending (stably: ties keep the lower index first); the first
`int(L * (1 - mask_ratio))` tokens of that order are kept.
- `random`: uniform noise (or the `noise` given), a fresh random subset per sample;
- `temporal`: noise = token index, so the earliest tokens are kept and the end of the clip is masked;
- `center`: noise = min(i, L - 1 - i), so both ends are kept and the middle is masked (an odd keep count
  puts the extra token at the start).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASK_TYPES = ("random", "temporal", "center")


@dataclass(frozen=True)
class Masking:
    """The result of masking N sequences of L tokens.

    ids_keep: (N, K) indices of the kept tokens, in keep order; ids_restore: (N, L) the position of each
    original token in [kept..., removed...]; mask: (N, L) float, 1 = removed, 0 = kept, in token order.
    """

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def num_kept(num_tokens: int, mask_ratio: float) -> int:
    """How many of `num_tokens` tokens a `mask_ratio` keeps: int(L * (1 - mask_ratio)), rounded down."""
    check_mask_ratio(mask_ratio)
    return int(num_tokens * (1 - mask_ratio))


def check_mask_ratio(mask_ratio: float) -> None:
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}")


def mask_noise(
    mask_type: str,
    batch: int,
    num_tokens: int,
    *,
    device: torch.device | str | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The (N, L) noise whose ascending order decides which tokens are kept; see the module doc."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"unknown mask_type {mask_type!r}; valid: {', '.join(MASK_TYPES)}")
    if noise is not None:
        if mask_type != "random":
            raise ValueError(f"noise is only used by mask_type='random', not {mask_type!r}")
        if tuple(noise.shape) != (batch, num_tokens):
            raise ValueError(f"noise must have shape (N, L) = ({batch}, {num_tokens}), got {tuple(noise.shape)}")
        return noise.to(device)
    if mask_type == "random":
        return torch.rand(batch, num_tokens, device=device, generator=generator)
    index = torch.arange(num_tokens, device=device)
    if mask_type == "center":
        index = torch.minimum(index, num_tokens - 1 - index)
    return index.expand(batch, num_tokens)


def make_masking(
    mask_type: str,
    mask_ratio: float,
    batch: int,
    num_tokens: int,
    *,
    device: torch.device | str | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Masking:
    """Decide, per sample, which of `num_tokens` tokens to keep; see the module doc for the rules.

    Args:
        mask_type: 'random', 'temporal' or 'center'.
        mask_ratio: the fraction of tokens removed, in [0, 1).
        batch: samples in the batch.
        num_tokens: tokens per sample (L).
        device: where the masking's tensors go.
        noise: (N, L) per-token noise for random masking.
        generator: the generator random noise is drawn from, when `noise` is not given.

    Returns:
        The `Masking`: the mask (N, L), 1 where removed, and the kept and restoring token indices.

    Raises:
        ValueError: a mask ratio outside [0, 1), an unknown mask type, noise for another mask type or of
            the wrong shape.
    """
    keep = num_kept(num_tokens, mask_ratio)
    order = mask_noise(mask_type, batch, num_tokens, device=device, noise=noise, generator=generator)
    ids_shuffle = torch.argsort(order, dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, num_tokens, device=device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return Masking(ids_keep=ids_shuffle[:, :keep], ids_restore=ids_restore, mask=mask)


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x (N, L, C) -> (N, K, C): the tokens at `ids` (N, K), per sample."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
