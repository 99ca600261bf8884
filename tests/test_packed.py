"""Linear weights packed once for CPU inference (`hvm1.models.layers.pack_linear_weights`): packed at the first
call they serve, used exactly where they give what the plain layer computes, never in training, made again
after the weight changed, and never in the state dict."""

import pytest
import torch
from torch import nn

from hvm1.devices import resolve_precision
from hvm1.models import build_model, get_config
from hvm1.models.layers import can_pack_linear_weights, linear, pack_linear_weights, unpack_linear_weights

pytestmark = pytest.mark.skipif(not can_pack_linear_weights(torch.bfloat16), reason="this torch build has no oneDNN")


def _layer(dtype=torch.float32) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(16, 8).to(dtype)


def _mark(layer: nn.Linear) -> None:
    """Pack `layer` (one inference call) and shift the packed copy's bias (never the parameter's) by 100: an
    output that moved by 100 came from the packed copy."""
    packed = layer.__dict__["_hvm1_packed"]
    with torch.inference_mode():
        linear(layer, torch.zeros(1, layer.in_features, dtype=packed.dtype))
    packed.bias = packed.bias + 100


def test_the_packed_copy_is_used_in_inference_only():
    layer = _layer()
    x = torch.randn(3, 5, 16)
    plain = layer(x)
    assert pack_linear_weights(layer, torch.float32) == 1
    _mark(layer)
    with torch.inference_mode():
        assert torch.allclose(linear(layer, x), plain + 100, atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(linear(layer, x), plain + 100, atol=1e-4)
    # With gradients the plain layer runs, and gradients reach the parameters.
    out = linear(layer, x)
    assert torch.equal(out, plain)
    out.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    unpack_linear_weights(layer)
    with torch.inference_mode():
        assert torch.equal(linear(layer, x), plain)


def test_packing_happens_at_the_first_call_it_serves():
    layer = _layer()
    x = torch.randn(2, 16)
    pack_linear_weights(layer, torch.float32)
    mark = layer.__dict__["_hvm1_packed"]
    assert mark.weight is None
    linear(layer, x)  # gradients on: the plain layer, nothing packed
    assert mark.weight is None
    with torch.no_grad():
        linear(layer, x)
    assert mark.weight is not None and mark.weight.is_mkldnn


def test_a_weight_changed_after_packing_is_packed_again():
    layer = _layer()
    x = torch.randn(2, 16)
    pack_linear_weights(layer, torch.float32)
    changes = [
        lambda: layer.weight.mul_(2),  # in place: the version counter moves
        lambda: layer.bias.add_(1),  # the bias alone
        lambda: layer.load_state_dict({"weight": torch.zeros(8, 16), "bias": torch.ones(8)}),
        lambda: setattr(layer, "weight", nn.Parameter(torch.full((8, 16), 0.5))),  # a new parameter object
    ]
    for change in changes:
        _mark(layer)
        with torch.no_grad():
            change()
            got, plain = linear(layer, x), layer(x)
        assert torch.allclose(got, plain, atol=1e-5), "a packed copy of the old parameters was used"


def test_the_packed_dtype_must_be_the_one_the_product_runs_in():
    layer = _layer(torch.bfloat16)
    pack_linear_weights(layer, torch.bfloat16)
    _mark(layer)
    x = torch.randn(4, 16)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # float32 input, bf16 product: packed
            assert (linear(layer, x).float() - layer(x).float()).mean() > 99
        # bf16 input without autocast: packed; the plain layer refuses a float32 input against bf16 weights.
        assert (linear(layer, x.bfloat16()).float() - layer(x.bfloat16()).float()).mean() > 99
        with pytest.raises(RuntimeError):
            linear(layer, x)
        fp32 = _layer()
        pack_linear_weights(fp32, torch.float32)
        _mark(fp32)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # packed in float32, product in bf16: plain
            assert torch.equal(linear(fp32, x), fp32(x))


def test_bf16_inference_gives_autocast_results_bit_for_bit_and_the_state_dict_is_unchanged():
    config = get_config("vit_tiny_patch16", img_size=32, num_frames=4, depth=2, num_classes=5)
    torch.manual_seed(0)
    model = build_model(config).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    bf16 = resolve_precision("bf16", "cpu")
    with torch.inference_mode(), bf16.autocast("cpu"):
        expected = model(video)
        keys = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
        bf16.cast_linear_weights(model)
        packed = [m for m in model.modules() if "_hvm1_packed" in m.__dict__]
        assert len(packed) == sum(isinstance(m, nn.Linear) for m in model.modules()) > 0
        got = model(video)
    assert torch.equal(got, expected)
    state = model.state_dict()
    assert list(state) == list(keys)
    assert all(state[k].shape == shape for k, (shape, _) in keys.items())
    assert all(not v.is_mkldnn for v in state.values())


def test_a_prepared_model_copies_and_saves_without_its_packed_copies(tmp_path):
    import copy
    import pickle

    layer = _layer()
    x = torch.randn(3, 16)
    plain = layer(x)
    pack_linear_weights(layer, torch.float32)
    _mark(layer)
    torch.save(layer, tmp_path / "layer.pt")
    copies = [copy.deepcopy(layer), pickle.loads(pickle.dumps(layer)),
              torch.load(tmp_path / "layer.pt", weights_only=False)]
    with torch.inference_mode():
        assert (linear(layer, x) - plain).mean() > 99  # the original keeps its (marked) packed copy
        for other in copies:
            assert other.__dict__.get("_hvm1_packed") is None
            assert torch.equal(linear(other, x), plain)


def test_the_inference_commands_prepare_every_model_they_run(capsys):
    import argparse

    from hvm1.cli.common import _precision_for

    first, second = _layer(), _layer()
    precision = _precision_for(argparse.Namespace(precision="bf16"), "cpu", models=(first, None, second))
    assert precision.name == "bf16" and "precision bf16 autocast" in capsys.readouterr().err
    assert all(m.__dict__["_hvm1_packed"].dtype == torch.bfloat16 for m in (first, second))
    third = _layer()
    _precision_for(argparse.Namespace(precision="fp32"), "cpu", model=third)
    assert "_hvm1_packed" not in third.__dict__ and third.weight.dtype == torch.float32
