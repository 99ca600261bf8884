"""`hvm1 propagate` end to end with the tiny reference ViT: a DAVIS-layout folder built from the real
test videos, and one video file with a first-frame mask."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from segment_data import moving_object_sequence, write_davis

from hvm1.cli import main
from hvm1.segment import davis_palette, read_mask, region_similarity
from hvm1.viz.grid import write_mp4
from reference_data import TINY, VIDEOS, fixture

pytestmark = pytest.mark.slow  # every test here is an end-to-end command run


@pytest.fixture
def model_args() -> list[str]:
    folder = fixture(TINY)
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
    assert "firstonly: not scored (1 of 3 frames annotated), left out of the global means" in printed.out

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
    assert (
        main(
            [
                "propagate",
                str(video),
                "--mask",
                str(tmp_path / "first.png"),
                *model_args,
                "--out-dir",
                str(out),
                "--max-frames",
                "3",
                "--short-side",
                "224",
                "--animate",
                "gif",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (out / "clip").glob("*.png")) == ["00000.png", "00001.png", "00002.png"]
    np.testing.assert_array_equal(read_mask(out / "clip" / "00000.png"), first)
    assert (out / "clip" / "overlay.jpg").is_file() and (out / "clip" / "overlay.gif").is_file()
    assert "clip: 3 masks" in capsys.readouterr().out


def test_propagate_refuses_unclear_inputs(model_args, tmp_path, capsys):
    (tmp_path / "notdavis").mkdir()
    assert main(["propagate", str(tmp_path / "notdavis"), *model_args, "--out-dir", str(tmp_path / "o")]) == 1
    assert "not a DAVIS-2017 folder: no ImageSets/2017/val.txt" in capsys.readouterr().err
    video = fixture(VIDEOS / "box.mp4")
    assert main(["propagate", str(video), *model_args, "--out-dir", str(tmp_path / "o")]) == 1
    assert "name its first frame's mask with --mask" in capsys.readouterr().err


@pytest.mark.slow
def test_a_damaged_sequence_is_named_and_the_others_propagated(model_args, tmp_path, capsys):
    root = write_davis(
        tmp_path / "davis", {"good": moving_object_sequence(3, size=64), "bad": moving_object_sequence(3, size=64)}
    )
    frame = root / "JPEGImages" / "480p" / "bad" / "00001.jpg"
    frame.write_bytes(frame.read_bytes()[:600])  # a truncated JPEG
    out = tmp_path / "out"
    assert main(["propagate", str(root), *model_args, "--out-dir", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "1 input could not be read and was skipped:\n  bad: " in err and str(frame) in err, err
    assert len(list((out / "good").glob("*.png"))) == 3 and not (out / "bad").exists()


def test_odd_sized_frame_one_frame_void_and_a_repeated_listing(model_args, tmp_path, capsys):
    # The cases of issue 23 in one DAVIS folder: "odd" has a frame 648 px wide among 640 px ones (the same
    # 640 px feature grid, so only the sizes tell), "single" one frame (nothing to score), "void" void
    # pixels (255) in its annotations, and "good" listed twice in val.txt.
    good = moving_object_sequence(3, size=64)
    odd = moving_object_sequence(3, size=64)
    single = moving_object_sequence(1, size=64)
    void_frames, void_masks = moving_object_sequence(3, size=64)
    void_masks = [mask.copy() for mask in void_masks]
    for mask in void_masks:
        mask[:4, :] = 255  # a void band along the top of every annotation
    odd[0][1] = np.concatenate([odd[0][1], odd[0][1][:, -8:]], axis=1)  # frame 00001: 648 x 480
    odd[1][1] = np.concatenate([odd[1][1], np.zeros((480, 8), np.uint8)], axis=1)
    root = write_davis(
        tmp_path / "davis", {"good": good, "odd": odd, "single": single, "void": (void_frames, void_masks)}
    )
    (root / "ImageSets" / "2017" / "val.txt").write_text("good\nodd\nsingle\nvoid\ngood\n")
    out = tmp_path / "out"
    assert main(["propagate", str(root), *model_args, "--out-dir", str(out), "--device", "cpu"]) == 1
    printed = capsys.readouterr()
    bad_frame = root / "JPEGImages" / "480p" / "odd" / "00001.jpg"
    assert f"  odd: {bad_frame}: 648x480 px, but the sequence's first frame 00000.jpg is 640x480 px" in printed.err
    assert "single: not scored (1 frame: the first and the last are never scored)" in printed.out
    assert "nan" not in printed.out.lower()

    for name, (frames, _) in (("good", good), ("single", single), ("void", (void_frames, void_masks))):
        assert len(list((out / name).glob("*.png"))) == len(frames)  # every finished sequence is written
    assert not (out / "odd").exists()
    # The void band is background in the propagated masks too: the first one is the annotation without it.
    np.testing.assert_array_equal(
        read_mask(out / "void" / "00000.png"), np.where(void_masks[0] == 255, 0, void_masks[0])
    )

    tables = {path.name: path.read_bytes() for path in out.glob("*.csv")}
    assert set(tables) == {"global_results-val.csv", "per-sequence_results-val.csv"}
    for data in tables.values():
        assert b"\r" not in data and b"nan" not in data.lower()  # LF line ends, as the official files
    rows = list(csv.reader(tables["per-sequence_results-val.csv"].decode().splitlines()))
    assert [row[0] for row in rows[1:]] == ["good_1", "void_1"]  # good once; no void_2..void_255; no single
    predicted = {name: [read_mask(out / name / "00001.png")] for name in ("good", "void")}
    truth = {"good": good[1][1], "void": np.where(void_masks[1] == 255, 0, void_masks[1])}
    for row in rows[1:]:
        name = row[0][:-2]
        assert float(row[1]) == pytest.approx(region_similarity(truth[name] == 1, predicted[name][0] == 1), abs=5e-4)
    header, values = list(csv.reader(tables["global_results-val.csv"].decode().splitlines()))
    assert float(values[1]) == pytest.approx(np.mean([float(row[1]) for row in rows[1:]]), abs=1e-3)
