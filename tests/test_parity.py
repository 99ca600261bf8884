"""Golden outputs: the published HVM-1 code's outputs on the tiny reference models (tests/fixtures/reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import hvm1
from reference_data import reference_heads


def assert_close(actual: torch.Tensor, expected: np.ndarray, name: str) -> None:
    actual = actual.detach().cpu().numpy()
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max())
    assert err <= 1e-5 * scale, f"{name}: max abs error {err:.3g} (scale {scale:.3g})"


@pytest.fixture
def expected(reference):
    return np.load(reference / "expected.npz")


def test_mae_outputs_match_published(reference, expected):
    model = hvm1.load_model(reference / "mae_checkpoint.pth", **reference_heads(reference))
    assert isinstance(model, hvm1.VideoMAE) and not model.training
    video = torch.from_numpy(expected["video"])
    specs = json.loads((reference / "config.json").read_text())["mask_specs"]
    for mask_type, ratio in specs:
        assert float(expected[f"{mask_type}_mask_ratio"]) == ratio
        noise = torch.from_numpy(expected["random_noise"]) if mask_type == "random" else None
        with torch.no_grad():
            loss, pred, mask, comparison = model(
                video, mask_ratio=ratio, visualize=True, mask_type=mask_type, noise=noise
            )
        np.testing.assert_array_equal(mask.numpy(), expected[f"{mask_type}_mask"], err_msg=f"{mask_type} mask")
        assert_close(loss, expected[f"{mask_type}_loss"], f"{mask_type} loss")
        assert_close(pred, expected[f"{mask_type}_pred"], f"{mask_type} pred")
        assert_close(comparison, expected[f"{mask_type}_comparison"], f"{mask_type} comparison")
        with torch.no_grad():
            plain = model(video, mask_ratio=ratio, mask_type=mask_type, noise=noise)
        assert len(plain) == 3
        assert torch.equal(plain[1], pred) and torch.equal(plain[2], mask)


def test_vit_outputs_match_published(reference, expected):
    model = hvm1.load_model(reference / "vit_checkpoint.pth", **reference_heads(reference))
    assert isinstance(model, hvm1.VideoViT) and model.config.num_classes == 7
    video = torch.from_numpy(expected["video"])
    with torch.no_grad():
        assert_close(model(video), expected["vit_logits"], "vit logits")
        attention = model.get_last_selfattention(video)
        assert_close(attention, expected["vit_last_attention"], "last attention")
        cls_attention = model.cls_attention(video)
    assert cls_attention.shape == (2, 4, 64)
    torch.testing.assert_close(cls_attention, attention[:, :, 0, 1:], rtol=1e-5, atol=1e-6)


def test_mae_checkpoint_as_vit_gives_published_embedding(reference, expected):
    model = hvm1.load_model(reference / "mae_checkpoint.pth", model_type="vit", **reference_heads(reference))
    assert isinstance(model, hvm1.VideoViT) and model.config.num_classes == 0
    video = torch.from_numpy(expected["video"])
    with torch.no_grad():
        assert_close(model(video), expected["vit_embedding"], "vit embedding")
        features = model.forward_features(video)
    assert features.shape == (2, 65, 64)
    torch.testing.assert_close(features[:, 0], model.forward_head(features, pre_logits=True))
