"""`hvm1 probe` and `probe`: linear and kNN probes on embedding files, shots, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from eval_files import class_folders
from hvm1.cli import main
from hvm1.eval import Embeddings, embed_videos, load_embeddings, probe


@pytest.fixture(scope="module")
def street_and_box(tmp_path_factory, clips, encoder):
    """Train and test embedding files: clips of the street video (class 0) and the box video (class 1)."""
    folder = tmp_path_factory.mktemp("probe")
    train = class_folders(folder / "train", {"box": clips["box"][:3], "street": clips["vtest"][:4]})
    test = class_folders(folder / "test", {"box": clips["box"][3:], "street": clips["vtest"][4:]})
    embed_videos(encoder, train, folder / "train.npz", pool="mean")
    embed_videos(encoder, test, folder / "test.npz", pool="mean")
    return folder / "train.npz", folder / "test.npz"


@pytest.mark.parametrize("method", ["linear", "knn"])
def test_probe_separates_two_videos(street_and_box, method):
    train, test = map(load_embeddings, street_and_box)
    result = probe(train, test, method=method, k=3)
    assert result.metrics.count == 4 and result.metrics.top1 == 100
    assert result.labels.tolist() == [0, 0, 1, 1] and result.classes == ["box", "street"]


def test_shots_are_seeded_and_per_class(street_and_box):
    train, test = map(load_embeddings, street_and_box)
    result = probe(train, test, method="knn", k=1, shots=2, seed=1)
    assert result.settings["train_videos"] == 4 and result.settings["shots"] == 2
    assert probe(train, test, method="knn", k=1, shots=2, seed=1).logits.tolist() == result.logits.tolist()
    with pytest.raises(ValueError, match="class 0 has 3 examples, fewer than --shots 4"):
        probe(train, test, shots=4)


def test_cli(street_and_box, tmp_path, capsys):
    train, test = map(str, street_and_box)
    assert (
        main(
            [
                "probe",
                "--train",
                train,
                "--test",
                test,
                "--method",
                "knn",
                "--k",
                "3",
                "--shots",
                "2",
                "--out-dir",
                str(tmp_path / "probe"),
            ]
        )
        == 0
    )
    assert "top-1 100.00%" in capsys.readouterr().out
    assert (tmp_path / "probe" / "summary.json").is_file()


def test_errors(street_and_box):
    train = load_embeddings(street_and_box[0])
    unlabelled = Embeddings(**{**vars(train), "labels": np.full(len(train), -1)})
    with pytest.raises(ValueError, match="7 of the 7 train videos have no label"):
        probe(unlabelled, train)
    tokens = Embeddings(**{**vars(train), "embeddings": np.zeros((len(train), 65, 64), np.float32)})
    with pytest.raises(ValueError, match="--pool cls or mean"):
        probe(train, tokens)
    other = Embeddings(**{**vars(train), "settings": {**train.settings, "pool": "cls"}})
    with pytest.raises(ValueError, match="differ in pool"):
        probe(train, other)


def test_two_classes_report_no_top5_and_a_k_beyond_the_data_is_said(street_and_box, capsys):
    train, test = map(str, street_and_box)
    assert main(["probe", "--train", train, "--test", test, "--method", "knn", "--shots", "2"]) == 0
    captured = capsys.readouterr()
    assert "top-5 n/a (2 classes)" in captured.out and "top-5 100" not in captured.out, captured.out
    assert "note: --k 20 is more than the 4 training videos: every one of them votes (k = 4)" in captured.err
    assert main(["probe", "--train", train, "--test", test, "--method", "knn", "--k", "3"]) == 0
    assert "--k" not in capsys.readouterr().err  # 7 training videos: no note
