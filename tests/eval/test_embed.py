"""`hvm1 embed` and `embed_videos`: rows, labels, pooling, determinism, resuming, bad files, torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eval_files import class_folders
from hvm1.cli import main
from hvm1.eval import embed_videos, embedding_preset, load_embeddings
from hvm1.progress import Progress
from hvm1.zoo import preprocessing_for
from recorded_progress import RecordedProgress
from reference_data import TINY, TINY_SET


@pytest.fixture
def labelled(tmp_path, clips) -> Path:
    """A folder of two class subfolders: clips of the street video (class 0) and of the box video (class 1)."""
    return class_folders(tmp_path / "data", {"street": clips["vtest"][:2], "box": clips["box"][:2]})


def assert_same_rows(a, b, atol: float = 0.0) -> None:
    assert a.paths == b.paths
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.clip_times, b.clip_times)
    np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=0, atol=atol)


def test_rows_labels_and_clip_times(encoder, labelled, tmp_path):
    result = embed_videos(encoder, labelled, tmp_path / "out.npz", num_clips=2, keep_clips=True, batch_size=3)
    rows = load_embeddings(tmp_path / "out.npz")
    assert result.embedded == 4 and result.skipped == [] and len(rows) == 4
    assert rows.classes == ["box", "street"] and rows.labels.tolist() == [0, 0, 1, 1]
    assert rows.embeddings.shape == (4, 64) and rows.embeddings.dtype == np.float32
    assert rows.clip_embeddings.shape == (4, 2, 64)
    np.testing.assert_allclose(rows.embeddings, rows.clip_embeddings.mean(axis=1), atol=1e-6)
    assert rows.clip_times.shape == (4, 2, 2)
    assert (rows.clip_times[:, 0, 0] < rows.clip_times[:, 1, 0]).all()  # the second clip starts later
    with np.load(tmp_path / "out.npz") as raw:
        assert set(raw.files) >= {"embeddings", "paths", "labels", "clip_times", "clip_embeddings"}
    assert not (tmp_path / "out.npz.parts").exists()


def test_cls_embedding_is_the_model_output_on_the_center_clip(encoder, clips):
    video = clips["cup"][0]
    rows = embed_videos(encoder, [video]).embeddings
    clip, _ = embedding_preset(preprocessing_for(encoder)).load(video, "center")
    with torch.no_grad():
        expected = encoder(clip[None])
    np.testing.assert_allclose(rows.embeddings, expected.numpy(), atol=1e-6)
    assert rows.labels.tolist() == [-1] and rows.classes is None


@pytest.mark.parametrize("pool, shape", [("mean", (64,)), ("tokens", (1 + 4 * 4 * 4, 64))])
def test_pools(encoder, clips, pool, shape):
    rows = embed_videos(encoder, clips["cup"], pool=pool).embeddings
    assert rows.embeddings.shape == (2, *shape)
    assert rows.embeddings.dtype == (np.float16 if pool == "tokens" else np.float32)  # tokens in 16 bits


def test_same_embeddings_for_batch_sizes_and_workers(encoder, labelled):
    one = embed_videos(encoder, labelled, num_clips=2, batch_size=1).embeddings
    four = embed_videos(encoder, labelled, num_clips=2, batch_size=4).embeddings
    workers = embed_videos(encoder, labelled, num_clips=2, batch_size=4, num_workers=2).embeddings
    assert_same_rows(one, four, atol=1e-5)
    assert_same_rows(four, workers)


def test_progress_is_one_stage_of_the_clips(encoder, labelled):
    progress = RecordedProgress()
    embed_videos(encoder, labelled, num_clips=2, batch_size=3, progress=progress)
    # 4 videos of 2 clips each, 3 clips a batch
    assert progress.stages() == [
        ("start", 8, "clip", "embed"),
        ("advance", 3, ""),
        ("advance", 6, ""),
        ("advance", 8, ""),
        ("close",),
    ]


def test_interrupted_run_resumes_to_the_same_file(encoder, labelled, tmp_path):
    whole = embed_videos(encoder, labelled, tmp_path / "whole.npz").embeddings

    class Interrupt(Progress):
        def advance(self, done: int, item: str = "") -> None:
            if done == 3:
                raise KeyboardInterrupt

    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        embed_videos(encoder, labelled, out, batch_size=1, chunk_size=2, progress=Interrupt())
    assert not out.exists() and len(list((tmp_path / "out.parquet.parts").iterdir())) == 2  # 2 rows + 1 row
    resumed = embed_videos(encoder, labelled, out, batch_size=1, chunk_size=2)
    assert (resumed.reused, resumed.embedded) == (3, 1)
    assert_same_rows(load_embeddings(out), whole)
    again = embed_videos(encoder, labelled, out)
    assert (again.reused, again.embedded) == (4, 0)


def test_rerun_appends_new_videos_and_refuses_other_settings(encoder, clips, tmp_path):
    out = tmp_path / "out.npz"
    embed_videos(encoder, clips["box"][:2], out)
    result = embed_videos(encoder, clips["box"][:3], out)
    assert (result.reused, result.embedded) == (2, 1)
    assert load_embeddings(out).paths == [str(path) for path in clips["box"][:3]]
    with pytest.raises(ValueError, match="pool='cls' vs 'mean'"):
        embed_videos(encoder, clips["box"][:3], out, pool="mean")


def test_bad_video_is_reported_and_skipped(encoder, clips, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    result = embed_videos(encoder, [clips["cup"][0], broken, clips["cup"][1]], tmp_path / "out.npz", num_clips=2)
    assert [item.path for item in result.skipped] == [str(broken)]
    assert result.embeddings.paths == [str(clips["cup"][0]), str(clips["cup"][1])]


def test_cli_writes_parquet(labelled, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    out = tmp_path / "out.parquet"
    argv = [
        "embed",
        str(labelled),
        "--checkpoint",
        str(TINY / "mae_checkpoint.pth"),
        *TINY_SET,
        "-o",
        str(out),
        "--num-clips",
        "2",
        "--num-workers",
        "0",
    ]
    assert main(argv) == 0
    assert "4 videos (4 embedded now, 0 already there)" in capsys.readouterr().out
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column_names == ["path", "label", "clip_times", "embedding"]
    assert table.column("label").to_pylist() == [0, 0, 1, 1]
    assert main(argv) == 0
    assert "(0 embedded now, 4 already there)" in capsys.readouterr().out


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(labelled, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip(f"no torchrun beside {sys.executable}")
    args = [
        "embed",
        str(labelled),
        "--checkpoint",
        str(TINY / "mae_checkpoint.pth"),
        *TINY_SET,
        "--num-clips",
        "2",
        "--num-workers",
        "0",
        "--device",
        "cpu",
    ]
    assert main([*args, "-o", str(tmp_path / "one.npz")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "hvm1.cli",
            *args,
            "-o",
            str(tmp_path / "two.npz"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert_same_rows(load_embeddings(tmp_path / "two.npz"), load_embeddings(tmp_path / "one.npz"), atol=1e-5)


def test_csv_manifest_labels_and_dtype_setting(encoder, clips, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,label\n{clips['cup'][0]},3\n{clips['box'][0]},1\n")
    rows = embed_videos(encoder, manifest, model_name="tiny").embeddings
    assert rows.labels.tolist() == [3, 1] and rows.classes is None
    assert rows.settings["model"] == "tiny" and rows.settings["dtype"] == "float32"


def test_precision_is_recorded_and_bf16_stays_close_to_fp32(encoder, clips):
    exact = embed_videos(encoder, clips["cup"][:1], precision="fp32").embeddings
    low = embed_videos(encoder, clips["cup"][:1], precision="bf16").embeddings
    assert exact.settings["dtype"] == "float32" and low.settings["dtype"] == "bf16 autocast"
    a, b = exact.embeddings[0].astype(np.float64), low.embeddings[0].astype(np.float64)
    assert not np.array_equal(a, b)  # bf16 really ran
    assert np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.999


def test_cli_precision_is_said_and_recorded(labelled, tmp_path, capsys):
    from hvm1.cli import build_parser

    base = ["embed", str(labelled), "--checkpoint", str(TINY / "mae_checkpoint.pth"), *TINY_SET, "-o", "x.npz"]
    assert build_parser().parse_args([*base, "--precision", "bf16"]).precision == "bf16"
    out = tmp_path / "out.npz"
    assert main([*base[:-1], str(out), "--precision", "fp32", "--num-workers", "0"]) == 0
    assert "precision fp32 (asked for on cpu)" in capsys.readouterr().err
    assert load_embeddings(out).settings["dtype"] == "float32"


def test_layer_pools_that_blocks_tokens(encoder, clips):
    last = embed_videos(encoder, clips["cup"], pool="mean").embeddings
    also_last = embed_videos(encoder, clips["cup"], pool="mean", layer=-1).embeddings
    first = embed_videos(encoder, clips["cup"], pool="mean", layer=0).embeddings
    np.testing.assert_allclose(also_last.embeddings, last.embeddings, rtol=1e-5, atol=1e-6)
    assert np.abs(first.embeddings - last.embeddings).max() > 1e-2
    assert first.settings["layer"] == 0 and "layer" not in last.settings
