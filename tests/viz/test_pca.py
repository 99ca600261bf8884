"""Feature maps: one PCA over all time steps (and videos), min-max colours, the foreground step, the command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import hvm1
from hvm1.cli import main
from hvm1.data import visualisation_preset
from hvm1.viz.pca import feature_map_grid, fit_pca, patch_token_grid, pca_feature_maps


def clustered_grid(generator: torch.Generator, t=4, h=3, w=5, channels=16, centres=None):
    """Token grids (t, h, w, C) whose tokens are one of 4 centres plus tiny noise; returns grid and labels."""
    centres = torch.randn(4, channels, generator=generator) * 3 if centres is None else centres
    labels = torch.randint(0, len(centres), (t, h, w), generator=generator)
    return centres[labels] + 1e-4 * torch.randn(t, h, w, channels, generator=generator), labels, centres


def test_one_pca_over_all_time_steps_gives_one_colour_per_feature():
    grid, labels, _ = clustered_grid(torch.Generator().manual_seed(0))
    maps = pca_feature_maps(grid[None]).maps[0]  # (t, h, w, 3)
    assert maps.shape == (4, 3, 5, 3)
    flat, flat_labels = maps.reshape(-1, 3), labels.reshape(-1)
    for label in range(4):
        colours = flat[flat_labels == label]
        assert (colours - colours[0]).abs().max() < 1e-3  # the same feature, the same colour in every frame
    # Each component is min-max scaled over the fitted tokens.
    assert torch.allclose(flat.amin(0), torch.zeros(3), atol=1e-6)
    assert torch.allclose(flat.amax(0), torch.ones(3), atol=1e-6)


def test_fit_matches_the_covariance_eigenvectors():
    tokens = torch.randn(200, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    fit = fit_pca(tokens)
    values, vectors = torch.linalg.eigh(torch.cov(tokens.T))
    top = vectors[:, -3:].flip(1).T  # (3, C), largest eigenvalue first
    torch.testing.assert_close((fit.components * top).sum(1).abs(), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(fit.explained, values[-3:].flip(0) / values.sum())
    assert (fit.components.gather(1, fit.components.abs().argmax(1, keepdim=True)) > 0).all()


def test_a_joint_fit_colours_the_same_feature_alike_in_every_video():
    generator = torch.Generator().manual_seed(1)
    first, labels_a, centres = clustered_grid(generator)
    second, labels_b, _ = clustered_grid(generator, centres=centres[:2])  # only two of the features
    joint = pca_feature_maps([first, second]).maps
    alone = pca_feature_maps(second[None]).maps[0]
    for label in range(2):
        a, b = joint[0][labels_a == label][0], joint[1][labels_b == label][0]
        assert (a - b).abs().max() < 1e-3
    assert (joint[0][labels_a == 0][0] - alone[labels_b == 0][0]).abs().max() > 0.1  # a fit of its own differs


def test_foreground_step_keeps_the_smaller_side_and_refits_on_it():
    generator = torch.Generator().manual_seed(2)
    grid = torch.randn(2, 6, 6, 8, generator=generator) * 0.1
    region = torch.zeros(2, 6, 6, dtype=torch.bool)
    region[:, 1:3, 2:5] = True  # a small object in both frames
    grid[region] += torch.randn(8, generator=generator) * 5  # far from the background along one direction
    result = pca_feature_maps(grid[None], foreground_threshold=0.5)
    assert torch.equal(result.foreground[0], region)
    assert (result.maps[0][~region] == 0).all()
    assert torch.equal(result.fit.mean, grid[region].double().mean(0))  # refitted on the foreground alone
    with pytest.raises(ValueError, match="threshold"):
        pca_feature_maps(grid[None], foreground_threshold=1.5)


def test_patch_tokens_of_the_last_layer_are_forward_features():
    torch.manual_seed(0)
    model = hvm1.create_model("vit_tiny_patch16", img_size=32, num_frames=4, depth=2, num_heads=3).eval()
    clip = torch.randn(3, 4, 32, 32)
    with torch.no_grad():
        features = model.forward_features(clip[None])[0, 1:].reshape(2, 2, 2, -1)
        block0 = model.forward_intermediates(clip[None], indices=[0], norm=True)[0][0, 1:].reshape(2, 2, 2, -1)
    torch.testing.assert_close(patch_token_grid(model, clip), features)
    torch.testing.assert_close(patch_token_grid(model, clip, layer=-1), features)
    torch.testing.assert_close(patch_token_grid(model, clip, layer=0), block0)
    assert patch_token_grid(model, torch.randn(3, 4, 64, 48)).shape == (2, 4, 3, 192)  # any size


def test_pca_command_draws_frames_over_their_maps(vit_args, two_videos, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    out = tmp_path / "out"
    assert (
        main(
            ["pca", *map(str, two_videos), str(broken), *vit_args, "--joint", "--animate", "gif", "--out-dir", str(out)]
        )
        == 1
    )
    assert "broken.mp4" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{v.stem}_vit_checkpoint_pca.{suffix}" for v in two_videos for suffix in ("jpg", "gif")
    )
    # The picture is the library's: 2 rows (frames, maps) x 4 tubelets of 56 px, maps from one joint PCA.
    model = hvm1.load_model(vit_args[1], num_heads=4)
    preset = visualisation_preset(56, 8, (0.45,) * 3, (0.225,) * 3)
    clips = [preset.load(video)[0] for video in two_videos]
    maps = pca_feature_maps([patch_token_grid(model, clip) for clip in clips]).maps
    for video, clip, video_maps in zip(two_videos, clips, maps):
        expected = feature_map_grid(clip, video_maps, preset.mean, preset.std, 2)
        written = np.asarray(Image.open(out / f"{video.stem}_vit_checkpoint_pca.jpg"), dtype=np.float32)
        assert written.shape == expected.shape == (2 * 57 + 1, 4 * 57 + 1, 3)
        assert np.abs(written - expected).mean() < 3.0


def test_pca_full_frame_keeps_the_aspect_ratio(vit_args, two_videos, tmp_path):
    from hvm1.data import whole_frame_preset

    out = tmp_path / "out"
    video = two_videos[0]
    assert main(["pca", str(video), *vit_args, "--full-frame", "--out-dir", str(out), "--precision", "fp32"]) == 0
    model = hvm1.load_model(vit_args[1], num_heads=4)
    preset = whole_frame_preset(visualisation_preset(56, 8, (0.45,) * 3, (0.225,) * 3), 14)
    clip = preset.load(video)[0]
    assert clip.shape[-1] != clip.shape[-2]  # the whole frame, not a square crop
    maps = pca_feature_maps(patch_token_grid(model, clip)[None]).maps[0]
    expected = feature_map_grid(clip, maps, preset.mean, preset.std, 2)
    written = np.asarray(Image.open(out / f"{video.stem}_vit_checkpoint_pca.jpg"), dtype=np.float32)
    assert written.shape == expected.shape
    assert np.abs(written - expected).mean() < 3.0
