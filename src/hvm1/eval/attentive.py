"""Attentive probes on frozen patch tokens, as in V-JEPA's evaluations.

A probe is `depth - 1` pre-norm self-attention blocks over the tokens, then one learned query token that
cross-attends over them (pre-norm cross-attention and an MLP, each with a residual), then a linear
classifier on the query (V-JEPA 1 uses depth 1, V-JEPA 2 depth 4 with 16 heads). Unlike a linear probe on a
pooled vector, it can tell *where* a feature is, not only how much of it there is.

`attentive_probe` trains a grid of probes at once, one per learning rate x weight decay, all from the same
initialisation and on the same batches (each batch of tokens is read once and fed to every probe; one AdamW
with a parameter group per probe and setting, linear warmup then cosine decay), keeps the probe with the best
validation accuracy and scores the test set with it; the whole grid is reported in the settings.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hvm1.data import select_shots
from hvm1.models.layers import Block, Mlp
from hvm1.optimization import decay_split, lr_at, torch_param_groups
from hvm1.progress import SILENT, Progress

from .predictions import Predictions, classification_metrics
from .store import Embeddings

logger = logging.getLogger(__name__)

#: A 5 x 4 grid, the size V-JEPA 2 searches.
DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
DEFAULT_WEIGHT_DECAYS = (0.001, 0.01, 0.1, 0.4)


class CrossAttention(nn.Module):
    """Multi-head attention of queries (N, Q, C) over tokens (N, L, C), run by SDPA."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"token width {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n, q_len, dim = queries.shape
        length, heads = tokens.shape[1], self.num_heads
        q = self.q(queries).view(n, q_len, heads, dim // heads).transpose(1, 2)  # (N, heads, Q, d)
        k, v = self.kv(tokens).view(n, length, 2, heads, dim // heads).permute(2, 0, 3, 1, 4)  # 2 x (N, heads, L, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, Q, d)
        return self.proj(out.transpose(1, 2).reshape(n, q_len, dim))


class AttentiveProbe(nn.Module):
    """Self-attention blocks (depth - 1), one query cross-attending (pre-norm, MLP, residuals), a linear head.

    `forward(tokens)`: (N, L, C) -> logits (N, num_classes).
    """

    def __init__(self, dim: int, num_classes: int, depth: int = 1, num_heads: int = 16, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1 (the cross-attention block), got {depth}")
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, True, 1e-6) for _ in range(depth - 1))
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.query, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens
        for block in self.blocks:
            x = block(x)
        query = self.query.expand(x.shape[0], -1, -1)
        query = query + self.cross_attn(query, self.norm1(x))  # (N, 1, C)
        query = query + self.mlp(self.norm2(query))
        return self.head(query[:, 0])

    @staticmethod
    def no_weight_decay(name: str, parameter: nn.Parameter) -> bool:
        """Whether a parameter takes no weight decay: all but the weights of linear layers (biases, norms,
        the query).

        Args:
            name: the parameter's name in the probe.
            parameter: the parameter.

        Returns:
            True for the parameters exempt from weight decay.
        """
        return parameter.ndim != 2 or name == "query"


@dataclass(frozen=True)
class GridResult:
    """One probe of the grid: its settings, its final training loss and its validation top-1 (percent)."""

    lr: float
    weight_decay: float
    train_loss: float
    val_top1: float


def patch_tokens(embeddings: Embeddings) -> np.ndarray:
    """The (videos, L, C) patch tokens of a `--pool tokens` file (the CLS token, first, dropped); a view,
    so a memory-mapped file stays memory-mapped."""
    tokens = embeddings.embeddings
    if tokens.ndim != 3:
        raise ValueError(
            f"an attentive probe needs token embeddings (embed with --pool tokens), got {tokens.shape[1:]} per video"
        )
    return tokens[:, 1:]


def attentive_probe(
    train: Embeddings,
    test: Embeddings,
    *,
    val: Embeddings | None = None,
    val_fraction: float = 0.2,
    shots: int | None = None,
    seed: int = 0,
    lrs: Sequence[float] = DEFAULT_LRS,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    depth: int = 1,
    num_heads: int = 16,
    epochs: int = 20,
    batch_size: int = 32,
    warmup_fraction: float = 0.1,
    device: torch.device | str = "cpu",
    progress: Progress = SILENT,
) -> Predictions:
    """Train a grid of attentive probes on `train` token embeddings, keep the best on `val`, score `test`.

    Embeddings come from `hvm1 embed --pool tokens` (CLS dropped here; float16 or float32, memory-mapped or
    not: batches are read as they are needed). `shots` keeps that many training videos per class drawn with
    `seed`, as the other probes do; without `val`, `val_fraction` of each class's remaining training videos
    (at least one, for classes of two or more) is held out for validation with `seed`. Every probe starts from
    the same `seed`-ed initialisation and sees the same batches. Returns the test `Predictions`; their
    settings hold the chosen lr and weight decay and the `grid` (each probe's final loss and val top-1).
    `progress` gets a stage of the epochs ('attentive probe'), advanced after each.
    """
    from .probes import check_pair

    check_pair(train, test, tokens=True)
    if val is not None:
        check_pair(train, val, tokens=True)
    rows = np.arange(len(train))  # rows of `train` read by index, so a memory-mapped file is never copied whole
    if shots is not None:
        rows = np.asarray(select_shots(train.labels.tolist(), shots, seed))
    if val is None:
        rows, val_rows = _hold_out(train.labels, rows, val_fraction, seed)
        val_tokens, val_labels = patch_tokens(train), train.labels[val_rows]
    else:
        val_rows, val_tokens, val_labels = np.arange(len(val)), patch_tokens(val), val.labels
    if train.classes:
        num_classes = len(train.classes)
    else:
        num_classes = int(max(train.labels.max(), test.labels.max(), val_labels.max())) + 1
    x_train = patch_tokens(train)
    dim = x_train.shape[-1]
    settings_grid = [(lr, wd) for lr in lrs for wd in weight_decays]
    if not settings_grid:
        raise ValueError("the grid is empty: give at least one learning rate and one weight decay")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first = AttentiveProbe(dim, num_classes, depth, num_heads)
    probes = nn.ModuleList(copy.deepcopy(first) for _ in settings_grid).to(device)
    groups = []
    for index, (lr, wd) in enumerate(settings_grid):
        probe: AttentiveProbe = probes[index]  # type: ignore[assignment]  # ModuleList items are Modules
        split = decay_split(probe, wd, exempt=probe.no_weight_decay)
        groups += [group | {"lr": lr} for group in torch_param_groups(probe, split)]
    optimizer = torch.optim.AdamW(groups)
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    warmup = int(warmup_fraction * total)
    # Each group's own lr times the schedule's factor: warmup, then a half cosine to 0 at the last step.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, base_lr=1.0, warmup_steps=warmup, total_steps=total, schedule="cosine")
    )
    generator = torch.Generator().manual_seed(seed)
    labels = torch.from_numpy(train.labels[rows]).long()
    last_losses = torch.zeros(len(probes))
    progress.start(epochs, "epoch", "attentive probe")
    for epoch in range(epochs):
        probes.train()
        order = torch.randperm(len(rows), generator=generator)
        for start in range(0, len(rows), batch_size):
            picked = order[start : start + batch_size]
            tokens = _batch(x_train, rows[picked.numpy()], device)
            target = labels[picked].to(device)
            losses = torch.stack([F.cross_entropy(probe(tokens), target) for probe in probes])
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # the probes are independent: each gets its own loss's gradient
            optimizer.step()
            schedule.step()
            last_losses = losses.detach().cpu()
        progress.advance(epoch + 1)
    progress.close()
    val_logits = _logits(probes, val_tokens, val_rows, batch_size, device)
    grid = [
        GridResult(lr, wd, float(loss), classification_metrics(logits, torch.from_numpy(val_labels).long()).top1)
        for (lr, wd), loss, logits in zip(settings_grid, last_losses, val_logits)
    ]
    best = max(range(len(grid)), key=lambda i: (grid[i].val_top1, -grid[i].train_loss))
    test_logits = _logits(probes[best : best + 1], patch_tokens(test), np.arange(len(test)), batch_size, device)[0]
    settings: dict[str, Any] = {
        "method": "attentive",
        "shots": shots,
        "seed": seed,
        "train_videos": len(rows),
        "val_videos": len(val_rows),
        "num_classes": num_classes,
        "model": train.settings.get("model"),
        "pool": train.settings.get("pool"),
        "depth": depth,
        "num_heads": num_heads,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": grid[best].lr,
        "weight_decay": grid[best].weight_decay,
        "grid": [asdict(g) for g in grid],
    }
    logger.info(
        "attentive probe: best of %d (lr %g, weight decay %g) at val top-1 %.2f%%",
        len(grid),
        grid[best].lr,
        grid[best].weight_decay,
        grid[best].val_top1,
    )
    return Predictions.score(
        test.paths, test.labels, test_logits.double().numpy(), classes=test.classes, settings=settings
    )


def _batch(tokens: np.ndarray, rows: np.ndarray, device: torch.device | str) -> torch.Tensor:
    order = np.argsort(rows)  # read a memory-mapped file in ascending order, then restore the batch order
    chunk = np.asarray(tokens[rows[order]], dtype=np.float32)
    return torch.from_numpy(chunk[np.argsort(order)]).to(device)


def _logits(
    probes: nn.ModuleList, tokens: np.ndarray, rows: np.ndarray, batch_size: int, device: torch.device | str
) -> list[torch.Tensor]:
    probes.eval()
    outputs: list[list[torch.Tensor]] = [[] for _ in probes]
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = _batch(tokens, rows[start : start + batch_size], device)
            for out, probe in zip(outputs, probes):
                out.append(probe(batch).float().cpu())
    return [torch.cat(out) for out in outputs]


def _hold_out(labels: np.ndarray, rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `rows` into (training rows, validation rows): `fraction` of each class, at least one of two or more."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for label in sorted(set(labels[rows].tolist())):
        members = rows[labels[rows] == label]
        members = members[torch.randperm(len(members), generator=generator).numpy()]
        count = max(1, round(fraction * len(members))) if len(members) >= 2 else 0
        held += members[:count].tolist()
        keep += members[count:].tolist()
    if not held:
        raise ValueError("no validation videos: pass val embeddings, or give classes at least two training videos")
    return np.array(sorted(keep)), np.array(sorted(held))
