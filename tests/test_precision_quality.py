"""bf16 against float32 on the tiny reference models: how far embeddings, logits and completions move.

The bounds are a few times the figures `benchmarks/bench_bf16_quality.py` measures on these models
(relative error 0.8-1.1%, cosine >= 0.9997 (0.9986 for tiny_b's 7 logits with bf16 weights), top-1
agreement 97-98% of 66 clips, completion PSNR 65-67 dB), so a change that makes bf16 markedly worse fails.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import hvm1
from hvm1.devices import resolve_precision
from hvm1.viz import complete_clip
from reference_data import reference_heads

VARIANTS = ["autocast", "weights"]


def _clips(reference) -> torch.Tensor:
    video = torch.from_numpy(np.load(reference / "expected.npz")["video"])
    noise = torch.randn(64, *video.shape[1:], generator=torch.Generator().manual_seed(0))
    return torch.cat([video, noise])  # (66, C, T, H, W)


def _low(model: torch.nn.Module, variant: str):
    """The model and precision of a bf16 variant: autocast over float32 weights, or bf16 weights."""
    if variant == "autocast":
        return model, resolve_precision("bf16", "cpu")
    return copy.deepcopy(model).to(torch.bfloat16), resolve_precision("fp32", "cpu")


def _rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.double() - ref.double()).norm() / ref.double().norm())


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_vit_embeddings_and_logits_stay_close(reference, variant):
    vit = hvm1.load_model(reference / "vit_checkpoint.pth", **reference_heads(reference))
    video = _clips(reference)
    with torch.inference_mode():
        features = vit.forward_features(video)
        exact = (vit.forward_head(features, pre_logits=True), vit.forward_head(features))
        model, precision = _low(vit, variant)
        with precision.autocast("cpu"):
            features = model.forward_features(video.to(next(model.parameters()).dtype))
            low = (model.forward_head(features, pre_logits=True).float(), model.forward_head(features).float())
    for name, a, b, cosine in zip(("embedding", "logits"), low, exact, (0.999, 0.995)):
        assert not torch.equal(a, b), f"{name}: bf16 gave float32's result: it did not run in bf16"
        assert _rel_err(a, b) < 0.03, name
        assert torch.nn.functional.cosine_similarity(a, b, dim=1).min() > cosine, name  # 7 logits: noisier
    agreement = float((low[1].argmax(-1) == exact[1].argmax(-1)).double().mean())
    assert agreement >= 0.9


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_completion_psnr(reference, variant):
    mae = hvm1.load_model(reference / "mae_checkpoint.pth", **reference_heads(reference))
    video = _clips(reference)[:8]
    exact = complete_clip(mae, video, "center", 0.5)
    model, precision = _low(mae, variant)
    low = complete_clip(model, video, "center", 0.5, precision=precision)
    removed = exact.removed.unsqueeze(1).expand_as(exact.completion)  # (N, C, T, H, W): predicted pixels
    # In pixels: normalised values times the video std (about 0.225), pixels in [0, 1].
    mse = float((((low.completion - exact.completion) * 0.225)[removed] ** 2).mean())
    assert mse > 0, "bf16 gave float32's completion: it did not run in bf16"
    assert 10 * math.log10(1 / mse) > 50
    assert abs(low.loss - exact.loss) <= 1e-3 * abs(exact.loss)
