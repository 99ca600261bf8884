"""`hvm1 convert`: a published checkpoint to one .safetensors file that loads with no overrides, same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hvm1
from hvm1.cli import main
from reference_data import reference_heads

# `reference` (conftest) is each reference reference model folder in turn.


def load_video(reference: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(reference / "expected.npz")["video"])


def heads_args(reference: Path) -> list[str]:
    return [arg for field, value in reference_heads(reference).items() for arg in ("--set", f"{field}={value}")]


def outputs(model: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, hvm1.VideoMAE):
            return model(video, mask_ratio=0.5, mask_type="center")[1]
        return model(video)


@pytest.mark.parametrize("checkpoint", ["mae_checkpoint.pth", "vit_checkpoint.pth"])
def test_converted_file_loads_without_overrides_and_gives_identical_outputs(tmp_path, reference, checkpoint):
    out, video = tmp_path / "model.safetensors", load_video(reference)
    assert main(["convert", str(reference / checkpoint), "-o", str(out), *heads_args(reference)]) == 0
    original = hvm1.load_model(reference / checkpoint, **reference_heads(reference))
    converted = hvm1.load_model(out)
    assert type(converted) is type(original) and converted.config == original.config
    assert torch.equal(outputs(converted, video), outputs(original, video))


def test_bfloat16_file_is_half_the_size_and_loads_close(tmp_path, reference):
    full, half = tmp_path / "f32.safetensors", tmp_path / "bf16.safetensors"
    video = load_video(reference)
    source = str(reference / "vit_checkpoint.pth")
    assert main(["convert", source, "-o", str(full), *heads_args(reference)]) == 0
    assert main(["convert", source, "-o", str(half), "--dtype", "bfloat16", *heads_args(reference)]) == 0
    assert 0.45 < half.stat().st_size / full.stat().st_size < 0.55
    loaded = hvm1.load_model(half, dtype="bfloat16")
    assert next(loaded.parameters()).dtype == torch.bfloat16
    expected = outputs(hvm1.load_model(full), video)
    assert torch.allclose(outputs(loaded, video.bfloat16()).float(), expected, atol=0.05 * expected.abs().max())


def test_model_type_vit_keeps_the_encoder_only(tmp_path, reference):
    out, video = tmp_path / "encoder.safetensors", load_video(reference)
    assert (
        main(
            [
                "convert",
                str(reference / "mae_checkpoint.pth"),
                "-o",
                str(out),
                "--model-type",
                "vit",
                *heads_args(reference),
            ]
        )
        == 0
    )
    encoder = hvm1.load_model(out)
    assert isinstance(encoder, hvm1.VideoViT)
    assert not any(key.startswith("decoder") for key in encoder.state_dict())
    expected = np.load(reference / "expected.npz")["vit_embedding"]
    np.testing.assert_allclose(outputs(encoder, video).numpy(), expected, atol=1e-5)


def test_convert_errors_are_one_line_on_stderr(tmp_path, reference, capsys):
    source = str(reference / "mae_checkpoint.pth")
    assert main(["convert", source, "-o", str(tmp_path / "model.pth"), *heads_args(reference)]) == 1
    assert ".safetensors" in capsys.readouterr().err
    assert main(["convert", source, "-o", str(tmp_path / "model.safetensors")]) == 1
    assert "num_heads" in capsys.readouterr().err  # width 64 matches no named size: --set is needed
    assert main(["convert", source, "-o", str(tmp_path / "m.safetensors"), "--set", "num_heads"]) == 1
    assert "FIELD=VALUE" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_files_without_recorded_preprocessing_get_the_video_default_at_their_size(tmp_path, reference):
    out = tmp_path / "model.safetensors"
    assert main(["convert", str(reference / "mae_checkpoint.pth"), "-o", str(out), *heads_args(reference)]) == 0
    for path in (reference / "mae_checkpoint.pth", out):
        pre = hvm1.zoo.preprocessing_for(path)
        assert (pre.img_size, pre.num_frames, pre.mean, pre.std) == (56, 8, (0.45,) * 3, (0.225,) * 3)
