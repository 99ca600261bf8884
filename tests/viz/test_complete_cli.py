"""`hvm1 complete` and `hvm1 attention` end to end on the tiny reference checkpoints and the real videos."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest
from PIL import Image

import hvm1
from hvm1.cli import build_parser, main
from hvm1.data import file_generator, visualisation_preset
from hvm1.viz import complete_clip, completion_grid
from recorded_progress import RecordedProgress

MASK_TYPES = ("random", "temporal", "center")
TILE, FRAMES = 56, 8  # the tiny reference MAE: 56 px frames, pred_t_dim 8


def grid_size(rows: int, columns: int, tile: int = TILE) -> tuple[int, int]:
    """(width, height) of a grid of `rows` x `columns` tiles with 1 px padding, as PIL reports it."""
    return columns * (tile + 1) + 1, rows * (tile + 1) + 1


@pytest.mark.slow
@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_complete_writes_one_true_colour_picture_per_video(mask_type, mae_args, videos_dir, tmp_path):
    out = tmp_path / "out"
    assert (
        main(["complete", str(videos_dir), *mae_args, "--mask-type", mask_type, "--no-labels", "--out-dir", str(out)])
        == 0
    )
    stems = sorted(path.stem for path in videos_dir.iterdir() if path.suffix in (".mp4", ".avi"))
    assert sorted(path.name for path in out.iterdir()) == [f"{stem}_mae_checkpoint_{mask_type}.jpg" for stem in stems]
    for picture in out.iterdir():
        with Image.open(picture) as image:
            assert image.size == grid_size(3, FRAMES)

    # The file is the library's array for the same video and seed, JPEG-encoded.
    video = videos_dir / "box.mp4"
    model = hvm1.load_model(mae_args[1], num_heads=4, decoder_num_heads=4)
    preset = visualisation_preset(TILE, 8, (0.45,) * 3, (0.225,) * 3)
    clip, _ = preset.load(video)
    expected = completion_grid(
        complete_clip(model, clip, mask_type, None, file_generator(0, video)), preset.mean, preset.std
    )
    written = np.asarray(Image.open(out / f"box_mae_checkpoint_{mask_type}.jpg"), dtype=np.float32)
    assert np.abs(written - expected).mean() < 2.0


@pytest.mark.slow
def test_same_seed_gives_byte_identical_pictures(mae_args, two_videos, tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert (
            main(["complete", *map(str, two_videos), *mae_args, "--seed", str(seed), "--out-dir", str(tmp_path / name)])
            == 0
        )
        runs[name] = {path.name: path.read_bytes() for path in (tmp_path / name).iterdir()}
    assert runs["a"] == runs["b"]
    assert runs["a"].keys() == runs["c"].keys() and runs["a"] != runs["c"]  # another seed, other random masks


def test_scale_each_stretches_every_tile(mae_args, two_videos, tmp_path):
    out = tmp_path / "out"
    assert main(["complete", str(two_videos[0]), *mae_args, "--scale-each", "--no-labels", "--out-dir", str(out)]) == 0
    with Image.open(out / "box_mae_checkpoint_random.jpg") as image:
        picture = np.asarray(image)
    assert picture.shape == (3 * (TILE + 1) + 1, FRAMES * (TILE + 1) + 1, 3)
    first = picture[1 : TILE + 1, 1 : TILE + 1]  # the first original frame, stretched to its own min and max
    assert first.min() <= 4 and first.max() >= 251  # JPEG leaves the extremes within a few levels


def test_a_broken_video_is_skipped_and_named(mae_args, two_videos, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    for video in two_videos:
        (folder / video.name).symlink_to(video)
    (folder / "broken.mp4").write_text("this is not a video\n")
    out = tmp_path / "out"
    assert main(["complete", str(folder), *mae_args, "--out-dir", str(out)]) == 1
    assert sorted(path.name for path in out.iterdir()) == [
        "box_mae_checkpoint_random.jpg",
        "tree_mae_checkpoint_random.jpg",
    ]
    err = capsys.readouterr().err
    assert "2 of 3 videos written" in err
    assert f"{folder / 'broken.mp4'}: not a video file FFmpeg can read" in err


def test_videos_sharing_a_stem_get_their_folder(mae_args, two_videos, tmp_path):
    for folder, video in zip("ab", two_videos):
        (tmp_path / "videos" / folder).mkdir(parents=True)
        (tmp_path / "videos" / folder / "clip.mp4").symlink_to(video)
    out = tmp_path / "out"
    assert main(["complete", str(tmp_path / "videos"), *mae_args, "--out-dir", str(out)]) == 0
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*.jpg")) == [
        "a/clip_mae_checkpoint_random.jpg",
        "b/clip_mae_checkpoint_random.jpg",
    ]


@pytest.mark.parametrize("animate", ["mp4", "gif"])
def test_animation_decodes_to_one_frame_per_predicted_frame(animate, mae_args, two_videos, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "complete",
                str(two_videos[0]),
                *mae_args,
                "--mask-type",
                "center",
                "--animate",
                animate,
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    animation = out / f"box_mae_checkpoint_center.{animate}"
    assert sorted(path.name for path in out.iterdir()) == sorted(["box_mae_checkpoint_center.jpg", animation.name])
    with av.open(str(animation)) as container:
        stream = container.streams.video[0]
        if animate == "mp4":
            assert stream.codec_context.name in ("h264", "mpeg4")
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(frames) == FRAMES
    assert frames[0].shape == (TILE + 2, 3 * (TILE + 1) + 1, 3)  # original | masked | completion


@pytest.mark.parametrize("heads, rows", [("mean", 1), ("each", 4)])
def test_attention_maps_for_the_vit(heads, rows, vit_args, two_videos, tmp_path):
    out = tmp_path / "out"
    assert (
        main(["attention", *map(str, two_videos), *vit_args, "--heads", heads, "--no-labels", "--out-dir", str(out)])
        == 0
    )
    assert sorted(path.name for path in out.iterdir()) == [
        "box_vit_checkpoint_attention.jpg",
        "tree_vit_checkpoint_attention.jpg",
    ]
    for picture in out.iterdir():
        with Image.open(picture) as image:
            assert image.size == grid_size(1 + rows, FRAMES // 2)  # temporal tokens of 2 frames


def test_attention_takes_the_encoder_of_an_mae(mae_args, two_videos, tmp_path):
    out = tmp_path / "out"
    assert main(["attention", str(two_videos[0]), *mae_args, "--out-dir", str(out)]) == 0
    assert [path.name for path in out.iterdir()] == ["box_mae_checkpoint_attention.jpg"]


def test_published_flag_spellings(mae_args, videos_dir, tmp_path):
    published = [
        "--model_name",
        "mae_hvm1@448_none",
        "--img_size",
        "448",
        "--mask_ratio",
        "0.5",
        "--mask_type",
        "center",
        "--video_dir",
        str(videos_dir),
        "--num_vids",
        "16",
        "--device",
        "cuda",
    ]
    args = build_parser().parse_args(["complete", *published])
    assert (args.model, args.img_size, args.mask_ratio, args.mask_type) == ("mae_hvm1@448_none", 448, 0.5, "center")
    assert (args.video_dirs, args.num_vids, args.device) == ([videos_dir], 16, "cuda")

    out = tmp_path / "out"
    assert (
        main(
            [
                "complete",
                *mae_args,
                "--img_size",
                "56",
                "--mask_ratio",
                "0.5",
                "--mask_type",
                "temporal",
                "--video_dir",
                str(videos_dir),
                "--num_vids",
                "2",
                "--device",
                "cpu",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert len(list(out.iterdir())) == 2


@pytest.mark.slow
def test_no_videos_named_uses_the_sample_clip_and_never_the_current_folder(mae_args, tmp_path, monkeypatch, capsys):
    import tempfile

    cwd, temp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert main(["complete", *mae_args]) == 0
    assert list(cwd.iterdir()) == []
    [out_dir] = [path for path in temp.iterdir() if path.name.startswith("hvm1-complete-")]
    assert [path.name for path in out_dir.iterdir()] == ["hvm1_sample_mae_checkpoint_random.jpg"]
    assert str(out_dir) in capsys.readouterr().err


def test_user_errors_are_one_line(mae_args, vit_args, two_videos, tmp_path, capsys):
    video = str(two_videos[0])
    assert main(["complete", video, *mae_args, "--img-size", "50", "--out-dir", str(tmp_path)]) == 1
    assert "--img-size 50 is not a multiple of the model's patch size 14" in capsys.readouterr().err
    assert main(["complete", video, *vit_args, "--out-dir", str(tmp_path)]) == 1
    assert "vit_checkpoint.pth" in capsys.readouterr().err
    assert main(["complete", str(tmp_path / "missing"), *mae_args, "--out-dir", str(tmp_path)]) == 1
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert main(["complete", video, *mae_args, "--mask-ratio", "1.0", "--out-dir", str(tmp_path)]) == 1
    assert "--mask-ratio must be in [0, 1)" in capsys.readouterr().err  # the flag, not the field
    assert list(tmp_path.iterdir()) == []


def test_pictures_are_labelled_by_default_around_the_published_tiles(mae_args, vit_args, two_videos, tmp_path):
    from hvm1.viz import attention_labels, completion_labels

    video = str(two_videos[0])
    for command, args in (("complete", mae_args), ("attention", vit_args)):
        plain, labelled = tmp_path / f"{command}-plain", tmp_path / f"{command}-labelled"
        assert (
            main(
                [
                    command,
                    video,
                    *args,
                    "--mask-type" if command == "complete" else "--heads",
                    "center" if command == "complete" else "mean",
                    "--no-labels",
                    "--out-dir",
                    str(plain),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    command,
                    video,
                    *args,
                    "--mask-type" if command == "complete" else "--heads",
                    "center" if command == "complete" else "mean",
                    "--out-dir",
                    str(labelled),
                ]
            )
            == 0
        )
        [plain_file], [labelled_file] = plain.iterdir(), labelled.iterdir()
        assert plain_file.name == labelled_file.name
        with Image.open(plain_file) as image:
            published = np.asarray(image)
        with Image.open(labelled_file) as image:
            picture = np.asarray(image).astype(np.int16)
        height, width = published.shape[:2]
        margin_top = picture.shape[0] - height
        assert margin_top > 5 and picture.shape[1] > width + 30  # a margin above and row names on the left
        # The tiles are the published ones, moved: the margins are added around them, not drawn over them.
        left = next(
            x
            for x in range(picture.shape[1] - width + 1)
            if np.abs(picture[margin_top:, x : x + width] - published).mean() < 3
        )
        assert left > 30
        # The row names are drawn: bright text in the black margin on the left of the first row.
        assert picture[margin_top + TILE // 2 - 4 : margin_top + TILE // 2 + 4, : left - 2].max() > 200
    # The labels are computed, not fixed: a frame time per column, in the clip's seconds.
    times = completion_labels(np.zeros((3 * 57 + 1, 8 * 57 + 1, 3), np.uint8), (56, 56), 7.5)
    assert times.shape[1] > 8 * 57 + 1
    with pytest.raises(ValueError, match="a 100x100 picture is no grid of 2x1 tiles of 56x56"):
        attention_labels(np.zeros((100, 100, 3), np.uint8), (56, 56), 0.27)


def test_pictures_from_a_training_checkpoint_are_named_after_the_run(mae_args, two_videos, tmp_path):
    from pathlib import Path

    from hvm1.zoo import file_stem

    run = tmp_path / "runs" / "pre"
    run.mkdir(parents=True)
    (run / "checkpoint-last.pth").symlink_to(mae_args[1])
    out = tmp_path / "out"
    assert (
        main(
            [
                "complete",
                str(two_videos[0]),
                "--checkpoint",
                str(run / "checkpoint-last.pth"),
                *mae_args[2:],
                "--mask-type",
                "center",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert [path.name for path in out.iterdir()] == ["box_pre-last_center.jpg"]
    assert file_stem(Path("weights/my_model.pth")) == "my_model"  # any other file keeps its stem


@pytest.mark.parametrize("command", ["complete", "attention"])
def test_drawing_beside_the_model_writes_the_same_files_in_the_same_order(command, two_videos, tmp_path):
    from hvm1.viz import attention_videos, complete_videos

    class Watched(RecordedProgress):
        """Also notes, as each video is done, whether a drawing thread is running beside this one."""

        def __init__(self):
            super().__init__()
            self.drawing: list[bool] = []

        def advance(self, done, item=""):
            super().advance(done, item)
            self.drawing.append(any(thread.name.startswith("hvm1-draw") for thread in threading.enumerate()))

    folder = two_videos[0].parent.parent / "reference" / "tiny"
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    videos = [two_videos[0], bad, two_videos[1]]
    if command == "complete":
        model = hvm1.load_model(folder / "mae_checkpoint.pth", num_heads=4, decoder_num_heads=4)
        run = complete_videos
    else:
        model = hvm1.load_model(folder / "vit_checkpoint.pth", num_heads=4)
        run = attention_videos
    outputs = {}
    for beside in (False, True):
        progress = Watched()
        out = tmp_path / str(beside)
        report = run(model, videos, out, model_name="tiny", labels=True, progress=progress, draw_beside=beside)
        assert progress.stages() == [
            ("start", 3, "video", ""),
            ("advance", 1, "box.mp4"),
            ("advance", 2, "bad.mp4"),
            ("advance", 3, "tree.avi"),
            ("close",),
        ]
        assert any(progress.drawing) == beside
        assert [written.video for written in report.pictures] == [videos[0], videos[2]]
        assert [failure.path for failure in report.skipped] == [str(bad)]
        files = [file for written in report.pictures for file in written.files]
        assert files == report.written
        outputs[beside] = [(file.relative_to(out), file.read_bytes()) for file in files]
    assert outputs[True] == outputs[False] and len(outputs[True]) == 2


def test_complete_from_a_file_imports_nothing_it_does_not_use(mae_args, two_videos, tmp_path):
    import subprocess
    import sys

    # huggingface_hub is slow to import and serves only zoo names; the others serve other commands.
    argv = ["complete", *mae_args, str(two_videos[0]), "--out-dir", str(tmp_path)]
    code = (
        f"import sys\nfrom hvm1.cli import main\nstatus = main({argv!r})\n"
        "print(status, sorted({name.split('.')[0] for name in sys.modules} & "
        "{'huggingface_hub', 'matplotlib', 'gradio', 'pandas', 'scipy', 'sklearn'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "0 []", result.stdout
