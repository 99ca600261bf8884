"""Completion scores: the metrics and baselines compute what they say, masks are shared and seeded."""

from __future__ import annotations

import csv
import math

import pytest
import torch

import hvm1
from hvm1.cli import main
from hvm1.eval.scores import (
    SCORE_COLUMNS,
    baseline_completion,
    masked_psnr,
    masked_ssim,
    read_scores,
    score_clip,
    summarise,
)
from hvm1.models.masking import make_masking
from reference_data import MAE_CHECKPOINT, VIDEOS, fixture

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def tiny_mae(seed: int = 0, **overrides) -> hvm1.models.VideoMAE:
    """A random-weight MAE over 8 frames of 32 px: a 4 x 2 x 2 token grid."""
    torch.manual_seed(seed)
    config = dict(
        img_size=32,
        num_frames=8,
        pred_t_dim=8,
        depth=1,
        num_heads=3,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    return hvm1.create_model("mae_vit_tiny_patch16", **{**config, **overrides}).eval()


def by_method(rows, mask_type, ratio):
    return {r.method: r for r in rows if r.mask_type == mask_type and r.mask_ratio == ratio}


def test_copying_baselines_are_exact_on_a_static_video():
    clip = torch.randn(3, 1, 32, 32).expand(3, 8, 32, 32).clone()
    rows = score_clip({"m": tiny_mae()}, clip, MEAN, STD, mask_types=("temporal", "center"), mask_ratios=(0.5, 0.75))
    for mask_type in ("temporal", "center"):
        for ratio in (0.5, 0.75):
            scored = by_method(rows, mask_type, ratio)
            assert scored["nearest_frame"].loss == 0.0
            assert scored["nearest_frame"].psnr == math.inf
            assert scored["nearest_frame"].ssim == pytest.approx(1.0, abs=1e-12)
            assert scored["mean"].psnr < 30 and scored["m"].psnr < 30
    assert by_method(rows, "center", 0.5)["interpolate"].loss == 0.0
    assert "interpolate" not in by_method(rows, "temporal", 0.5)  # nothing visible after the gap


def test_interpolation_is_exact_on_a_linear_fade_and_nearest_frame_is_not():
    frames = torch.arange(8, dtype=torch.float32).view(1, 1, 8, 1, 1)
    video = (torch.randn(1, 3, 1, 16, 16) + 0.3 * frames).expand(1, 3, 8, 16, 16).clone()
    removed = torch.zeros(1, 8, 16, 16, dtype=torch.bool)
    removed[:, 2:6] = True  # frames 2-5 gone: 1 before, 6 after
    interpolated = baseline_completion(video, removed, "interpolate")
    nearest = baseline_completion(video, removed, "nearest_frame")
    torch.testing.assert_close(interpolated, video)
    torch.testing.assert_close(nearest[:, :, 2:4], video[:, :, 1:2].expand(-1, -1, 2, -1, -1))  # 2, 3 <- 1
    torch.testing.assert_close(nearest[:, :, 4:6], video[:, :, 6:7].expand(-1, -1, 2, -1, -1))  # 4, 5 <- 6
    removed_everywhere = torch.ones(1, 8, 16, 16, dtype=torch.bool)
    assert baseline_completion(video, removed_everywhere, "nearest_frame").abs().max() == 0  # nothing seen: mean


def test_ties_go_to_the_earlier_frame():
    video = torch.arange(3, dtype=torch.float32).view(1, 1, 3, 1, 1).expand(1, 3, 3, 2, 2).clone()
    removed = torch.zeros(1, 3, 2, 2, dtype=torch.bool)
    removed[:, 1] = True
    assert (baseline_completion(video, removed, "nearest_frame")[:, :, 1] == 0).all()
    assert (baseline_completion(video, removed, "interpolate")[:, :, 1] == 1).all()


def test_model_loss_is_the_models_own_and_the_mean_baseline_is_the_target_energy():
    for norm_pix_loss in (False, True):
        model = tiny_mae(norm_pix_loss=norm_pix_loss)
        clip = torch.randn(3, 8, 32, 32)
        rows = score_clip({"m": model}, clip, MEAN, STD, mask_types=("center",), mask_ratios=(0.5,))
        scored = by_method(rows, "center", 0.5)
        with torch.no_grad():
            own_loss, _, mask = model(clip[None], mask_ratio=0.5, mask_type="center")
        assert scored["m"].loss == pytest.approx(float(own_loss), rel=1e-5)
        target = model.patchify(clip[None])
        if norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
        energy = float((target**2).mean(-1)[mask.bool()].mean())
        assert scored["mean"].loss == pytest.approx(energy, rel=1e-5)


def test_psnr_and_ssim_of_known_differences():
    original = torch.full((1, 3, 2, 24, 24), 100.0)
    removed = torch.zeros(1, 2, 24, 24, dtype=torch.bool)
    removed[:, 1, 4:12, 4:12] = True
    completion = original + 10 * removed.unsqueeze(1)
    assert float(masked_psnr(completion, original, removed)[0]) == pytest.approx(20 * math.log10(255 / 10))
    # Constant images: SSIM is the luminance term alone; only the removed pixels are averaged.
    c1 = (0.01 * 255) ** 2
    other = torch.full_like(original, 110.0)
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert float(masked_ssim(other, original, removed)[0]) == pytest.approx(expected)
    assert float(masked_ssim(original, original, removed)[0]) == pytest.approx(1.0)
    noisy = original + 40 * torch.randn_like(original)
    assert float(masked_ssim(noisy, original, removed)[0]) < 0.5


def test_masks_are_shared_seeded_and_nested():
    clip = torch.randn(3, 8, 32, 32)
    models = {"a": tiny_mae(0), "b": tiny_mae(1)}

    def run(seed):
        return score_clip(
            models, clip, MEAN, STD, mask_ratios=(0.25, 0.5), generator=torch.Generator().manual_seed(seed)
        )

    first, again, other = run(0), run(0), run(1)
    assert first == again
    random_rows = lambda rows: [r for r in rows if r.mask_type == "random"]  # noqa: E731
    assert random_rows(first) != random_rows(other)
    assert [r for r in first if r.mask_type != "random"] == [r for r in other if r.mask_type != "random"]
    assert by_method(first, "random", 0.5)["a"].loss != by_method(first, "random", 0.5)["b"].loss
    # One noise per clip: a higher ratio removes a superset of a lower one's tokens.
    noise = torch.rand(1, 16, generator=torch.Generator().manual_seed(0))
    low, high = (make_masking("random", r, 1, 16, noise=noise).mask for r in (0.25, 0.5))
    assert bool((high >= low).all()) and high.sum() > low.sum()


def test_models_on_other_token_grids_are_refused():
    with pytest.raises(ValueError, match="token grids"):
        score_clip({"a": tiny_mae(), "b": tiny_mae(img_size=64)}, torch.randn(3, 8, 32, 32), MEAN, STD)


def test_score_command_writes_the_table_and_plot_and_names_a_broken_video(tmp_path, capsys):
    videos, checkpoint = fixture(VIDEOS), fixture(MAE_CHECKPOINT)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "out"
    args = [
        "score",
        str(videos / "box.mp4"),
        str(broken),
        "--checkpoint",
        str(checkpoint),
        "--set",
        "num_heads=4",
        "--set",
        "decoder_num_heads=4",
        "--mask-ratios",
        "0.5",
        "0.75",
        "--out-dir",
        str(out),
    ]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "1 of 2 videos" in captured.err
    with open(out / "scores.csv", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == SCORE_COLUMNS
    rows = read_scores(out / "scores.csv")
    # 2 ratios x (random, center: model + 3 baselines; temporal: model + 2), one video.
    assert len(rows) == 2 * (4 + 3 + 4) and {r.video for r in rows} == {str(videos / "box.mp4")}
    for row in summarise(rows):
        line = next(
            line
            for line in captured.out.splitlines()
            if line.split()[:3] == [row.mask_type, f"{row.mask_ratio:.2f}", row.method]
        )
        assert line.split()[3] == f"{row.loss:.4f}"
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(args[:-1] + [str(tmp_path / "again")]) == 1
    assert read_scores(tmp_path / "again" / "scores.csv") == rows


def test_bf16_autocast_moves_only_the_model_rows():
    clip = torch.randn(3, 8, 32, 32)
    kwargs = dict(mask_types=("center",), mask_ratios=(0.5,))
    exact = by_method(score_clip({"m": tiny_mae()}, clip, MEAN, STD, **kwargs), "center", 0.5)
    bf16 = by_method(score_clip({"m": tiny_mae()}, clip, MEAN, STD, precision="bf16", **kwargs), "center", 0.5)
    assert bf16["m"].loss == pytest.approx(exact["m"].loss, rel=0.05) and bf16["m"].loss != exact["m"].loss
    assert all(bf16[method] == exact[method] for method in ("mean", "nearest_frame", "interpolate"))
