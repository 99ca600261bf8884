"""Any input size: position embeddings interpolated at run time, checked against our own implementation of
the published arithmetic.

The fixture below (`published_spatial`, `published_temporal`) is written from the arithmetic alone, in
float64 NumPy, without `F.interpolate`: the published `interpolate_pos_encoding` resizes the stored
sqrt(N) x sqrt(N) grid by bicubic convolution (a = -0.75, border indices clamped, align_corners=False) with
the scale factors (h + 0.1) / sqrt(N) and (w + 0.1) / sqrt(N), so source coordinate x = (i + 0.5) / scale
- 0.5 for output index i (the given scale, not the size ratio), and flattens row-major. What it checks:
hvm1's interpolated spatial and temporal embeddings, the token order, and the embedded tokens (patch
embedding + positions + CLS) of a model at non-square sizes and other frame counts, to 1e-5; the
transformer blocks are size-agnostic and checked against the published outputs in test_parity.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hvm1
from hvm1.models import MAEConfig, ViTConfig, build_model
from hvm1.models.positions import interpolate_spatial, interpolate_temporal, sized_pos_embed
from reference_data import reference_dir, reference_heads

A = -0.75  # the bicubic convolution constant PyTorch (and so the published code) uses


def _cubic_weights(t: float) -> np.ndarray:
    """Weights of the four neighbours at offsets -1, 0, 1, 2 for fractional position t."""

    def near(x: float) -> float:  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    return np.array([far(t + 1), near(t), near(1 - t), far(2 - t)])


def _bicubic_matrix(size_in: int, scale: float) -> np.ndarray:
    """(floor(size_in * scale), size_in) matrix of the 1-D bicubic resize with the given scale factor."""
    size_out = math.floor(size_in * scale)
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        x = (i + 0.5) / scale - 0.5
        x0 = math.floor(x)
        for offset, weight in zip(range(-1, 3), _cubic_weights(x - x0)):
            matrix[i, min(max(x0 + offset, 0), size_in - 1)] += weight
    return matrix


def published_spatial(pos: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(N, C) stored spatial embeddings -> (rows * cols, C) as the published code computes them."""
    count, dim = pos.shape
    side = int(math.sqrt(count))
    if rows == cols and rows * cols == count:
        return pos
    grid = pos.reshape(side, side, dim)
    row_matrix = _bicubic_matrix(side, (rows + 0.1) / math.sqrt(count))
    col_matrix = _bicubic_matrix(side, (cols + 0.1) / math.sqrt(count))
    assert row_matrix.shape[0] == rows and col_matrix.shape[0] == cols
    out = np.einsum("ri,ijc,sj->rsc", row_matrix, grid, col_matrix)
    return out.reshape(rows * cols, dim)


def published_temporal(pos: np.ndarray, frames: int) -> np.ndarray:
    """(t0, C) -> (frames, C): linear, align_corners=False (source x = (i + 0.5) * t0 / frames - 0.5, >= 0)."""
    t0 = pos.shape[0]
    out = np.zeros((frames, pos.shape[1]))
    for i in range(frames):
        x = max((i + 0.5) * t0 / frames - 0.5, 0.0)
        x0 = min(math.floor(x), t0 - 1)
        x1 = min(x0 + 1, t0 - 1)
        out[i] = (1 - (x - x0)) * pos[x0] + (x - x0) * pos[x1]
    return out


def independent_tokens(model, video: torch.Tensor, prefix: str = "") -> np.ndarray:
    """Patch embedding (a strided Conv3d), positions from the fixture above, CLS prepended, in float64."""
    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    cfg = model.config
    tokens = F.conv3d(
        video.double(),
        sd["patch_embed.proj.weight"],
        sd["patch_embed.proj.bias"],
        stride=(cfg.t_patch_size, cfg.patch_size, cfg.patch_size),
    )  # (N, C, t, h, w)
    n, dim, t, h, w = tokens.shape
    tokens = tokens.flatten(2).transpose(1, 2).numpy()  # (N, t*h*w, C), time-major
    spatial = published_spatial(sd[f"{prefix}pos_embed_spatial"][0].numpy(), h, w)  # (h*w, C)
    temporal = published_temporal(sd[f"{prefix}pos_embed_temporal"][0].numpy(), t)  # (t, C)
    pos = (temporal[:, None, :] + spatial[None, :, :]).reshape(t * h * w, dim)
    cls = (sd["cls_token"] + sd["pos_embed_class"]).numpy().repeat(n, axis=0)
    return np.concatenate([cls, tokens + pos], axis=1)


def _close(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    actual = actual.detach().double().numpy()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected).max()
    assert err <= 1e-5 * max(1.0, np.abs(expected).max()), f"{what}: max abs error {err:.3g}"


# (rows, cols) from a 4x4 stored grid: non-square both ways, larger, smaller, one row, and the 480p
# propagation frame's grid (480 x 832 px at patch 14: 34 x 59) from ViT-H/14's 16 x 16.
@pytest.mark.parametrize("side, rows, cols", [(4, 4, 6), (4, 7, 3), (4, 9, 9), (4, 2, 2), (4, 1, 5), (16, 34, 59)])
def test_spatial_interpolation_matches_published_arithmetic(side, rows, cols):
    torch.manual_seed(rows * 100 + cols)
    pos = torch.randn(1, side * side, 8)
    resized = interpolate_spatial(pos, rows, cols)
    _close(resized[0], published_spatial(pos[0].double().numpy(), rows, cols), f"{rows}x{cols}")


