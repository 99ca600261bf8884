"""Label propagation step by step: the frame size rule, features, one propagation step against a loop written
from the published description, the output resize, and identical frames carrying the first mask unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_data import as_tensors, moving_object_sequence, video_frames

from hvm1.progress import Progress
from hvm1.segment import PropagationConfig, frame_features, frame_size, prepare_frame, propagate, propagate_labels
from hvm1.segment.propagation import first_frame_labels, labels_to_mask, neighbourhood


@pytest.mark.parametrize(
    "height, width, expected",
    [
        ((480, 854, (480, 832))),
        ((854, 480, (832, 480))),
        ((480, 640, (480, 640))),
        ((720, 1280, (480, 832))),
        ((500, 500, (480, 448))),
        ((240, 320, (480, 640))),
    ],
)
def test_frame_size_rule(height, width, expected):
    assert frame_size(height, width) == expected


def test_prepare_frame_normalises_with_the_published_mean_and_std():
    frame = torch.full((3, 240, 320), 200, dtype=torch.uint8)
    prepared = prepare_frame(frame)
    assert prepared.shape == (3, 480, 640)
    expected = [(200 / 255 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.228, 0.224, 0.225))]
    torch.testing.assert_close(prepared[:, 100, 100], torch.tensor(expected))
    with pytest.raises(ValueError, match=r"expected a \(3, H, W\) uint8 RGB frame"):
        prepare_frame(frame.float())


def test_frame_features_average_the_repeated_frame_over_time(tiny_vit):
    frame = prepare_frame(
        torch.from_numpy(video_frames("box.mp4", 1)[0]).permute(2, 0, 1).contiguous(), PropagationConfig(short_side=240)
    )  # 240 x 320: 17 x 22 patches, 4 px uncovered each way
    features = frame_features(tiny_vit, frame)
    assert features.shape == (17, 22, 64)
    clip = frame[:, : 17 * 14, : 22 * 14].unsqueeze(1).repeat(1, 8, 1, 1)[None]  # 8 frames: the model's count
    with torch.no_grad():
        tokens = tiny_vit.get_last_activation(clip)[0, 1:].reshape(4, 17, 22, 64)
    torch.testing.assert_close(features, tokens.mean(0))
    assert frame_features(tiny_vit, frame, clip_frames=4).shape == (17, 22, 64)


def test_neighbourhood_is_a_square_window():
    near = neighbourhood(5, 6, 1)
    assert near.shape == (30, 30)
    for a in range(30):
        for b in range(30):
            inside = abs(a // 6 - b // 6) <= 1 and abs(a % 6 - b % 6) <= 1
            assert near[a, b] == float(inside)


def _published_step(target, contexts, labels, radius, topk, temperature):
    """The step as the published description reads, one target patch at a time, in float64."""
    h, w, _ = target.shape
    k = labels[0].shape[0]
    out = np.zeros((k, h, w))
    for qi in range(h):
        for qj in range(w):
            q = target[qi, qj] / np.linalg.norm(target[qi, qj])
            weights, votes = [], []
            for feats, lab in zip(contexts, labels):
                for ki in range(h):
                    for kj in range(w):
                        key = feats[ki, kj] / np.linalg.norm(feats[ki, kj])
                        near = abs(ki - qi) <= radius and abs(kj - qj) <= radius
                        weights.append(math.exp(q @ key / temperature) if near else 0.0)
                        votes.append(lab[:, ki, kj])
            weights = np.array(weights)
            kth = np.sort(weights)[-topk]
            weights[weights < kth] = 0
            weights /= weights.sum()
            out[:, qi, qj] = (weights[:, None] * np.array(votes)).sum(0)
    return out


@pytest.mark.parametrize("radius, topk", [(1, 5), (2, 3), (10, 5)])
def test_one_step_matches_the_description(radius, topk):
    torch.manual_seed(radius + topk)
    h, w, dim, k = 4, 5, 6, 3
    target = torch.randn(h, w, dim)
    contexts = [torch.randn(h, w, dim) for _ in range(3)]
    labels = [torch.rand(k, h, w) for _ in range(3)]
    ours = propagate_labels(target, contexts, labels, neighbourhood(h, w, radius), topk, 0.1)
    expected = _published_step(
        target.double().numpy(),
        [c.double().numpy() for c in contexts],
        [lab.double().numpy() for lab in labels],
        radius,
        topk,
        0.1,
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_labels_to_mask_upsamples_normalises_and_resizes():
    block = torch.zeros(3, 2, 3)
    block[1, 0, 1] = 0.1  # a weak object channel: min-max normalisation lifts it to 1 where it peaks
    block[0] = 0.6
    block[2, 1, 2] = 0.3
    mask = labels_to_mask(block, 14, (28, 42))  # the upsampled size itself: no final resize
    assert mask.shape == (28, 42)
    assert mask[7, 21] == 1 and mask[21, 35] == 2  # patch centres of the object patches
    assert mask[7, 7] == 0 and mask[21, 7] == 0  # the background channel is constant: left as it is, 0.6
    # Upsampled x14 bilinear, then nearest to the frame's own size.
    assert labels_to_mask(block, 14, (30, 45)).shape == (30, 45)


def _representable(block: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pixel mask the pipeline draws from an id map at the feature grid (one-hot, x14, nearest to size)."""
    one_hot = F.one_hot(torch.from_numpy(block).long(), int(block.max()) + 1).permute(2, 0, 1).float()
    return labels_to_mask(one_hot, 14, size)


