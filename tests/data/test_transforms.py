"""Transforms as plain functions on tensors, and the presets built from a model's facts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hvm1.data import (
    image_eval_preset,
    read_clip,
    read_image,
    video_eval_preset,
    video_train_preset,
    visualisation_preset,
)
from hvm1.data.transforms import (
    center_crop,
    hflip,
    image_to_clip,
    normalize,
    random_resized_crop,
    resize,
    resize_short_side,
    to_cthw,
    uniform_crop,
)
from hvm1.zoo import IMAGENET_MEAN, IMAGENET_STD, VIDEO_MEAN, VIDEO_STD
from reference_data import VIDEOS, fixture


def grid(height: int, width: int) -> torch.Tensor:
    """(3, 2, H, W) uint8 whose pixel value at (y, x) is y * width + x (mod 256): shows where a crop came from."""
    values = (torch.arange(height * width) % 256).to(torch.uint8).view(height, width)
    return values.expand(3, 2, height, width).clone()


@pytest.mark.parametrize(
    "shape, expected", [((480, 640), (256, 341)), ((640, 480), (341, 256)), ((300, 300), (256, 256))]
)
def test_resize_short_side(shape, expected):
    out = resize_short_side(grid(*shape), 256)
    assert out.shape == (3, 2, *expected) and out.dtype == torch.uint8
    assert resize_short_side(grid(*shape).float(), 256).dtype == torch.float32


def test_resize_keeps_a_flat_image_flat():
    flat = torch.full((3, 50, 70), 117, dtype=torch.uint8)
    assert torch.equal(resize(flat, (31, 44)), torch.full((3, 31, 44), 117, dtype=torch.uint8))


def test_center_and_uniform_crops():
    x = grid(6, 10)
    assert torch.equal(center_crop(x, 4), x[..., 1:5, 3:7])
    assert torch.equal(uniform_crop(x, 4, "left"), x[..., 1:5, 0:4])
    assert torch.equal(uniform_crop(x, 4, "center"), x[..., 1:5, 3:7])
    assert torch.equal(uniform_crop(x, 4, "right"), x[..., 1:5, 6:10])
    tall = grid(10, 6)
    assert torch.equal(uniform_crop(tall, 4, "left"), tall[..., 0:4, 1:5])  # top
    assert torch.equal(uniform_crop(tall, 4, "right"), tall[..., 6:10, 1:5])  # bottom
    assert center_crop(x, (2, 8)).shape[-2:] == (2, 8)
    assert torch.equal(center_crop(x, 3), x[..., 2:5, 4:7])  # odd margins: the extra pixel comes first
    with pytest.raises(ValueError, match="cannot crop 7x7 from a 6x10"):
        center_crop(x, 7)
    with pytest.raises(ValueError, match="position"):
        uniform_crop(x, 4, "top")


def test_random_resized_crop_draws_from_the_generator():
    x = grid(60, 80)
    first = random_resized_crop(x, 32, generator=torch.Generator().manual_seed(3))
    again = random_resized_crop(x, 32, generator=torch.Generator().manual_seed(3))
    other = random_resized_crop(x, 32, generator=torch.Generator().manual_seed(4))
    assert first.shape == (3, 2, 32, 32)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(first[:, 0], first[:, 1])  # one crop for every frame
    # The whole image when scale and aspect allow nothing else.
    whole = random_resized_crop(x, (60, 80), scale=(1.0, 1.0), ratio=(80 / 60, 80 / 60))
    assert torch.equal(whole, x)
    # Impossible draws fall back to the largest central crop within the aspect range.
    narrow = random_resized_crop(grid(20, 200), (10, 10), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.equal(narrow, resize(grid(20, 200)[..., :, 90:110], (10, 10)))


def test_hflip_and_image_to_clip():
    x = grid(4, 5)
    assert torch.equal(hflip(x)[..., 0], x[..., -1])
    image = torch.rand(3, 8, 9)
    clip = image_to_clip(image, 16)
    assert clip.shape == (3, 16, 8, 9)
    assert all(torch.equal(clip[:, index], image) for index in range(16))


def test_normalize():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 2).expand(3, 2)
    out = normalize(x, VIDEO_MEAN, VIDEO_STD)
    assert out.dtype == torch.float32
    assert out[:, 0].tolist() == pytest.approx([-0.45 / 0.225] * 3)
    assert out[:, 1].tolist() == pytest.approx([0.55 / 0.225] * 3)
    assert torch.allclose(
        normalize(x.float() / 255, IMAGENET_MEAN, IMAGENET_STD), normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    )
    floats = torch.rand(3, 4, 4)
    unchanged = floats.clone()
    normalize(floats, VIDEO_MEAN, VIDEO_STD)
    assert torch.equal(floats, unchanged)
    with pytest.raises(ValueError, match="3/3 values for 1 channels"):
        normalize(torch.zeros(1, 4, 4), VIDEO_MEAN, VIDEO_STD)


def test_to_cthw():
    frames = torch.zeros(16, 5, 7, 3)
    assert to_cthw(frames).shape == (3, 16, 5, 7)
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        to_cthw(torch.zeros(5, 7, 3))


@pytest.mark.parametrize("img_size", [224, 448])
def test_presets_follow_the_published_numbers(img_size):
    vis = visualisation_preset(img_size, 16, VIDEO_MEAN, VIDEO_STD)
    assert (vis.sampling_rate, vis.short_side, vis.crop, vis.num_frames) == (4, img_size + 32, "center", 16)
    evaluation = video_eval_preset(img_size, 16, VIDEO_MEAN, VIDEO_STD)
    assert (evaluation.short_side, evaluation.sampling_rate) == (img_size * 256 // 224, 8)
    image = image_eval_preset(img_size, 16, IMAGENET_MEAN, IMAGENET_STD)
    assert (image.resize_to, image.mean) == (img_size + 32, IMAGENET_MEAN)


def test_video_presets_give_model_inputs():
    path = fixture(VIDEOS / "cup.mp4")
    vis, padded = visualisation_preset(64, 8, VIDEO_MEAN, VIDEO_STD).load(path)
    assert vis.shape == (3, 8, 64, 64) and vis.dtype == torch.float32 and padded == 0
    assert vis.is_contiguous()
    views, _ = video_eval_preset(64, 4, VIDEO_MEAN, VIDEO_STD, crop="uniform").load(path, start=(0, 3))
    assert views.shape == (3, 3, 4, 64, 64)
    assert not torch.equal(views[0], views[2])
    full = read_clip(path, 4, 8, start=(0, 3)).frames  # full resolution: the preset resizes it itself
    resized_here = video_eval_preset(64, 4, VIDEO_MEAN, VIDEO_STD)(full)
    assert (resized_here - views[1]).abs().mean().item() < 0.05  # torch's resize, not swscale's
    train = video_train_preset(32, 4, VIDEO_MEAN, VIDEO_STD, short_side=(40, 48), crop_scale=(0.5, 1.0))
    generator = torch.Generator().manual_seed(0)
    first, _ = train.load(path, generator=generator)
    assert first.shape == (3, 4, 32, 32)
    assert not torch.equal(first, train.load(path, generator=generator)[0])  # a new start, size, crop, flip


def test_image_preset_matches_the_published_pil_pipeline(images):
    preset = image_eval_preset(224, 16, IMAGENET_MEAN, IMAGENET_STD)
    clip, padded = preset.load(images[0])
    assert clip.shape == (3, 16, 224, 224) and padded == 0
    # Published: PIL bicubic resize of the short side to 256, center crop 224, ToTensor, Normalize.
    with Image.open(images[0]) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        size = (256, round(height * 256 / width)) if width <= height else (round(width * 256 / height), 256)
        resized = np.asarray(rgb.resize(size, Image.BICUBIC))
    top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
    expected = torch.from_numpy(resized[top : top + 224, left : left + 224].copy()).permute(2, 0, 1)
    ours = preset(read_image(images[0]))[:, 0]
    published = normalize(expected, IMAGENET_MEAN, IMAGENET_STD)
    assert (ours - published).abs().mean().item() < 0.02  # under 1.2 grey levels on average
