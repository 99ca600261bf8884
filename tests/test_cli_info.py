"""`hvm1 info FILE`: what an existing checkpoint file holds, through the one loader."""

from __future__ import annotations

import pytest

import hvm1
from hvm1.cli import main
from reference_data import TINY, TINY_HEADS, fixture


@pytest.fixture(autouse=True)
def fixture_files():
    fixture(TINY / "mae_checkpoint.pth")
    fixture(TINY / "vit_checkpoint.pth")


def info_lines(capsys, *argv: str) -> dict[str, str]:
    assert main(["info", *argv]) == 0
    lines = {}
    for line in capsys.readouterr().out.splitlines():
        key, _, value = line.partition("  ")
        lines[key.strip()] = value.strip()
    return lines


def test_info_of_a_published_format_file(capsys):
    path = TINY / "vit_checkpoint.pth"
    lines = info_lines(capsys, str(path), "--set", "num_heads=4")
    model = hvm1.load_model(path, num_heads=4)
    assert lines["parameters"].startswith(f"{sum(p.numel() for p in model.parameters()):,} (")
    assert lines["format"] == "PyTorch zip archive, with training args"
    assert lines["type"].startswith(f"vit (ViT, width {model.config.embed_dim}, depth {model.config.depth}")
    assert lines["type"].endswith(f"encoder + {model.config.num_classes}-class head)")
    assert lines["input"] == f"{model.config.num_frames} frames of {model.config.img_size}x{model.config.img_size}"
    assert lines["architecture"] == " ".join(f"{k}={v}" for k, v in model.config.to_dict().items())
    assert lines["preprocessing"].startswith("not recorded in the file")


def test_info_of_a_converted_safetensors_file_needs_no_set(tmp_path, capsys):
    converted = hvm1.zoo.convert(TINY / "mae_checkpoint.pth", tmp_path / "mae.safetensors", **TINY_HEADS)
    lines = info_lines(capsys, str(converted))
    assert lines["format"].startswith("safetensors")
    assert lines["type"].startswith("mae (") and "encoder and decoder" in lines["type"]
    assert "complete, attention" in lines and "pretrain" in lines and "embed" not in lines


def test_info_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.pth"
    notes.write_text("my notes\n")
    assert main(["info", str(notes)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"hvm1 info: error: {notes} is not a PyTorch or safetensors checkpoint (its first "
        f"bytes are b'my notes'; expected a zip archive, a pickle stream or a safetensors "
        f"header)"
    ], err
