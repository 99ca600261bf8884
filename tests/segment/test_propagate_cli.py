"""`hvm1 propagate` end to end with the tiny reference ViT: a DAVIS-layout folder built from the shared
videos, and one video file with a first-frame mask."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from segment_data import moving_object_sequence, shared, write_davis

from hvm1.cli import main
from hvm1.segment import davis_palette, read_mask, region_similarity
from hvm1.viz.grid import write_mp4

pytestmark = pytest.mark.slow  # every test here is an end-to-end command run


@pytest.fixture
def model_args() -> list[str]:
    folder = shared("reference/tiny")
    heads = json.loads((folder / "config.json").read_text())["num_heads"]
    return ["--checkpoint", str(folder / "mae_checkpoint.pth"), "--set", f"num_heads={heads}"]


def test_propagate_davis_folder(model_args, tmp_path, capsys):
    two = moving_object_sequence(5, step=(6, 12), size=80, objects=2)
    one = moving_object_sequence(3, size=64)
    root = write_davis(tmp_path / "davis", {"two": two})
    write_davis(tmp_path / "davis", {"firstonly": one}, annotate_all=False)  # only its first annotation
    (root / "ImageSets" / "2017" / "val.txt").write_text("two\nfirstonly\n")
    out = tmp_path / "out"
    assert main(["propagate", str(root), *model_args, "--out-dir", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    assert "J&F-Mean" in printed.out

    for name, (frames, masks) in (("two", two), ("firstonly", one)):
        written = sorted((out / name).glob("*.png"))
        assert [p.name for p in written] == [f"{i:05d}.png" for i in range(len(frames))]
        for path in written:
            with Image.open(path) as image:
                assert image.mode == "P" and image.size == (640, 480)
                assert image.getpalette()[:9] == davis_palette()[:3].ravel().tolist()
        np.testing.assert_array_equal(read_mask(written[0]), masks[0])  # the first frame: the annotation itself
        with Image.open(out / name / "overlay.jpg") as overlay:
            assert overlay.size == (len(frames) * 641 + 1, 482)

    with open(out / "per-sequence_results-val.csv") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["Sequence", "J-Mean", "F-Mean"]
    assert [row[0] for row in rows[1:]] == ["two_1", "two_2"]  # firstonly has no annotations to score against
    predicted = [read_mask(out / "two" / f"{i:05d}.png") for i in range(5)]
    for obj, row in zip((1, 2), rows[1:]):
        j = np.mean([region_similarity(two[1][i] == obj, predicted[i] == obj) for i in (1, 2, 3)])
        assert float(row[1]) == pytest.approx(j, abs=5e-4)  # frames 1..3: the first and last are left out
        assert 0.0 <= float(row[2]) <= 1.0
    with open(out / "global_results-val.csv") as file:
        header, values = list(csv.reader(file))
    assert header == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    j_mean = np.mean([float(row[1]) for row in rows[1:]])
    f_mean = np.mean([float(row[2]) for row in rows[1:]])
    assert float(values[1]) == pytest.approx(j_mean, abs=1e-3)
    assert float(values[0]) == pytest.approx((float(values[1]) + float(values[4])) / 2, abs=1e-3)
    assert float(values[4]) == pytest.approx(f_mean, abs=1e-3)


def test_propagate_one_video_with_a_first_mask(model_args, tmp_path, capsys):
    frames, masks = moving_object_sequence(4, size=64)
    video = write_mp4(np.stack(frames), tmp_path / "clip.mp4", 30)
    Image.fromarray(masks[0] * 255).save(tmp_path / "first.png")  # greyscale: any non-zero value is an id
    first = np.asarray(Image.open(tmp_path / "first.png"))
    out = tmp_path / "out"
    assert main(["propagate", str(video), "--mask", str(tmp_path / "first.png"), *model_args, "--out-dir", str(out),
                 "--max-frames", "3", "--short-side", "224", "--animate", "gif"]) == 0
    assert sorted(p.name for p in (out / "clip").glob("*.png")) == ["00000.png", "00001.png", "00002.png"]
    np.testing.assert_array_equal(read_mask(out / "clip" / "00000.png"), first)
    assert (out / "clip" / "overlay.jpg").is_file() and (out / "clip" / "overlay.gif").is_file()
    assert "clip: 3 masks" in capsys.readouterr().out


def test_propagate_refuses_unclear_inputs(model_args, tmp_path, capsys):
    (tmp_path / "notdavis").mkdir()
    assert main(["propagate", str(tmp_path / "notdavis"), *model_args, "--out-dir", str(tmp_path / "o")]) == 1
    assert "not a DAVIS-2017 folder: no ImageSets/2017/val.txt" in capsys.readouterr().err
    video = shared("videos/box.mp4")
    assert main(["propagate", str(video), *model_args, "--out-dir", str(tmp_path / "o")]) == 1
    assert "name its first frame's mask with --mask" in capsys.readouterr().err


@pytest.mark.slow
def test_a_damaged_sequence_is_named_and_the_others_propagated(model_args, tmp_path, capsys):
    root = write_davis(tmp_path / "davis", {"good": moving_object_sequence(3, size=64),
                                            "bad": moving_object_sequence(3, size=64)})
    frame = root / "JPEGImages" / "480p" / "bad" / "00001.jpg"
    frame.write_bytes(frame.read_bytes()[:600])  # a truncated JPEG
    out = tmp_path / "out"
    assert main(["propagate", str(root), *model_args, "--out-dir", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "1 input could not be read and was skipped:\n  bad: " in err and str(frame) in err, err
    assert len(list((out / "good").glob("*.png"))) == 3 and not (out / "bad").exists()
