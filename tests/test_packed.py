"""Linear weights packed once for CPU inference (`hvm1.inference.pack_linear_layers`): packed at the first
call they serve, used exactly where they give what the plain layer computes, never in training, made again
after the weight changed, and never in the state dict."""

import copy
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hvm1.devices import resolve_precision
from hvm1.inference import (
    PackedLinear,
    can_pack_linear_weights,
    pack_linear_layers,
    pack_now,
    prepare_for_inference,
    stop_packing_ahead,
    unpack_linear_layers,
)
from hvm1.models import build_model, get_config
from reference_data import MAE_CHECKPOINT, TINY_HEADS, VIDEO_NAMES, video

pytestmark = pytest.mark.skipif(not can_pack_linear_weights(torch.bfloat16), reason="this torch build has no oneDNN")


def _layer(dtype=torch.float32) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(16, 8).to(dtype)


def _packed(dtype=torch.float32, packed_dtype=None) -> PackedLinear:
    layer = pack_linear_layers(_layer(dtype), packed_dtype or dtype)
    assert isinstance(layer, PackedLinear)
    return layer


def _mark(layer: PackedLinear) -> None:
    """Pack `layer` (one inference call) and shift the packed copy's bias (never the parameter's) by 100: an
    output that moved by 100 came from the packed copy."""
    with torch.inference_mode():
        layer(torch.zeros(1, layer.in_features, dtype=layer.packed_dtype))
    assert layer.packed is not None
    layer.packed.bias = layer.packed.bias + 100


