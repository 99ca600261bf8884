"""The checkpoint loader: formats, safety, corrupt files, key rules, architecture resolution."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import hvm1
import hvm1.checkpoint
import hvm1.zoo
from hvm1.checkpoint import CheckpointError, read_checkpoint
from reference_data import VIDEOS, fixture, reference_dir, reference_heads


@pytest.fixture
def tiny() -> Path:
    return reference_dir("tiny")


@pytest.fixture
def video(tiny) -> torch.Tensor:
    return torch.from_numpy(np.load(tiny / "expected.npz")["video"])


def _outputs(model, video):
    with torch.no_grad():
        return model(video, mask_ratio=0.5, mask_type="center")[1]


class _RunsCode:
    """Unpickling this would create a file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_unsafe_pickle_is_refused_and_runs_nothing(tmp_path, tiny):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, bad)
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pth"):
        hvm1.load_model(bad)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_file_is_clear_error(tmp_path, tiny, keep):
    data = (tiny / "mae_checkpoint.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"cut\.pth.*truncated or corrupt"):
        hvm1.load_model(cut, **reference_heads(tiny))


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth"):
        hvm1.load_model(junk)
    bad_st = tmp_path / "junk.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        hvm1.load_model(bad_st)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        read_checkpoint(tmp_path / "nowhere.pth")


@pytest.mark.slow
def test_all_published_layouts_load_the_same(tmp_path, tiny, video):
    heads = reference_heads(tiny)
    reference = _outputs(hvm1.load_model(tiny / "mae_checkpoint.pth", **heads), video)
    weights = read_checkpoint(tiny / "mae_checkpoint.pth").state_dict
    layouts = {
        "bare.pth": weights,
        "model_state.pth": {"model_state": weights, "epoch": 1},
        "ddp.pth": {"model": {f"module.{k}": v for k, v in weights.items()}, "args": argparse.Namespace(img_size=56)},
    }
    for name, obj in layouts.items():
        torch.save(obj, tmp_path / name)
        assert torch.equal(_outputs(hvm1.load_model(tmp_path / name, **heads), video), reference), name


def test_unknown_heads_need_overrides_and_error_names_the_field(tiny):
    with pytest.raises(CheckpointError, match=r"cannot tell decoder_num_heads, num_heads .*mae_checkpoint\.pth"):
        hvm1.load_model(tiny / "mae_checkpoint.pth")
    with pytest.raises(ValueError, match="unknown config field.*num_hedas"):
        hvm1.load_model(tiny / "mae_checkpoint.pth", num_hedas=4)


def test_unexpected_and_missing_keys_are_listed(tmp_path, tiny):
    sd = dict(read_checkpoint(tiny / "vit_checkpoint.pth").state_dict)
    sd["extra.weight"] = torch.zeros(3)
    del sd["norm.bias"]
    torch.save({"model": sd}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: norm\.bias; unexpected keys: extra\.weight"):
        hvm1.load_model(tmp_path / "odd.pth", num_heads=4)


def test_wrong_shape_against_fixed_architecture(tiny):
    config = hvm1.ViTConfig(img_size=56, num_frames=8, embed_dim=64, depth=2, num_heads=4, num_classes=9)
    with pytest.raises(CheckpointError, match=r"wrong shapes: head\.bias \(7,\) \(model \(9,\)\)"):
        hvm1.checkpoint.load_checkpoint(tiny / "vit_checkpoint.pth", config=config)


def test_vit_from_mae_drops_decoder_by_rule_but_mae_from_vit_fails(tiny):
    heads = reference_heads(tiny)
    vit = hvm1.load_model(tiny / "mae_checkpoint.pth", model_type="vit", **heads)
    assert not any(k.startswith("decoder") or k == "mask_token" for k in vit.state_dict())
    with pytest.raises(CheckpointError, match="cannot be loaded as an MAE"):
        hvm1.load_model(tiny / "vit_checkpoint.pth", model_type="mae", **heads)


def test_dtype_device_and_meta(tiny, video):
    heads = reference_heads(tiny)
    model = hvm1.load_model(tiny / "vit_checkpoint.pth", dtype="bfloat16", **heads)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    empty = hvm1.load_model(tiny / "vit_checkpoint.pth", pretrained=False, device="meta", **heads)
    assert all(p.is_meta for p in empty.parameters()) and empty.config.num_classes == 7
    fresh = hvm1.load_model(tiny / "vit_checkpoint.pth", pretrained=False, **heads)
    assert fresh(video).shape == (2, 7)
    with pytest.raises(ValueError, match="pretrained=False"):
        hvm1.load_model(tiny / "vit_checkpoint.pth", device="meta", **heads)
    with pytest.raises(ValueError, match="dtype"):
        hvm1.load_model(tiny / "vit_checkpoint.pth", dtype="int8", **heads)


def test_safetensors_round_trip_needs_no_overrides(tmp_path, tiny, video):
    model = hvm1.load_model(tiny / "mae_checkpoint.pth", **reference_heads(tiny))
    path = hvm1.save_safetensors(model, tmp_path / "tiny.safetensors")
    again = hvm1.load_model(path)
    assert again.config == model.config
    assert torch.equal(_outputs(again, video), _outputs(model, video))
    half = hvm1.save_safetensors(model, tmp_path / "tiny_bf16.safetensors", dtype=torch.bfloat16)
    assert os.path.getsize(half) < 0.6 * os.path.getsize(path)
    loaded = hvm1.load_model(half)
    assert next(loaded.parameters()).dtype == torch.float32
    assert not list(tmp_path.glob(".*.tmp"))


def test_memory_mapped_weights_are_copy_on_write(tmp_path, tiny, video):
    """Training a loaded model in place must never write back into the checkpoint file."""
    path = tmp_path / "vit.pth"
    path.write_bytes((tiny / "vit_checkpoint.pth").read_bytes())
    before = path.read_bytes()
    model = hvm1.load_model(path, num_heads=4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert path.read_bytes() == before
    again = hvm1.load_model(path, num_heads=4)
    assert torch.equal(again.head.weight + 1.0, model.head.weight)


@pytest.mark.parametrize(
    "content", [b"", b"notes: remember the milk\n", b"# a README\n\n{json-ish}", b"\x89PNG\r\n\x1a\n"]
)
@pytest.mark.parametrize("name", ["notes.pth", "notes.safetensors", "notes.txt"])
def test_a_file_of_no_checkpoint_format_is_named_as_such(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"{name} is not a PyTorch or safetensors checkpoint"):
        hvm1.load_model(path)


def test_the_format_comes_from_the_signature_not_the_name(tmp_path, tiny):
    """A safetensors file named .pth and a checkpoint named .bin load; a legacy (pre-zip) pickle is read."""
    from hvm1.checkpoint import checkpoint_format

    heads = reference_heads(tiny)
    model = hvm1.load_model(tiny / "vit_checkpoint.pth", **heads)
    safetensors = hvm1.save_safetensors(model, tmp_path / "a.safetensors")
    renamed = tmp_path / "a.pth"
    renamed.write_bytes(safetensors.read_bytes())
    zipped = tmp_path / "b.bin"
    zipped.write_bytes((tiny / "vit_checkpoint.pth").read_bytes())
    legacy = tmp_path / "c.pth"
    torch.save({"model": model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    assert [checkpoint_format(p) for p in (renamed, zipped, legacy)] == ["safetensors", "zip", "pickle"]
    for path in (renamed, zipped, legacy):
        again = hvm1.load_model(path, **heads)
        assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_no_refusal_recommends_convert_which_refuses_the_same_file(tmp_path):
    bad = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _RunsCode(tmp_path / "pwned")}, bad)
    with pytest.raises(CheckpointError) as refused:
        hvm1.load_model(bad)
    assert "hvm1 convert" not in str(refused.value)
    with pytest.raises(CheckpointError, match="refused to load"):
        hvm1.zoo.convert(bad, tmp_path / "out.safetensors")


def test_a_bare_mae_state_dict_with_the_512_wide_decoder_needs_no_head_counts(tmp_path):
    config = hvm1.models.MAEConfig(
        img_size=32,
        patch_size=16,
        num_frames=4,
        t_patch_size=2,
        embed_dim=192,
        depth=1,
        num_heads=3,
        decoder_embed_dim=512,
        decoder_depth=1,
        decoder_num_heads=16,
        pred_t_dim=2,
    )
    torch.manual_seed(0)
    torch.save(hvm1.models.build_model(config).state_dict(), tmp_path / "bare.pth")
    loaded = hvm1.load_model(tmp_path / "bare.pth")
    assert (loaded.config.num_heads, loaded.config.decoder_num_heads) == (3, 16)


def test_overrides_are_checked_the_same_way_for_zoo_names_files_and_fixed_architectures(tiny):
    config = hvm1.ViTConfig(img_size=56, num_frames=8, embed_dim=64, depth=2, num_heads=4, num_classes=7)
    for load in (
        lambda: hvm1.load_model("vit_hvm1_none", pretrained=False, device="meta", num_hedas=4),
        lambda: hvm1.load_model(tiny / "vit_checkpoint.pth", num_hedas=4),
        lambda: hvm1.checkpoint.load_checkpoint(tiny / "vit_checkpoint.pth", config=config, num_hedas=4),
    ):
        with pytest.raises(ValueError, match=r"unknown config field\(s\) num_hedas; valid: "):
            load()


@pytest.mark.parametrize(
    "command",
    [
        ["complete", "--out-dir", "{tmp}/out"],
        ["attention", "--out-dir", "{tmp}/out"],
        ["embed", "-o", "{tmp}/e.npz"],
    ],
)
def test_a_command_given_a_text_file_as_checkpoint_says_so_in_one_line(tmp_path, capsys, command):
    from hvm1.cli import main

    notes = tmp_path / "notes.pth"
    notes.write_text("remember the milk\n")
    video = fixture(VIDEOS / "box.mp4")
    args = [command[0], str(video), "--checkpoint", str(notes), *(a.format(tmp=tmp_path) for a in command[1:])]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "notes.pth is not a PyTorch or safetensors checkpoint" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_fresh_head_rule_makes_the_published_init_only_when_asked_for(tmp_path, tiny):
    heads = reference_heads(tiny)
    with pytest.raises(CheckpointError, match=r"wrong shapes: head\.bias \(7,\) \(model \(300,\)\)"):
        hvm1.load_model(tiny / "vit_checkpoint.pth", num_classes=300, **heads)
    report: list[str] = []
    model = hvm1.load_model(
        tiny / "vit_checkpoint.pth", num_classes=300, rules=["fresh-head"], seed=3, report=report, **heads
    )
    assert report == [
        "vit_checkpoint.pth: rule 'fresh-head' dropped head.weight (7, 64), head.bias (7,) and "
        "made head.bias (300,), head.weight (300, 64)"
    ]
    weight, bias = model.head.weight.detach(), model.head.bias.detach()
    assert abs(weight.mean()) < 0.002 and 0.019 < weight.std() < 0.021  # normal(0, 0.02): 19200 draws
    bound = 1 / 64**0.5  # nn.Linear's default bias: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert bias.abs().max() <= bound and bias.abs().max() > 0.9 * bound and abs(bias.mean()) < 0.02
    again = hvm1.load_model(tiny / "vit_checkpoint.pth", num_classes=300, rules=["fresh-head"], seed=3, **heads)
    assert torch.equal(again.head.weight, model.head.weight)
    stored = read_checkpoint(tiny / "vit_checkpoint.pth").state_dict
    assert torch.equal(model.norm.weight, stored["norm.weight"])
    kept: list[str] = []
    same = hvm1.load_model(tiny / "vit_checkpoint.pth", rules=["fresh-head"], report=kept, **heads)
    assert kept == [] and torch.equal(same.head.weight, stored["head.weight"])
    with pytest.raises(ValueError, match="unknown key rule.*fresh-heads"):
        hvm1.load_model(tiny / "vit_checkpoint.pth", rules=["fresh-heads"], **heads)


def test_a_file_that_cannot_be_opened_is_a_checkpoint_error_naming_it(tmp_path, tiny, monkeypatch):
    import hvm1.checkpoint as checkpoint

    path = tmp_path / "locked.pth"
    path.write_bytes((tiny / "vit_checkpoint.pth").read_bytes())

    def refuse(file, mode="r", *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(checkpoint, "open", refuse, raising=False)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*locked\.pth: Permission denied"):
        hvm1.load_model(path, **reference_heads(tiny))
