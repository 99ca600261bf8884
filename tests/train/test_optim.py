"""The optimizer primitives that take plain numbers: the lr schedule and the weight-decay split."""

import math

import pytest
from torch import nn

from hvm1.eval.attentive import AttentiveProbe
from hvm1.optimization import decay_split, lr_at, torch_param_groups


def test_lr_at_warms_up_linearly_then_follows_a_half_cosine_to_min_lr():
    def cosine(step: int, min_lr: float = 0.0) -> float:
        return lr_at(step, base_lr=1.0, warmup_steps=4, total_steps=12, schedule="cosine", min_lr=min_lr)

    assert [cosine(step) for step in (0, 1, 3)] == [0.25, 0.5, 1.0]
    # after warmup, 8 steps of cosine: halfway (step 8) is half the lr; the end (step 12) and beyond are min_lr
    assert cosine(4) == 1.0 and cosine(8) == pytest.approx(0.5) and cosine(12) == pytest.approx(0.0)
    assert cosine(6) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine(20) == pytest.approx(0.0)
    assert cosine(8, min_lr=0.2) == pytest.approx(0.6) and cosine(12, min_lr=0.2) == pytest.approx(0.2)


def test_lr_at_constant_and_without_warmup():
    assert lr_at(0, base_lr=3e-4, warmup_steps=0, total_steps=10, schedule="cosine") == 3e-4
    assert lr_at(1, base_lr=2.0, warmup_steps=4, total_steps=10, schedule="constant") == 1.0
    assert lr_at(9, base_lr=2.0, warmup_steps=4, total_steps=10, schedule="constant", min_lr=0.5) == 2.0
    with pytest.raises(ValueError, match="lr schedule must be one of constant, cosine, got 'linear'"):
        lr_at(0, base_lr=1.0, warmup_steps=0, total_steps=1, schedule="linear")


def test_decay_split_keeps_parameter_order_and_leaves_out_frozen_ones():
    model = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2), nn.Linear(2, 2))
    model[2].weight.requires_grad_(False)
    decayed, exempt = decay_split(model, 0.05, exempt=lambda name, parameter: parameter.ndim == 1)
    assert decayed == {"names": ["0.weight"], "weight_decay": 0.05, "lr_scale": 1.0}
    assert exempt == {"names": ["0.bias", "1.weight", "1.bias", "2.bias"], "weight_decay": 0.0, "lr_scale": 1.0}
    groups = torch_param_groups(model, [decayed, exempt])
    assert groups[0]["params"][0] is model[0].weight and groups[0]["weight_decay"] == 0.05
    assert [
        p is q for p, q in zip(groups[1]["params"], [model[0].bias, model[1].weight, model[1].bias, model[2].bias])
    ] == [True] * 4


def test_the_attentive_probe_decays_only_its_linear_weights():
    probe = AttentiveProbe(dim=8, num_classes=3, depth=2, num_heads=2)
    decayed, exempt = decay_split(probe, 0.1, exempt=probe.no_weight_decay)
    parameters = dict(probe.named_parameters())
    linear = {f"{name}.weight" for name, module in probe.named_modules() if isinstance(module, nn.Linear)}
    assert set(decayed["names"]) == linear and len(linear) > 4
    assert set(exempt["names"]) == parameters.keys() - linear
    assert {"query", "norm1.weight", "head.bias"} <= set(exempt["names"])
