"""Embeddings and evaluation at other sizes, of other layers, and of whole frames at their aspect ratio."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eval_files import class_folders
from hvm1.cli import main
from hvm1.data import whole_frame_preset
from hvm1.data.transforms import whole_frame_size
from hvm1.eval import embed_videos, embedding_preset, evaluate, load_embeddings
from hvm1.zoo import preprocessing_for
from reference_data import MAE_CHECKPOINT, TINY_SET, fixture


def test_whole_frame_size_rounds_both_sides_to_patches():
    assert whole_frame_size(224, 299, 14) == (224, 294)  # 640 x 480 at 224 px: 16 x 21 patches
    assert whole_frame_size(224, 301, 14) == (224, 308)
    assert whole_frame_size(3, 5, 14) == (14, 14)


def test_layer_pools_the_normed_block_output(encoder, clips):
    video = clips["cup"][0]
    clip, _ = embedding_preset(preprocessing_for(encoder)).load(video, "center")
    with torch.no_grad():
        blocks = encoder.forward_intermediates(clip[None], norm=True)  # every block, final norm applied
    first = embed_videos(encoder, [video], pool="mean", layer=0).embeddings
    last = embed_videos(encoder, [video], pool="cls", layer=-1).embeddings
    np.testing.assert_allclose(first.embeddings[0], blocks[0][0, 1:].mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(last.embeddings[0], blocks[1][0, 0].numpy(), atol=1e-6)
    assert first.settings["layer"] == 0
    with pytest.raises(ValueError, match=r"outside this model's 2 blocks"):
        embed_videos(encoder, [video], layer=2)


def test_other_size_and_whole_frame(encoder, clips):
    video = clips["box"][0]  # 640 x 480
    pre = dataclasses.replace(preprocessing_for(encoder), img_size=42, num_frames=4)
    rows = embed_videos(encoder, [video], preprocessing=pre, pool="tokens").embeddings
    assert rows.embeddings.shape == (1, 1 + 2 * 3 * 3, 64)
    whole = embed_videos(encoder, [video], preprocessing=pre, pool="tokens", full_frame=True).embeddings
    assert whole.embeddings.shape == (1, 1 + 2 * 3 * 4, 64)  # 42 x 56: the whole 4:3 frame in patches
    assert whole.settings["crop"] == "full"
    clip, _ = whole_frame_preset(embedding_preset(pre), 14).load(video, "center")
    assert clip.shape == (3, 4, 42, 56)
    with torch.no_grad():
        expected = encoder.forward_features(clip[None])
    np.testing.assert_allclose(whole.embeddings, expected.numpy(), rtol=2e-3, atol=2e-3)  # tokens: stored float16


@pytest.mark.slow
def test_cli_sizes_layers_and_whole_frames(clips, tmp_path, capsys):
    model = ["--checkpoint", str(fixture(MAE_CHECKPOINT)), *TINY_SET]
    out = tmp_path / "e.npz"
    assert (
        main(
            [
                "embed",
                str(clips["cup"][0]),
                *model,
                "-o",
                str(out),
                "--img-size",
                "70",
                "--num-frames",
                "6",
                "--layer",
                "-2",
                "--pool",
                "tokens",
                "--full-frame",
                "--num-workers",
                "0",
            ]
        )
        == 0
    )
    rows = load_embeddings(out)
    assert rows.embeddings.shape == (1, 1 + 3 * 5 * 7, 64)  # 70 x 98 (640 x 480 at a 70 px short side)
    assert rows.settings["layer"] == -2 and rows.settings["img_size"] == 70 and rows.settings["num_frames"] == 6
    assert main(["embed", str(clips["cup"][0]), *model, "-o", str(tmp_path / "x.npz"), "--img-size", "50"]) == 1
    assert "--img-size 50 is not a multiple of the model's patch size 14" in capsys.readouterr().err
    assert (
        main(
            [
                "attention",
                str(clips["box"][0]),
                *model,
                "--img-size",
                "84",
                "--full-frame",
                "--no-labels",
                "--out-dir",
                str(tmp_path / "att"),
            ]
        )
        == 0
    )
    from PIL import Image

    with Image.open(next((tmp_path / "att").glob("*.jpg"))) as picture:
        assert picture.size == (4 * (112 + 1) + 1, 2 * (84 + 1) + 1)  # 4 time tokens of 84 x 112 frames


def test_evaluate_at_another_size_and_whole_frames(classifier, clips, tmp_path):
    files = clips["box"] + clips["cup"]  # 7 videos, one per class of the tiny head
    data = class_folders(tmp_path / "data", {f"c{i}": [file] for i, file in enumerate(files)})
    pre = dataclasses.replace(preprocessing_for(classifier), img_size=70)
    square = evaluate(classifier, data, preprocessing=pre, views=(1, 1))
    whole = evaluate(classifier, data, preprocessing=pre, full_frame=True)
    assert square.logits.shape == whole.logits.shape == (7, 7)
    assert not np.allclose(square.logits, whole.logits)
    with pytest.raises(ValueError, match="full_frame reads one whole-frame view"):
        evaluate(classifier, data, preprocessing=pre, views=(1, 3), full_frame=True)


@pytest.mark.slow
def test_complete_whole_frames_at_another_size(clips, tmp_path):
    from PIL import Image

    model = ["--checkpoint", str(fixture(MAE_CHECKPOINT)), *TINY_SET]
    out = tmp_path / "c"
    assert (
        main(
            [
                "complete",
                str(clips["box"][0]),
                *model,
                "--img-size",
                "56",
                "--full-frame",
                "--mask-type",
                "center",
                "--no-labels",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    with Image.open(next(out.glob("*.jpg"))) as picture:
        assert picture.size == (8 * (70 + 1) + 1, 3 * (56 + 1) + 1)  # 8 frames of 56 x 70 (640 x 480 at 56 px)