def test_identical_frames_propagate_the_first_mask(tiny_vit):
    frame = torch.from_numpy(video_frames("box.mp4", 1)[0]).permute(2, 0, 1).contiguous()  # 480 x 640: no resize
    block = np.zeros((34, 45), dtype=np.uint8)
    block[10:20, 12:30], block[22:30, 5:10] = 1, 2
    first = _representable(block, (480, 640))
    torch.testing.assert_close(first_frame_labels(first, (34, 45)).argmax(0), torch.from_numpy(block).long())
    # topk 1: every target patch takes the label of its own copy in the context (cosine 1, the unique
    # maximum), so each frame's mask is the first one, through the queue of recent predictions too.
    masks = propagate(tiny_vit, [frame] * 10, first, PropagationConfig(topk=1))
    assert len(masks) == 10
    for mask in masks:
        np.testing.assert_array_equal(mask, first)


class Calls(Progress):
    def __init__(self):
        self.calls: list[tuple[int, int]] = []
        self.total = 0

    def start(self, total, unit="item", label=""):
        self.total = total

    def advance(self, done, item=""):
        self.calls.append((done, self.total))


def test_progress_per_frame_and_size_errors(tiny_vit):
    frames, masks = moving_object_sequence(3, size=48)
    progress = Calls()
    calls = progress.calls
    config = PropagationConfig(short_side=112)
    out = propagate(tiny_vit, as_tensors(frames), masks[0], config, progress=progress)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert [m.shape for m in out] == [(480, 640)] * 3 and out[0] is not masks[0]
    np.testing.assert_array_equal(out[0], masks[0])
    with pytest.raises(ValueError, match="the first mask is 10x10 but the first frame is 480x640"):
        propagate(tiny_vit, as_tensors(frames), np.zeros((10, 10), np.uint8), config)
    with pytest.raises(ValueError, match="no frames"):
        propagate(tiny_vit, [], masks[0], config)
    wider = as_tensors(frames)
    wider[2] = torch.cat([wider[2], wider[2][:, :, :8]], dim=2)  # 648 px wide: the same feature grid at 112 px
    calls.clear()
    with pytest.raises(ValueError, match="frame 2 is 480x648 but the first frame is 480x640: the frames must share"):
        propagate(tiny_vit, wider, masks[0], config, progress=progress)
    assert calls == []  # refused before the model ran
    with pytest.raises(ValueError, match="temperature must be > 0"):
        PropagationConfig(temperature=0)
