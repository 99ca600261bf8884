"""Attentive probe: it learns where a feature is, which a linear probe on the mean token cannot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hvm1.cli import main
from hvm1.eval import Embeddings, load_embeddings, probe, save_embeddings
from hvm1.eval.attentive import AttentiveProbe, attentive_probe

LENGTH, WIDTH = 8, 16


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny probes are many small ops: one thread is faster than several fighting over a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def where_the_feature_is(count: int, seed: int, pool: str = "tokens") -> Embeddings:
    """Videos of 1 + 8 tokens (CLS first); the label says whether a fixed feature sits at one of the first four
    positions or the last four. Every token carries its position's code, so the mean over tokens is the same
    for both classes: only attention to the right token tells them apart."""
    generator = torch.Generator().manual_seed(1234)
    positions = torch.randn(LENGTH, WIDTH, generator=generator)  # fixed across sets, like position embeddings
    feature = torch.randn(WIDTH, generator=generator) * 3
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (count,), generator=generator)
    where = labels * 4 + torch.randint(0, 4, (count,), generator=generator)
    tokens = positions.expand(count, -1, -1) + 0.2 * torch.randn(count, LENGTH, WIDTH, generator=generator)
    tokens[torch.arange(count), where] += feature
    tokens = torch.cat([torch.zeros(count, 1, WIDTH), tokens], dim=1).numpy()
    embeddings = tokens if pool == "tokens" else tokens[:, 1:].mean(axis=1)
    return Embeddings(
        paths=[f"v{seed}_{i}.mp4" for i in range(count)],
        labels=labels.numpy(),
        clip_times=np.zeros((count, 1, 2)),
        embeddings=embeddings.astype(np.float32),
        classes=["first half", "second half"],
        settings={"model": "synthetic", "pool": pool},
    )


def test_attentive_probe_finds_the_position_the_mean_hides():
    train, test = where_the_feature_is(256, seed=0), where_the_feature_is(128, seed=1)
    attentive = attentive_probe(
        train, test, lrs=(1e-3, 3e-3), weight_decays=(0.01, 0.1), num_heads=2, epochs=20, seed=0
    )
    linear = probe(where_the_feature_is(256, 0, "mean"), where_the_feature_is(128, 1, "mean"), method="linear")
    assert attentive.metrics.top1 > 90.0
    assert linear.metrics.top1 < 70.0
    grid = attentive.settings["grid"]
    assert [(g["lr"], g["weight_decay"]) for g in grid] == [(1e-3, 0.01), (1e-3, 0.1), (3e-3, 0.01), (3e-3, 0.1)]
    best = max(grid, key=lambda g: g["val_top1"])
    assert attentive.settings["lr"] == best["lr"] or best["val_top1"] == next(
        g["val_top1"]
        for g in grid
        if g["lr"] == attentive.settings["lr"] and g["weight_decay"] == attentive.settings["weight_decay"]
    )
    assert attentive.settings["train_videos"] + attentive.settings["val_videos"] == 256


def test_same_seed_same_probe_and_shots_draw_per_class():
    train, test = where_the_feature_is(64, seed=0), where_the_feature_is(32, seed=1)
    kwargs = dict(lrs=(1e-3,), weight_decays=(0.01,), num_heads=2, epochs=2, shots=10)
    first = attentive_probe(train, test, seed=3, **kwargs)
    again = attentive_probe(train, test, seed=3, **kwargs)
    np.testing.assert_array_equal(first.logits, again.logits)
    assert first.settings["train_videos"] == 16 and first.settings["val_videos"] == 4  # 2 x 10 shots, 20% held out


def test_a_memory_mapped_float16_file_reads_batch_by_batch(tmp_path):
    train, test = where_the_feature_is(64, seed=0), where_the_feature_is(32, seed=1)
    path = tmp_path / "train.npy"
    np.save(path, train.embeddings.astype(np.float16))
    mapped = Embeddings(
        train.paths,
        train.labels,
        train.clip_times,
        np.load(path, mmap_mode="r"),
        classes=train.classes,
        settings=train.settings,
    )
    kwargs = dict(lrs=(1e-3,), weight_decays=(0.01,), num_heads=2, epochs=2)
    in_memory = attentive_probe(
        Embeddings(
            train.paths,
            train.labels,
            train.clip_times,
            train.embeddings.astype(np.float16).astype(np.float32),
            classes=train.classes,
            settings=train.settings,
        ),
        test,
        **kwargs,
    )
    np.testing.assert_allclose(attentive_probe(mapped, test, **kwargs).logits, in_memory.logits, rtol=1e-5, atol=1e-6)


def test_probe_shapes_and_refusals():
    model = AttentiveProbe(WIDTH, 5, depth=3, num_heads=4)
    assert model(torch.randn(2, 7, WIDTH)).shape == (2, 5)
    assert len(model.blocks) == 2
    with pytest.raises(ValueError, match="divisible"):
        AttentiveProbe(WIDTH, 5, num_heads=5)
    vectors = where_the_feature_is(8, 0, "mean")
    with pytest.raises(ValueError, match="--pool tokens"):
        attentive_probe(vectors, vectors)


def test_token_files_keep_float16_and_memory_map(tmp_path):
    rows = where_the_feature_is(16, seed=0)
    rows = Embeddings(**{**vars(rows), "embeddings": rows.embeddings.astype(np.float16)})
    save_embeddings(rows, tmp_path / "tokens.npz")
    mapped, read = load_embeddings(tmp_path / "tokens.npz", mmap=True), load_embeddings(tmp_path / "tokens.npz")
    assert isinstance(mapped.embeddings, np.memmap) and not isinstance(read.embeddings, np.memmap)
    assert mapped.embeddings.dtype == read.embeddings.dtype == np.float16
    np.testing.assert_array_equal(mapped.embeddings, rows.embeddings)
    assert mapped.paths == rows.paths and mapped.labels.tolist() == rows.labels.tolist()


def test_probe_command_trains_the_grid_and_reports_it(tmp_path, capsys):
    save_embeddings(where_the_feature_is(64, seed=0), tmp_path / "train.npz")
    save_embeddings(where_the_feature_is(32, seed=1), tmp_path / "test.npz")
    assert (
        main(
            [
                "probe",
                "--method",
                "attentive",
                "--train",
                str(tmp_path / "train.npz"),
                "--test",
                str(tmp_path / "test.npz"),
                "--lrs",
                "1e-3",
                "3e-3",
                "--weight-decays",
                "0.01",
                "--heads",
                "2",
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--out-dir",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.strip().endswith("<")]) == 1  # the chosen probe
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [row["lr"] for row in summary["grid"]] == [1e-3, 3e-3] and summary["method"] == "attentive"