def test_scale_factor_not_size_is_what_is_computed():
    """The fixture's point: resizing by scale factor (h + 0.1) / sqrt(N) differs from resizing to a size."""
    pos = torch.randn(1, 16, 8)
    by_size = (
        F.interpolate(pos.reshape(1, 4, 4, 8).permute(0, 3, 1, 2), size=(6, 6), mode="bicubic", align_corners=False)
        .permute(0, 2, 3, 1)
        .reshape(1, 36, 8)
    )
    ours = interpolate_spatial(pos, 6, 6)
    _close(ours[0], published_spatial(pos[0].double().numpy(), 6, 6), "6x6")
    assert (ours - by_size).abs().max() > 1e-3


@pytest.mark.parametrize("t0, frames", [(4, 8), (4, 2), (4, 3), (8, 5)])
def test_temporal_interpolation_is_linear(t0, frames):
    pos = torch.randn(1, t0, 8)
    _close(interpolate_temporal(pos, frames)[0], published_temporal(pos[0].double().numpy(), frames), "temporal")


def test_own_size_returns_the_stored_tensors():
    spatial, temporal = torch.randn(1, 16, 8), torch.randn(1, 4, 8)
    assert interpolate_spatial(spatial, 4, 4) is spatial
    assert interpolate_temporal(temporal, 4) is temporal
    expected = spatial.repeat(1, 4, 1) + temporal.repeat_interleave(16, dim=1)
    assert torch.equal(sized_pos_embed(spatial, temporal, (4, 4, 4)), expected)


@pytest.mark.parametrize("frames, height, width", [(8, 56, 84), (8, 98, 42), (4, 70, 70), (12, 28, 56), (8, 56, 56)])
def test_reference_vit_embeds_any_size_as_published(frames, height, width):
    path = reference_dir("tiny")
    model = hvm1.load_model(path / "vit_checkpoint.pth", **reference_heads(path))
    torch.manual_seed(frames + height + width)
    video = torch.randn(2, 3, frames, height, width)
    with torch.no_grad():
        tokens = model.embed_tokens(video)
        logits = model(video)
        features = model.forward_features(video)
    expected = independent_tokens(model, video)
    _close(tokens, expected, f"tokens at {frames}x{height}x{width}")
    with torch.no_grad():  # the same blocks and head on the independently embedded tokens
        x = torch.from_numpy(expected).float()
        for block in model.blocks:
            x = block(x)
        expected_logits = model.head(model.norm(x)[:, 0])
    _close(logits, expected_logits.double().numpy(), "logits")
    length = (frames // 2) * (height // 14) * (width // 14)
    assert features.shape == (2, 1 + length, 64)


def test_reference_mae_runs_at_another_size_with_decoder_embeddings_interpolated():
    path = reference_dir("tiny")
    model = hvm1.load_model(path / "mae_checkpoint.pth", **reference_heads(path))
    video = torch.randn(2, 3, 12, 42, 70)  # 6 x 3 x 5 tokens against the trained 4 x 4 x 4
    with torch.no_grad():
        loss, pred, mask, comparison = model(video, mask_ratio=0.5, visualize=True, mask_type="center")
    grid = (6, 3, 5)
    assert pred.shape == (2, 90, 2 * 14 * 14 * 3) and mask.shape == (2, 90)
    assert int(mask[0].sum()) == 90 - 45  # masking over the new token count
    assert comparison.shape == (2, 3, 3, 12, 42, 70) and torch.isfinite(loss)
    sd = {k: v.double() for k, v in model.state_dict().items()}
    decoder = sized_pos_embed(model.decoder_pos_embed_spatial, model.decoder_pos_embed_temporal, grid)
    spatial = published_spatial(sd["decoder_pos_embed_spatial"][0].numpy(), 3, 5)
    temporal = published_temporal(sd["decoder_pos_embed_temporal"][0].numpy(), 6)
    _close(decoder[0], (temporal[:, None] + spatial[None]).reshape(90, -1), "decoder positions")
    # Nothing masked: the encoder's tokens are those of the independent embedding.
    masking = model.make_masking(2, 0.0, "temporal", num_patches=90)
    with torch.no_grad():
        latent = model.forward_encoder(video, masking)
        x = torch.from_numpy(independent_tokens(model, video)).float()
        for block in model.blocks:
            x = block(x)
        expected = model.norm(x)[:, 1:]
    _close(latent, expected.double().numpy(), "encoder at 12x42x70")


def test_pred_t_dim_scales_with_the_frame_count():
    path = reference_dir("tiny_b")  # pred_t_dim 4 of 8 frames: u' = 1
    model = hvm1.load_model(path / "mae_checkpoint.pth", **reference_heads(path))
    with torch.no_grad():
        _, pred, _, comparison = model(torch.randn(1, 3, 16, 56, 56), mask_ratio=0.5, visualize=True)
    assert pred.shape == (1, 8 * 16, 14 * 14 * 3) and comparison.shape[3] == 8


@pytest.mark.parametrize(
    "shape, reason",
    [
        ((1, 3, 3, 28, 28), "3 frames is not a positive multiple of the tubelet 2"),
        ((1, 3, 4, 30, 28), "30x28 is not a positive multiple of the patch 14"),
        ((1, 3, 4, 28, 0), "28x0 is not a positive multiple"),
        ((1, 1, 4, 28, 28), r"expected a video of shape \(N, 3, T, H, W\)"),
        ((3, 4, 28, 28), r"expected a video of shape \(N, 3, T, H, W\)"),
    ],
)
def test_sizes_that_do_not_divide_are_value_errors(shape, reason):
    vit = build_model(ViTConfig(img_size=28, num_frames=4, embed_dim=32, depth=1, num_heads=2))
    mae = build_model(
        MAEConfig(
            img_size=28,
            num_frames=4,
            embed_dim=32,
            depth=1,
            num_heads=2,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2,
            pred_t_dim=4,
        )
    )
    for model in (vit, mae):
        with pytest.raises(ValueError, match=reason):
            model(torch.zeros(shape))
