"""A run killed with SIGKILL mid-epoch and resumed with --resume auto gives the losses of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hvm1.cli import main
from hvm1.train import pretrain
from train_helpers import MAE_CHECKPOINT, SRC, TINY_SET, run_cli, tiny_pretrain_config, train_losses


def pretrain_args(data, out_dir) -> list[str]:
    return ["pretrain", str(data), "--checkpoint", str(MAE_CHECKPOINT), *TINY_SET, "--out-dir", str(out_dir),
            "--batch-size", "1", "--repeat-aug", "2", "--epochs", "2", "--save-every", "2", "--num-workers", "1",
            "--seed", "7", "--no-tensorboard"]


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
    process = subprocess.Popen([sys.executable, "-m", "hvm1.cli", *pretrain_args(data, killed)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    with pytest.raises(ValueError, match="not a whole number of this run's micro-batches of 4 files"):
        pretrain(small_videos, config(tmp_path / "split", batch_size=4, resume="auto"))
    rest = pretrain(small_videos, config(tmp_path / "split", batch_size=1, accum_iter=2, resume="auto")).losses
    assert len(whole) == 4 and first + rest == pytest.approx(whole, rel=1e-5)
