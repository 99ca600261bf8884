"""Helpers for the training tests: small copies of the real test videos, tiny-model configs, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av

from reference_data import MAE_CHECKPOINT, TINY_HEADS

SRC = Path(__file__).resolve().parents[2] / "src"


def tiny_pretrain_config(out_dir: Path, **changes):
    """A PretrainConfig for the tiny reference MAE: 2 videos a step, one clip each, no workers, no TensorBoard."""
    from hvm1.train import PretrainConfig

    values = dict(
        out_dir=str(out_dir),
        model=str(MAE_CHECKPOINT),
        overrides=TINY_HEADS,
        batch_size=2,
        repeat_aug=1,
        num_workers=0,
        save_every=1000,
        tensorboard=False,
    )
    return PretrainConfig(**(values | changes))


def shrink_video(source: Path, target: Path, seconds: float = 3.0, width: int = 96, height: int = 72) -> Path:
    """The first `seconds` of a real video, re-encoded small (MPEG-4 Part 2) so that tests decode it fast."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 30).limit_denominator(1000)
        with av.open(str(target), "w") as output:
            out = output.add_stream("mpeg4", rate=rate)
            out.width, out.height, out.pix_fmt = width, height, "yuv420p"
            for index, frame in enumerate(container.decode(stream)):
                if frame.time is not None and frame.time > seconds:
                    break
                small = frame.reformat(width=width, height=height, format="yuv420p")
                small.pts, small.time_base = index, 1 / rate
                for packet in out.encode(small):
                    output.mux(packet)
            for packet in out.encode():
                output.mux(packet)
    return target


def run_cli(
    args: list[str], *, torchrun: int | None = None, timeout: float = 300, returncode: int = 0
) -> subprocess.CompletedProcess:
    """Run `hvm1 ARGS` in a subprocess (under torchrun with that many processes), one thread per process,
    and check its exit status (1: some input could not be read)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC))
    launcher = [sys.executable]
    if torchrun:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}"]
    result = subprocess.run(
        [*launcher, "-m", "hvm1.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == returncode, (
        f"hvm1 {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def train_losses(run_dir: Path) -> list[float]:
    """The per-step training losses of a run folder (a repeated step's later record wins)."""
    by_step = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "train":
            by_step[record["step"]] = record["loss"]
    return [by_step[step] for step in sorted(by_step)]
