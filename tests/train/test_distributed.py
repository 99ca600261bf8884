"""Two processes under torchrun (gloo on CPU), with DDP and with FSDP2, train as one process with the same
global batch."""

from __future__ import annotations

import pytest
import torch

import hvm1
from hvm1.cli import main
from hvm1.train import read_metrics
from reference_data import MAE_CHECKPOINT, TINY_SET, VIT_CHECKPOINT
from train_helpers import run_cli, train_losses

pytestmark = pytest.mark.slow  # every test here is an end-to-end run


def pretrain_args(videos, out_dir, batch_size: int) -> list[str]:
    return [
        "pretrain",
        *map(str, videos),
        "--checkpoint",
        str(MAE_CHECKPOINT),
        *TINY_SET,
        "--out-dir",
        str(out_dir),
        "--batch-size",
        str(batch_size),
        "--repeat-aug",
        "2",
        "--epochs",
        "2",
        "--num-workers",
        "0",
        "--seed",
        "3",
        "--no-tensorboard",
        "--precision",
        "fp32",
    ]  # exact sums: not bf16 rounding


@pytest.fixture(scope="module")
def one_process(small_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("one_process")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process runs
    try:
        assert main(pretrain_args(small_videos, out, batch_size=2)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_processes_match_one_with_the_same_global_batch(sharding, one_process, small_videos, tmp_path):
    out = tmp_path / sharding
    run_cli([*pretrain_args(small_videos, out, batch_size=1), *(["--fsdp"] if sharding == "fsdp" else [])], torchrun=2)
    expected, losses = train_losses(one_process), train_losses(out)
    assert len(expected) == 4  # 4 videos, 2 per step (one per rank), 2 epochs
    assert losses == pytest.approx(expected, rel=1e-5)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((one_process / "metrics.jsonl").read_text().splitlines())  # only rank 0 writes
    reference = hvm1.load_model(one_process / "checkpoint-last.pth").state_dict()
    trained = hvm1.load_model(out / "checkpoint-last.pth").state_dict()
    for key, value in reference.items():
        torch.testing.assert_close(trained[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_fsdp_finetuning_validates_uneven_shards_with_a_bad_file(two_classes, tmp_path):
    data = tmp_path / "data"  # 5 files: the ranks validate 3 and 2 of them, one unreadable
    for label in ("objects", "people"):
        (data / label).mkdir(parents=True)
        for video in (two_classes / label).iterdir():
            (data / label / video.name).symlink_to(video.resolve())
    (data / "people" / "broken.mp4").write_text("not a video")
    out = tmp_path / "run"
    result = run_cli(
        [
            "finetune",
            str(data),
            "--val",
            str(data),
            "--checkpoint",
            str(VIT_CHECKPOINT),
            "--set",
            "num_heads=4",
            "--out-dir",
            str(out),
            "--batch-size",
            "1",
            "--accum-iter",
            "1",
            "--epochs",
            "1",
            "--num-workers",
            "0",
            "--eval-batch-size",
            "1",
            "--fsdp",
        ],
        torchrun=2,
        returncode=1,
    )
    assert f"{data / 'people' / 'broken.mp4'}: not a video file" in result.stderr
    (evaluation,) = read_metrics(out, kind="eval")
    assert evaluation["clips"] == 4 and evaluation["skipped"] == 1
    assert hvm1.load_model(out / "checkpoint-best.pth").config.num_classes == 2
