"""Metrics records: JSONL flushed per record, the later record of a repeated step wins, TensorBoard mirrored."""

from __future__ import annotations

import sys
import types

from hvm1.train.metrics import MetricsWriter, read_metrics


def test_jsonl_records_and_resumed_steps(tmp_path):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    for step, loss in ((1, 3.0), (2, 2.0), (2, 2.5), (3, 1.0)):  # step 2 ran again after a resume
        writer.write({"kind": "train", "step": step, "loss": loss})
        assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) >= step  # flushed at once
    writer.write({"kind": "eval", "step": 3, "top1": 50.0})
    writer.close()
    assert [r["loss"] for r in read_metrics(tmp_path)] == [3.0, 2.5, 1.0]
    assert read_metrics(tmp_path, kind="eval") == [{"kind": "eval", "step": 3, "top1": 50.0}]


def test_disabled_writer_writes_nothing(tmp_path):
    writer = MetricsWriter(tmp_path, enabled=False)
    writer.write({"kind": "train", "step": 1, "loss": 1.0})
    writer.close()
    assert not (tmp_path / "metrics.jsonl").exists()


def test_numbers_go_to_tensorboard_when_it_is_installed(tmp_path, monkeypatch):
    scalars = []

    class SummaryWriter:
        def __init__(self, folder, purge_step=None):
            self.folder = folder

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def close(self):
            scalars.append("closed")

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    writer = MetricsWriter(tmp_path)
    writer.write({"kind": "train", "step": 4, "epoch": 0, "loss": 0.5, "lr": 1e-4, "note": "text"})
    writer.write({"kind": "eval", "step": 4, "top1": 75.0, "loss": float("nan")})
    writer.close()
    assert scalars == [("train/loss", 0.5, 4), ("train/lr", 1e-4, 4), ("eval/top1", 75.0, 4), "closed"]
