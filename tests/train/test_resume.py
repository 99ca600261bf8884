"""A run killed with SIGKILL mid-epoch and resumed with --resume auto gives the losses of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hvm1.cli import main
from hvm1.train import pretrain
from hvm1.train.checkpointing import load_training_checkpoint
from reference_data import MAE_CHECKPOINT, TINY_SET
from train_helpers import SRC, run_cli, tiny_pretrain_config, train_losses


def pretrain_args(data, out_dir) -> list[str]:
    return [
        "pretrain",
        str(data),
        "--checkpoint",
        str(MAE_CHECKPOINT),
        *TINY_SET,
        "--out-dir",
        str(out_dir),
        "--batch-size",
        "1",
        "--repeat-aug",
        "2",
        "--epochs",
        "2",
        "--save-every",
        "2",
        "--num-workers",
        "1",
        "--seed",
        "7",
        "--no-tensorboard",
    ]


def wait_for_step(process: subprocess.Popen, metrics, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            complete = [json.loads(line) for line in lines if line.endswith("}")]
            if any(record["kind"] == "train" and record["step"] >= step for record in complete):
                return
        time.sleep(0.005)
    raise AssertionError(f"the run never reached step {step} (exit status {process.poll()})")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(small_videos, tmp_path):
    data = tmp_path / "data"  # 12 files: one epoch is 12 steps, so the kill lands inside the first epoch
    data.mkdir()
    for copy in range(3):
        for video in small_videos:
            (data / f"{copy}-{video.name}").symlink_to(video)
    assert main(pretrain_args(data, tmp_path / "whole")) == 0
    uninterrupted = train_losses(tmp_path / "whole")
    assert len(uninterrupted) == 24

    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC))
    process = subprocess.Popen(
        [sys.executable, "-m", "hvm1.cli", *pretrain_args(data, killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_step(process, killed / "metrics.jsonl", 5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    saved = torch.load(killed / "checkpoint-last.pth", weights_only=False)
    assert saved["sampler"]["epoch"] == 0 and 0 < saved["sampler"]["batches"] < 12, saved["sampler"]

    run_cli([*pretrain_args(data, killed), "--resume", "auto"])
    resumed = train_losses(killed)
    assert resumed == uninterrupted


def test_resume_with_another_batch_split_reads_the_same_files(small_videos, tmp_path):
    def config(out_dir, **changes):
        # fp32: another split of the batch sums the same float32 gradients, not the same bf16-rounded ones.
        return tiny_pretrain_config(out_dir, **({"epochs": 2, "precision": "fp32"} | changes))

    whole = pretrain(small_videos, config(tmp_path / "whole")).losses
    first = pretrain(small_videos, config(tmp_path / "split", max_steps=1)).losses  # 2 files into epoch 0
    with pytest.raises(ValueError, match="this one asks for --batch-size 4 x --accum-iter 1 x 1 rank = 4 files a step"):
        pretrain(small_videos, config(tmp_path / "split", batch_size=4, resume="auto"))
    rest = pretrain(small_videos, config(tmp_path / "split", batch_size=1, accum_iter=2, resume="auto")).losses
    assert len(whole) == 4 and first + rest == pytest.approx(whole, rel=1e-5)


def fp32_config(out_dir, **changes):
    # fp32, so that a resumed run's losses are the uninterrupted run's to the last bit of float32 math.
    return tiny_pretrain_config(out_dir, **({"epochs": 2, "precision": "fp32", "save_every": 1} | changes))


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.slow
def test_damaged_newest_checkpoint_resumes_from_the_previous_one(small_videos, tmp_path, caplog):
    whole = pretrain(small_videos, fp32_config(tmp_path / "whole")).losses  # 4 steps
    run = tmp_path / "run"
    pretrain(small_videos, fp32_config(run, max_steps=3))
    last, previous = run / "checkpoint-last.pth", run / "checkpoint-previous.pth"
    assert load_training_checkpoint(last)["step"] == 3 and load_training_checkpoint(previous)["step"] == 2
    truncate(last)
    rest = pretrain(small_videos, fp32_config(run, resume="auto")).losses
    assert len(whole) == 4 and rest == pytest.approx(whole[2:], rel=1e-6)
    named = [record.getMessage() for record in caplog.records if "cannot resume from" in record.getMessage()]
    assert len(named) == 1 and str(last) in named[0] and "truncated or corrupt" in named[0], named
    assert (run / "checkpoint-last.pth.damaged").is_file()  # set aside, not kept as the previous checkpoint
    assert load_training_checkpoint(last)["step"] == 4 and load_training_checkpoint(previous)["step"] == 3


@pytest.mark.slow
def test_no_good_checkpoint_is_a_clear_error(small_videos, tmp_path, capsys):
    run = tmp_path / "run"
    pretrain(small_videos, fp32_config(run, max_steps=2))
    for name in ("checkpoint-last.pth", "checkpoint-previous.pth"):
        truncate(run / name)
    args = [
        "pretrain",
        *map(str, small_videos),
        "--checkpoint",
        str(MAE_CHECKPOINT),
        *TINY_SET,
        "--out-dir",
        str(run),
        "--batch-size",
        "2",
        "--repeat-aug",
        "1",
        "--num-workers",
        "0",
        "--no-tensorboard",
        "--resume",
        "auto",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"no checkpoint in {run} can be resumed from" in err, err
    assert str(run / "checkpoint-last.pth") in err and str(run / "checkpoint-previous.pth") in err, err


@pytest.mark.slow
def test_resume_memory_maps_the_checkpoint(small_videos, tmp_path):
    run = tmp_path / "run"
    pretrain(small_videos, fp32_config(run, max_steps=1))
    payload = load_training_checkpoint(run / "checkpoint-last.pth")
    tensors = list(payload["model"].values())
    tensors += [
        value
        for state in payload["optimizer"]["state"].values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.dim()
    ]
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("no /proc/self/maps to see the memory map in")
    ranges = [
        tuple(int(bound, 16) for bound in line.split()[0].split("-"))
        for line in maps.read_text().splitlines()
        if line.endswith(str(run / "checkpoint-last.pth"))
    ]
    # Every tensor's bytes lie in a mapping of the file: nothing was read into memory of its own.
    assert tensors and all(any(low <= tensor.data_ptr() < high for low, high in ranges) for tensor in tensors), ranges