def test_the_packed_copy_is_used_in_inference_only():
    plain_layer = _layer()
    x = torch.randn(3, 5, 16)
    plain = plain_layer(x)
    layer = pack_linear_layers(plain_layer, torch.float32)
    assert isinstance(layer, PackedLinear) and layer.weight is plain_layer.weight and layer.bias is plain_layer.bias
    _mark(layer)
    with torch.inference_mode():
        assert torch.allclose(layer(x), plain + 100, atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(layer(x), plain + 100, atol=1e-4)
    # With gradients the plain layer runs, and gradients reach the parameters.
    out = layer(x)
    assert torch.equal(out, plain)
    out.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    unpacked = unpack_linear_layers(layer)
    assert type(unpacked) is nn.Linear and unpacked.weight is layer.weight
    with torch.inference_mode():
        assert torch.equal(unpacked(x), plain)


def test_packing_happens_at_the_first_call_it_serves_or_now():
    layer = _packed()
    x = torch.randn(2, 16)
    assert layer.packed is None
    layer(x)  # gradients on: the plain layer, nothing packed
    assert layer.packed is None
    with torch.no_grad():
        layer(x)
    assert layer.packed is not None and layer.packed.weight.is_mkldnn
    model = pack_linear_layers(nn.Sequential(_layer(), nn.ReLU(), nn.Linear(8, 4)), torch.float32)
    assert pack_now(model, threads=2) == 2 and all(m.is_packed() for m in model if isinstance(m, PackedLinear))
    assert pack_now(model) == 0  # packed already


def test_the_first_call_any_layer_serves_packs_the_whole_model_on_several_threads():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 8)).eval()
    x = torch.randn(5, 16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(x)
    threads = torch.get_num_threads()
    for when, pack_threads in (("first_use", 3), ("first_use", 1), ("now", 2)):
        model = pack_linear_layers(copy.deepcopy(plain), torch.bfloat16, when=when, threads=pack_threads)
        layers = [m for m in model if isinstance(m, PackedLinear)]
        assert len(layers) == 3 and all(m.is_packed() == (when == "now") for m in layers)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model[0](x)  # the first layer's first call packs the others too
            assert all(m.is_packed() for m in layers)
            assert torch.equal(model(x), expected)
        assert torch.get_num_threads() == threads  # the intra-op thread count is back
    with pytest.raises(ValueError, match="when"):
        pack_linear_layers(_layer(), torch.float32, when="later")


def _wide_model() -> nn.Sequential:
    """Enough layers, and wide enough, that packing them takes a while next to a Python step."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(256, 256), nn.GELU()]
    return nn.Sequential(*layers).eval()


def test_packing_ahead_packs_in_the_background_and_the_first_call_waits_for_the_rest():
    plain = _wide_model()
    x = torch.randn(7, 256)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(x)
    threads = torch.get_num_threads()
    model = pack_linear_layers(copy.deepcopy(plain), torch.bfloat16, when="ahead", threads=2)
    layers = [m for m in model if isinstance(m, PackedLinear)]
    assert torch.get_num_threads() == threads  # this thread's count never changes
    deadline = time.monotonic() + 60
    while not all(m.is_packed() for m in layers) and time.monotonic() < deadline:
        time.sleep(0.01)  # no call made: the background thread packs them all
    assert all(m.is_packed() for m in layers)
    packed = [m.packed for m in layers]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(x), expected)
    assert [m.packed for m in layers] == packed  # the first call used them, packing nothing again
    # Called at once, the first call waits for the background packing and gives the same numbers.
    model = pack_linear_layers(copy.deepcopy(plain), torch.bfloat16, when="ahead")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(x), expected)
    assert all(m.is_packed() for m in model if isinstance(m, PackedLinear))
    # A thread started afterwards runs its ops on the usual count, not the packing threads' one.
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [threads] and torch.get_num_threads() == threads


def test_a_stopped_background_packing_leaves_the_rest_to_the_first_call():
    plain = _wide_model()
    x = torch.randn(3, 256)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(x)
    model = pack_linear_layers(plain, torch.bfloat16, when="ahead", threads=1)
    layers = [m for m in model if isinstance(m, PackedLinear)]
    group = layers[0].group
    assert group is not None
    group.stop()
    assert not all(m.is_packed() for m in layers)  # one thread stops after the layer it was on
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(x), expected)
    assert all(m.is_packed() for m in layers)


def test_packing_ahead_is_stopped_when_the_process_exits(tmp_path):
    plain = _wide_model()
    x = torch.randn(3, 256)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(x)
    model = pack_linear_layers(plain, torch.bfloat16, when="ahead", threads=1)
    assert stop_packing_ahead() in (0, 1)  # 0 when it had finished already
    assert not any(thread.name == "hvm1-pack-ahead" for thread in threading.enumerate())
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(x), expected)  # the first call packed what the stop left
    # A process that exits while packing ahead (as a command whose every input failed) exits cleanly at once.
    script = tmp_path / "exit_while_packing.py"
    script.write_text(
        "import atexit, threading\n"
        "atexit.register(lambda: print('packing at exit:', any(t.name == 'hvm1-pack-ahead' "
        "for t in threading.enumerate())))  # runs after hvm1's own exit handler\n"
        "import torch\n"
        "from torch import nn\n"
        "from hvm1.inference import pack_linear_layers\n"
        "model = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(48)])\n"
        "pack_linear_layers(model, torch.bfloat16, when='ahead')\n"
        "print('leaving')\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # left running, the packing can abort the exiting process
    assert done.stdout == "leaving\npacking at exit: False\n" and "Traceback" not in done.stderr


def test_an_error_in_the_background_packing_reaches_the_first_call():
    model = pack_linear_layers(_wide_model(), torch.bfloat16, when="first_use")
    layers = [m for m in model if isinstance(m, PackedLinear)]
    layers[3].weight = nn.Parameter(torch.zeros(256 * 256))  # not a matrix: oneDNN cannot pack it
    group = layers[0].group
    assert group is not None
    group.start()
    with torch.inference_mode(), pytest.raises((IndexError, RuntimeError)):
        group.pack()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_stops_the_packing_ahead_and_both_processes_pack_the_rest_by_themselves():
    plain = _wide_model()
    x = torch.randn(3, 256)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(x)
    model = pack_linear_layers(copy.deepcopy(plain), torch.bfloat16, when="ahead", threads=2)
    read, write = os.pipe()
    child = os.fork()  # stops the packing first, in this process
    if child == 0:  # the child: no background thread here; its first call packs what is left
        ok = False
        try:
            torch.set_num_threads(1)  # OpenMP's threads do not survive a fork (as in a DataLoader's workers)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                ok = torch.equal(model(x), expected)
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    assert not any(thread.name == "hvm1-pack-ahead" for thread in threading.enumerate())
    answer = os.read(read, 1)
    os.waitpid(child, 0)
    assert answer == b"1"
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(x), expected)  # the parent's first call packs what the stop left


def test_a_weight_changed_after_packing_is_packed_again():
    layer = _packed()
    x = torch.randn(2, 16)
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
            got = layer(x)
        plain = F.linear(x, layer.weight, layer.bias)
        assert torch.allclose(got, plain, atol=1e-5), "a packed copy of the old parameters was used"


def test_the_packed_dtype_must_be_the_one_the_product_runs_in():
    layer = _packed(torch.bfloat16)
    _mark(layer)
    x = torch.randn(4, 16)

    def plain(x):
        return F.linear(x, layer.weight, layer.bias)

    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # float32 input, bf16 product: packed
            assert (layer(x).float() - plain(x).float()).mean() > 99
        # bf16 input without autocast: packed; the plain layer refuses a float32 input against bf16 weights.
        assert (layer(x.bfloat16()).float() - plain(x.bfloat16()).float()).mean() > 99
        with pytest.raises(RuntimeError):
            layer(x)
        fp32 = _packed(torch.float32)
        _mark(fp32)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # packed in float32, product in bf16: plain
            assert torch.equal(fp32(x), F.linear(x, fp32.weight, fp32.bias))


def test_bf16_inference_gives_autocast_results_bit_for_bit_and_the_state_dict_is_unchanged():
    config = get_config("vit_tiny_patch16", img_size=32, num_frames=4, depth=2, num_classes=5)
    torch.manual_seed(0)
    model = build_model(config).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    bf16 = resolve_precision("bf16", "cpu")
    with torch.inference_mode(), bf16.autocast("cpu"):
        expected = model(video)
        keys = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
        tensors = model.state_dict()
        assert prepare_for_inference(model, bf16) is model
        packed = [m for m in model.modules() if isinstance(m, PackedLinear)]
        assert len(packed) == sum(isinstance(m, nn.Linear) for m in model.modules()) > 0
        got = model(video)
    assert torch.equal(got, expected)
    state = model.state_dict()
    assert list(state) == list(keys) == list(tensors)
    assert all(state[k].shape == shape and state[k].dtype == dtype for k, (shape, dtype) in keys.items())
    assert all(state[k].data_ptr() == tensors[k].data_ptr() for k in keys)  # the very same parameters
    assert all(not v.is_mkldnn for v in state.values())


def test_a_prepared_model_copies_and_saves_without_its_packed_copies(tmp_path):
    import pickle

    layer = _packed()
    x = torch.randn(3, 16)
    plain = F.linear(x, layer.weight, layer.bias)
    _mark(layer)
    torch.save(layer, tmp_path / "layer.pt")
    copies = [
        copy.deepcopy(layer),
        pickle.loads(pickle.dumps(layer)),
        torch.load(tmp_path / "layer.pt", weights_only=False),
    ]
    with torch.inference_mode():
        assert (layer(x) - plain).mean() > 99  # the original keeps its (marked) packed copy
        for other in copies:
            assert isinstance(other, PackedLinear) and other.packed is None and other.group is None
            assert torch.allclose(other(x), plain, atol=1e-5)  # packed again from the parameters, unmarked


def test_the_inference_commands_prepare_every_model_they_run():
    from hvm1.inference import precision_for_run
    from hvm1.progress import Progress

    class Notes(Progress):
        def __init__(self):
            self.notes: list[str] = []

        def note(self, message):
            self.notes.append(message)

    first, second = nn.Sequential(_layer()), nn.Sequential(_layer())
    notes = Notes()
    precision = precision_for_run("bf16", "cpu", (first, None, second), notes)
    assert precision.name == "bf16" and notes.notes[0].startswith("precision bf16 autocast")
    assert all(isinstance(m[0], PackedLinear) and m[0].packed_dtype == torch.bfloat16 for m in (first, second))
    third = nn.Sequential(_layer())
    precision_for_run("fp32", "cpu", [third])
    assert type(third[0]) is nn.Linear and third[0].weight.dtype == torch.float32
    # A command that calls its model once leaves it as it is (autocast casts in that call); twice, packs it.
    once, twice = nn.Sequential(_layer()), nn.Sequential(_layer())
    assert precision_for_run("bf16", "cpu", [once], calls=1).name == "bf16"
    precision_for_run("bf16", "cpu", [twice], calls=2)
    assert type(once[0]) is nn.Linear and isinstance(twice[0], PackedLinear)


@pytest.mark.parametrize(("videos", "full_frame", "packed"), [(1, False, False), (2, False, True), (1, True, True)])
def test_a_picture_command_packs_only_a_model_it_calls_more_than_once(videos, full_frame, packed):
    from hvm1.viz.runs import CompleteConfig, prepared_run

    config = CompleteConfig(
        paths=tuple(video(name) for name in VIDEO_NAMES[:videos]),
        checkpoint=str(MAE_CHECKPOINT),
        overrides=TINY_HEADS,
        precision="bf16",
        full_frame=full_frame,
    )
    with prepared_run(config, "mae", "complete") as run:
        assert len(run.videos) == videos
        layers = [m for m in run.model.modules() if isinstance(m, nn.Linear)]
        assert layers and all(isinstance(m, PackedLinear) == packed for m in layers)
        shutil.rmtree(run.out_dir)


def test_a_prepared_mae_completes_bit_for_bit_as_under_autocast_and_unpacks_to_plain_layers():
    config = get_config(
        "mae_vit_tiny_patch16",
        img_size=32,
        num_frames=4,
        depth=2,
        decoder_depth=1,
        decoder_embed_dim=32,
        decoder_num_heads=2,
        pred_t_dim=4,
    )
    torch.manual_seed(0)
    model = build_model(config).eval()
    video, noise = torch.randn(2, 3, 4, 32, 32), torch.rand(2, config.num_patches)
    bf16 = resolve_precision("bf16", "cpu")
    with torch.inference_mode(), bf16.autocast("cpu"):
        expected = model(video, mask_ratio=0.75, visualize=True, noise=noise)
        prepare_for_inference(model, bf16)
        packed = [m for m in model.modules() if isinstance(m, PackedLinear)]
        assert len(packed) == 2 * 6 + 1 * 6 + 2  # 6 in each encoder and decoder block, decoder_embed, decoder_pred
        got = model(video, mask_ratio=0.75, visualize=True, noise=noise)
        assert all(m.is_packed() for m in packed)
        assert unpack_linear_layers(model) is model and not any(isinstance(m, PackedLinear) for m in model.modules())
        again = model(video, mask_ratio=0.75, visualize=True, noise=noise)
    for one, other, third in zip(expected, got, again):
        assert torch.equal(one, other) and torch.equal(one, third)
