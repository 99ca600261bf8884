"""No input stops a run: every command that reads many inputs does the good ones, names each bad one with
the reason in its summary, and exits 1.

Beside the good videos lie a damaged copy of a real video (a VideoError) and a file whose reading raises
an exception hvm1 does not expect (a RuntimeError planted in PyAV's `av.open` for that file, standing for a
library failure nobody translated, or a bug): both must be named, the second with its exception type.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from hvm1.cli import main
from reference_data import TINY, TINY_SET, VIDEOS, fixture

PLANTED = "planted failure"

pytestmark = pytest.mark.slow  # every test here is an end-to-end command run


def small_video(path: Path, seed: int, num_frames: int = 24, size: tuple[int, int] = (64, 80)) -> Path:
    """A small noise video at 30 fps (MPEG-4 Part 2): quick to decode, different for each seed."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """Two class folders: 'a' with two good videos, a damaged copy of box.mp4 and the planted failure;
    'b' with two good videos."""
    for path in (TINY, VIDEOS / "box.mp4"):
        fixture(path)
    root = tmp_path / "data"
    for label, seeds in (("a", (0, 1)), ("b", (2, 3))):
        (root / label).mkdir(parents=True)
        for seed in seeds:
            small_video(root / label / f"good{seed}.mp4", seed)
    data = (VIDEOS / "box.mp4").read_bytes()
    (root / "a" / "damaged.mp4").write_bytes(data[: len(data) // 50])  # the header and a few frames' data
    shutil.copy(root / "a" / "good0.mp4", root / "a" / "planted.mp4")
    real_open = av.open

    def plant(file, *arguments, **options):
        if Path(str(file)).name == "planted.mp4":
            raise RuntimeError(PLANTED)
        return real_open(file, *arguments, **options)

    monkeypatch.setattr(av, "open", plant)
    return root


def assert_named(err: str, root: Path) -> None:
    """The summary at the end of stderr names exactly the two bad files, the planted one with its type."""
    heading = "2 inputs could not be read and were skipped:\n"
    assert heading in err, err
    damaged, planted = sorted(err.split(heading)[-1].splitlines())  # training reads in shuffled order
    assert damaged.startswith(f"  {root / 'a' / 'damaged.mp4'}: "), err
    assert planted == f"  {root / 'a' / 'planted.mp4'}: RuntimeError: {PLANTED}", err


def test_embed(folder, tmp_path, capsys):
    out = tmp_path / "out.npz"
    status = main(
        [
            "embed",
            str(folder),
            "--checkpoint",
            str(TINY / "mae_checkpoint.pth"),
            *TINY_SET,
            "-o",
            str(out),
            "--num-workers",
            "0",
        ]
    )
    assert status == 1
    assert_named(capsys.readouterr().err, folder)
    with np.load(out) as rows:
        assert sorted(Path(path).name for path in rows["paths"]) == ["good0.mp4", "good1.mp4", "good2.mp4", "good3.mp4"]


def test_embed_in_dataloader_workers(folder, tmp_path, capsys):
    status = main(
        [
            "embed",
            str(folder),
            "--checkpoint",
            str(TINY / "mae_checkpoint.pth"),
            *TINY_SET,
            "-o",
            str(tmp_path / "out.npz"),
            "--num-workers",
            "2",
            "--batch-size",
            "2",
        ]
    )
    assert status == 1
    assert_named(capsys.readouterr().err, folder)


def test_evaluate(folder, tmp_path, capsys):
    manifest = tmp_path / "data.csv"  # the tiny classifier has 7 classes; two are used here
    manifest.write_text(
        "".join(f"{path},{0 if path.parent.name == 'a' else 6}\n" for path in sorted(folder.rglob("*.mp4")))
    )
    status = main(
        [
            "evaluate",
            str(manifest),
            "--checkpoint",
            str(TINY / "vit_checkpoint.pth"),
            *TINY_SET,
            "--views",
            "1x1",
            "--num-workers",
            "0",
            "--out-dir",
            str(tmp_path / "eval"),
        ]
    )
    assert status == 1
    assert_named(capsys.readouterr().err, folder)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert sorted(Path(item["path"]).name for item in summary["skipped"]) == ["damaged.mp4", "planted.mp4"]
    assert len((tmp_path / "eval" / "predictions.csv").read_text().splitlines()) == 1 + 4  # header + good ones


@pytest.mark.parametrize(
    "command, checkpoint", [("complete", "mae_checkpoint.pth"), ("attention", "vit_checkpoint.pth")]
)
def test_pictures(folder, tmp_path, capsys, command, checkpoint):
    out = tmp_path / "pictures"
    status = main([command, str(folder), "--checkpoint", str(TINY / checkpoint), *TINY_SET, "--out-dir", str(out)])
    assert status == 1
    assert_named(capsys.readouterr().err, folder)
    assert sorted(path.name.split("_")[0] for path in out.rglob("*.jpg")) == ["good0", "good1", "good2", "good3"]


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_training(folder, tmp_path, capsys, caplog, command):
    run = tmp_path / "run"
    common = [
        "--out-dir",
        str(run),
        "--batch-size",
        "2",
        "--accum-iter",
        "1",
        "--epochs",
        "1",
        "--num-workers",
        "0",
        "--no-tensorboard",
    ]
    if command == "pretrain":
        args = [
            "pretrain",
            str(folder),
            "--checkpoint",
            str(TINY / "mae_checkpoint.pth"),
            *TINY_SET,
            "--repeat-aug",
            "1",
            *common,
        ]
    else:
        args = [
            "finetune",
            str(folder),
            "--val",
            str(folder),
            "--checkpoint",
            str(TINY / "vit_checkpoint.pth"),
            *TINY_SET,
            "--eval-batch-size",
            "2",
            *common,
        ]
    assert main(args) == 1
    err = capsys.readouterr().err
    if command == "finetune":  # validation reads the same folder
        err, last = err.rstrip("\n").rsplit("\n", 1)
        assert last == "2 validation files could not be read and were skipped", err
    assert_named(err, folder)
    warned = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    reads = 2 if command == "finetune" else 1  # finetune reads the folder again to validate
    for name in ("damaged.mp4", "planted.mp4"):  # said once a read, as it is read (then in the summary)
        assert sum(name in message for message in warned) == reads, warned
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    skipped = sorted(Path(record["path"]).name for record in records if record["kind"] == "skipped")
    assert skipped == ["damaged.mp4", "planted.mp4"]
    assert any(record["kind"] == "train" for record in records)  # the good videos trained


def test_probe_names_a_damaged_embedding_file(folder, tmp_path, capsys):
    out = tmp_path / "train.npz"
    main(
        [
            "embed",
            str(folder),
            "--checkpoint",
            str(TINY / "mae_checkpoint.pth"),
            *TINY_SET,
            "-o",
            str(out),
            "--num-workers",
            "0",
        ]
    )
    damaged = tmp_path / "test.npz"
    data = out.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["probe", "--train", str(out), "--test", str(damaged)]) == 1
    err = capsys.readouterr().err
    assert f"{damaged} is not an embedding file written by hvm1 embed, or is damaged" in err, err
