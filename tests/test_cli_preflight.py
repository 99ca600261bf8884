"""Checks before the work: outputs that cannot be written and empty inputs fail at once, every command writes
by default into a new temp folder (never the current one), and the notes a user needs (labels lost, fewer
videos than asked) are said."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from hvm1.cli import main
from hvm1.files import check_writable
from reference_data import IMAGES, TINY, VIDEOS, fixture

VIT = ["--checkpoint", str(TINY / "vit_checkpoint.pth"), "--set", "num_heads=4"]
MAE = [*VIT[:1], str(TINY / "mae_checkpoint.pth"), "--set", "num_heads=4", "--set", "decoder_num_heads=4"]


@pytest.fixture(autouse=True)
def fixture_files():
    for path in (TINY / "vit_checkpoint.pth", TINY / "mae_checkpoint.pth", VIDEOS, IMAGES):
        fixture(path)


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A folder that cannot be made: its parent is a file."""
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "out"


def class_folder(root: Path) -> Path:
    for label, names in (("objects", ("box.mp4", "cup.mp4")), ("scenes", ("tree.avi", "vtest.avi"))):
        (root / label).mkdir(parents=True)
        for name in names:
            (root / label / name).symlink_to(VIDEOS / name)
    return root


@pytest.mark.parametrize("command", ["evaluate", "embed", "complete"])
def test_an_output_that_cannot_be_written_fails_before_any_work(command, blocked, tmp_path, capsys):
    data = class_folder(tmp_path / "data")
    argv = {
        "evaluate": ["evaluate", str(data), *VIT, "--out-dir", str(blocked)],
        "embed": ["embed", str(data), *VIT, "-o", str(blocked / "x.npz")],
        "complete": ["complete", str(data), *MAE, "--out-dir", str(blocked)],
    }[command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # One line, and nothing before it: no model was loaded (its precision line), no clip decoded.
    assert err.splitlines() == [
        f"hvm1 {command}: error: cannot write into {blocked}: {tmp_path / 'a-file'} is a file, not a folder"
    ], err
    assert (tmp_path / "a-file").read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_named(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OSError, match=f"cannot write into {folder / 'sub'}: Permission denied"):
            check_writable(folder / "sub")
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []  # the check leaves nothing behind


def test_the_check_creates_nothing(tmp_path):
    check_writable(tmp_path / "not" / "yet")
    assert list(tmp_path.iterdir()) == []


def test_embed_of_an_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["embed", str(tmp_path / "empty"), *VIT, "-o", str(tmp_path / "y.npz")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"hvm1 embed: error: no videos in {tmp_path / 'empty'}: nothing to embed"], err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty"]


@pytest.mark.slow
def test_embed_of_two_class_folders_says_the_labels_are_lost(tmp_path, capsys):
    train, test = class_folder(tmp_path / "train"), class_folder(tmp_path / "test")
    out = tmp_path / "both.npz"
    assert main(["embed", str(train), str(test), *VIT, "-o", str(out), "--num-workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "note: 2 paths are named, so the videos get no labels (label -1)" in err, err
    from hvm1.eval import load_embeddings

    assert list(load_embeddings(out).labels) == [-1] * 8


@pytest.mark.slow
def test_evaluate_writes_into_a_new_temp_folder_by_default(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"  # 7 classes, as the tiny ViT's head
    for index in range(7):
        (data / f"class{index}").mkdir(parents=True)
        (data / f"class{index}" / "box.mp4").symlink_to(VIDEOS / "box.mp4")
    cwd, temp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert main(["evaluate", str(data), *VIT, "--views", "1x1", "--num-workers", "0"]) == 0
    assert list(cwd.iterdir()) == []
    [out_dir] = list(temp.iterdir())
    assert out_dir.name.startswith("hvm1-evaluate-")
    assert sorted(path.name for path in out_dir.iterdir()) == ["per_class.csv", "predictions.csv", "summary.json"]
    assert f"wrote {out_dir / 'predictions.csv'}" in capsys.readouterr().out


@pytest.mark.slow
def test_num_vids_beyond_the_videos_found_is_said(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "complete",
                str(VIDEOS / "box.mp4"),
                str(VIDEOS / "cup.mp4"),
                *MAE,
                "--num-vids",
                "5",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "--num-vids 5 asks for more videos than the 2 found: using all 2" in err, err
    assert len(list(out.iterdir())) == 2


def test_embed_takes_images_as_evaluate_reads_them(tmp_path, capsys):
    import numpy as np
    import torch

    import hvm1
    from hvm1.eval import load_embeddings

    images = IMAGES
    out = tmp_path / "images.npz"
    assert (
        main(["embed", str(images), "--images", *VIT, "-o", str(out), "--num-workers", "0", "--precision", "fp32"]) == 0
    )
    assert f"{out}: 4 images (4 embedded now" in capsys.readouterr().out
    rows = load_embeddings(out)
    assert rows.settings["images"] is True and rows.settings["sampling_rate"] is None
    model = hvm1.load_model(TINY / "vit_checkpoint.pth", model_type="vit", num_heads=4)
    preset = hvm1.preprocessing_for(TINY / "vit_checkpoint.pth", model).image_evaluation()
    for path, embedding in zip(rows.paths, rows.embeddings):
        with torch.no_grad():
            expected = model.forward_features(preset.load(path)[0][None])[0, 0]
        np.testing.assert_allclose(embedding, expected.numpy(), rtol=1e-4, atol=1e-5)
    assert main(["embed", str(images), "--images", "--num-clips", "2", *VIT, "-o", str(tmp_path / "x.npz")]) == 1
    assert "an image is one clip" in capsys.readouterr().err
