"""The `hvm1.viz` library: completion and attention arrays before encoding, grids, names, selection, prefetch."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import hvm1
from hvm1 import zoo
from hvm1.data import file_generator, select_videos, transforms, visualisation_preset
from hvm1.viz import (
    attention_grid,
    attention_maps,
    complete_clip,
    completion_grid,
    completion_tiles,
    heat_colours,
    make_grid,
    make_sample_clip,
    output_stems,
    to_uint8,
)
from hvm1.viz.runs import prefetched_clips

MEAN, STD = (0.45,) * 3, (0.225,) * 3
FILL = round(0.45 * 255)  # a removed patch is 0 in normalised units: the mean colour


@pytest.fixture(scope="module")
def tiny_clip():
    """A function: the video at a path as the tiny models take it (56 px, 8 frames), decoded once per module."""
    preset, clips = visualisation_preset(56, 8, MEAN, STD), {}

    def load(path: Path) -> torch.Tensor:
        if path not in clips:
            clips[path] = preset.load(path)[0]
        return clips[path]

    return load


@pytest.mark.parametrize("mask_type", ["random", "temporal", "center"])
@pytest.mark.parametrize("name", ["box.mp4", "tree.avi"])
def test_masked_row_is_flat_exactly_where_the_mask_says(mask_type, name, reference_mae, videos_dir, tiny_clip):
    config = reference_mae.config
    clip = tiny_clip(videos_dir / name)
    completion = complete_clip(reference_mae, clip, mask_type, generator=file_generator(0, name))
    original, masked, completed = completion_tiles(completion, MEAN, STD)  # each (T', S, S, 3)
    removed = completion.removed[0].numpy()  # (T', S, S)
    assert removed.shape == original.shape[:3] == (config.pred_t_dim, config.img_size, config.img_size)
    assert 0 < removed.mean() < 1

    assert (masked[removed] == FILL).all()
    assert (masked[~removed] == original[~removed]).all()
    assert (completed[~removed] == original[~removed]).all()
    # No visible patch is the flat fill: the fill marks the mask and nothing else.
    t, h, w = config.grid_size
    u, p = config.pred_t_patch_size, config.patch_size
    patches = masked.reshape(t, u, h, p, w, p, 3).transpose(0, 2, 4, 1, 3, 5, 6).reshape(t * h * w, -1)
    flat = (patches == FILL).all(axis=1)
    assert (flat == completion.mask[0].bool().numpy()).all()

    grid = completion_grid(completion, MEAN, STD)
    size = config.img_size + 1
    assert grid.shape == (3 * size + 1, config.pred_t_dim * size + 1, 3)
    assert (grid[size + 1 : 2 * size, 1:size] == masked[0]).all()  # row 2, column 1


def test_true_colours_undo_the_normalisation_exactly():
    frames = torch.randint(0, 256, (3, 4, 14, 14), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for mean, std in ((MEAN, STD), (zoo.IMAGENET_MEAN, zoo.IMAGENET_STD)):
        tiles = to_uint8(transforms.normalize(frames, mean, std), mean, std)
        assert (tiles == frames.permute(1, 2, 3, 0).numpy()).all()


def test_scale_each_stretches_every_tile_to_the_full_range():
    frames = torch.rand(3, 4, 14, 14, generator=torch.Generator().manual_seed(0)) * 0.2 + torch.arange(4.0).view(
        1, 4, 1, 1
    )
    tiles = to_uint8(frames, MEAN, STD, scale_each=True)
    assert tiles.reshape(4, -1).min(axis=1).tolist() == [0] * 4
    assert tiles.reshape(4, -1).max(axis=1).tolist() == [255] * 4


def test_grid_has_one_pixel_padding():
    tiles = np.full((2, 3, 5, 5, 3), 200, dtype=np.uint8)
    grid = make_grid(tiles)
    assert grid.shape == (2 * 6 + 1, 3 * 6 + 1, 3)
    assert (grid[0] == 0).all() and (grid[:, 6] == 0).all() and (grid[1:6, 1:6] == 200).all()


def test_attention_picture(reference, videos_dir, tiny_clip):
    vit = hvm1.load_model(reference / "vit_checkpoint.pth", num_heads=4)
    config = vit.config
    clip = tiny_clip(videos_dir / "cup.mp4")
    maps = attention_maps(vit, clip)
    t, h, w = config.grid_size
    assert maps.shape == (1, 4, t, h, w)
    with torch.no_grad():
        expected = vit.get_last_selfattention(clip[None])[:, :, 0, 1:]
    torch.testing.assert_close(maps.flatten(2), expected, rtol=1e-5, atol=1e-6)

    size = config.img_size + 1
    for heads, rows in (("mean", 1), ("each", 4)):
        grid = attention_grid(clip, maps[0], MEAN, STD, heads)
        assert grid.shape == ((1 + rows) * size + 1, t * size + 1, 3)
    frames = to_uint8(clip, MEAN, STD)  # (T, S, S, 3): the top row shows the first frame of each token
    assert (grid[1:size, 1:size] == frames[0]).all() and (grid[1:size, size + 1 : 2 * size] == frames[2]).all()


def test_heat_colours_run_from_dark_blue_to_yellow():
    low, high = heat_colours(np.array([0.0, 1.0]))
    assert low.tolist() == [68, 1, 84] and high.tolist() == [253, 231, 37]


def test_clashing_stems_get_their_relative_folder(tmp_path):
    videos = [
        tmp_path / "a" / "clip.mp4",
        tmp_path / "b" / "clip.mp4",
        tmp_path / "clip.mp4",
        tmp_path / "a" / "clip.avi",
        tmp_path / "a" / "other.mp4",
    ]
    assert output_stems(videos) == [Path("a/clip.mp4"), Path("b/clip"), Path("clip"), Path("a/clip.avi"), Path("other")]


def test_num_vids_draws_a_seeded_subset_in_folder_order(videos_dir):
    everything = select_videos(videos_dir)
    assert [video.name for video in everything] == ["box.mp4", "cup.mp4", "tree.avi", "vtest.avi"]
    drawn = select_videos(videos_dir, num_vids=2, seed=1)
    assert drawn == select_videos(videos_dir, num_vids=2, seed=1)
    assert len(drawn) == 2 and drawn == [video for video in everything if video in drawn]
    assert select_videos([videos_dir, videos_dir / "box.mp4"], num_vids=9) == everything
    with pytest.raises(ValueError, match="num_vids must be >= 1"):
        select_videos(videos_dir, num_vids=0)


def test_the_next_video_decodes_while_the_current_one_is_worked_on():
    second_started = threading.Event()

    class Preset:
        def load(self, video):
            if video == Path("1"):
                second_started.set()
            return torch.zeros(1), 0

    clips = prefetched_clips([Path("0"), Path("1")], Preset())
    next(clips)
    # The caller now holds video 0; video 1 must be decoding without the caller asking for it.
    assert second_started.wait(timeout=60)
    assert len(list(clips)) == 1


def test_mp4_falls_back_to_mpeg4_and_pads_odd_sizes(tmp_path, monkeypatch):
    from hvm1.viz import grid

    monkeypatch.setattr(grid, "H264_ENCODERS", ("no-such-encoder",))
    assert grid.mp4_encoder() == "mpeg4"
    frames = np.random.default_rng(0).integers(0, 256, (5, 33, 47, 3), dtype=np.uint8)
    path = grid.write_animation(frames, tmp_path / "clip.mp4", 7.5)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(decoded) == 5 and decoded[0].shape == (34, 48, 3)


def test_sample_clip_is_a_readable_video(tmp_path):
    path = make_sample_clip(tmp_path / "sample.mp4", num_frames=20, height=120, width=160)
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 20 and frames[0].shape == (120, 160, 3)
    assert not (frames[0] == frames[-1]).all()  # the shapes move
