"""What a resumed or bounded run tells its user: refused changes, nothing left to do, which limit ended it, each
step once in metrics.jsonl, and progress lines where stderr is no terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hvm1.cli import main
from hvm1.train import pretrain
from reference_data import MAE_CHECKPOINT, TINY_SET
from train_helpers import tiny_pretrain_config, train_losses


def cli_args(videos, out_dir: Path, *more: str) -> list[str]:
    # 4 videos, 2 a step: 2 steps an epoch.
    return [
        "pretrain",
        *map(str, videos),
        "--checkpoint",
        str(MAE_CHECKPOINT),
        *TINY_SET,
        "--out-dir",
        str(out_dir),
        "--batch-size",
        "2",
        "--repeat-aug",
        "1",
        "--num-workers",
        "0",
        "--no-tensorboard",
        "--precision",
        "fp32",
        *more,
    ]


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in sorted(folder.iterdir())}


def test_resume_with_other_files_a_step_is_refused_naming_the_flags(small_videos, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(small_videos, run, "--max-steps", "1")) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert main(cli_args(small_videos, run, "--resume", "auto", "--accum-iter", "2")) == 1
    err = capsys.readouterr().err
    assert (
        f"{run / 'checkpoint-last.pth'} was written by a run of --batch-size 2 x --accum-iter 1 x 1 rank = "
        f"2 files a step; this one asks for --batch-size 2 x --accum-iter 2 x 1 rank = 4 files a step"
    ) in err, err
    assert "Resume with 2 files a step (--batch-size 2 --accum-iter 1)" in err, err
    assert snapshot(run) == before  # config.json, metrics and checkpoints untouched


def test_a_finished_run_resumed_says_so_and_changes_no_file(small_videos, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(small_videos, run)) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert main(cli_args(small_videos, run, "--resume", "auto")) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"nothing left to do: {run / 'checkpoint-last.pth'} is at step 2 of 2 (the end of --epochs 1 "
        f"(2 steps an epoch)); raise --epochs or --max-steps to train further"
    ), out
    assert snapshot(run) == before


def test_the_run_says_which_limit_ended_it(small_videos, tmp_path, capsys):
    assert main(cli_args(small_videos, tmp_path / "a", "--max-steps", "3")) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "2 steps trained (2 of 2 in all), stopped by the end of --epochs 1 (2 steps an epoch) "
        "came before --max-steps 3;"
    ), out
    assert main(cli_args(small_videos, tmp_path / "b", "--max-steps", "1")) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "1 step trained (1 of 1 in all), stopped by --max-steps 1 came before the end of --epochs 1 (2 steps an epoch);"
    ), out


def test_progress_lines_where_stderr_is_no_terminal(small_videos, tmp_path, capsys):
    assert main(cli_args(small_videos, tmp_path / "run", "--epochs", "2", "--print-every", "3")) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/4", "3/4", "4/4"], err
    assert all(" clips/s " in line and line.endswith(" left") and " lr " in line for line in lines), lines
    assert "epoch 0: mean training loss" in err and "(2 steps)" in err, err


def test_metrics_hold_each_step_once_after_a_resume(small_videos, tmp_path):
    config = dict(epochs=2, precision="fp32", save_every=1)
    whole = pretrain(small_videos, tiny_pretrain_config(tmp_path / "whole", **config)).losses
    run = tmp_path / "run"
    pretrain(small_videos, tiny_pretrain_config(run, max_steps=3, **config))
    # As a run killed after writing step 3's record and before saving it: its newest checkpoint is step 2.
    os.replace(run / "checkpoint-previous.pth", run / "checkpoint-last.pth")
    pretrain(small_videos, tiny_pretrain_config(run, resume="auto", **config))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in records if record["kind"] == "train"]
    epochs = [record["epoch"] for record in records if record["kind"] == "epoch"]
    assert steps == [1, 2, 3, 4] and epochs == [0, 1], records
    assert train_losses(run) == pytest.approx(whole, rel=1e-6)
