"""`hvm1 evaluate` and `evaluate`: deterministic multi-view numbers, class-count checks, image mode, files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from eval_files import class_folders
from hvm1.cli import main
from hvm1.eval import classification_metrics, evaluate, parse_views
from hvm1.zoo import preprocessing_for
from reference_data import TINY, TINY_SET, images


@pytest.fixture
def seven(tmp_path, clips):
    """Seven class folders, as the tiny ViT's head has: clips of the real videos, a class per video part."""
    return class_folders(
        tmp_path / "seven",
        {
            "c0": clips["vtest"][0:2],
            "c1": clips["vtest"][2:4],
            "c2": clips["box"][0:2],
            "c3": clips["box"][2:4],
            "c4": clips["cup"][:1],
            "c5": clips["cup"][1:],
            "c6": clips["tree"],
        },
    )


@pytest.mark.slow
def test_same_numbers_twice_and_views_averaged(classifier, seven):
    first = evaluate(classifier, seven, views=(2, 3), batch_size=3)
    second = evaluate(classifier, seven, views=(2, 3), batch_size=2, num_workers=2)
    assert first.metrics.count == 11 and first.skipped == []
    assert first.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 6]
    np.testing.assert_allclose(first.logits, second.logits, rtol=0, atol=1e-5)
    assert first.metrics == pytest.approx(second.metrics)
    single = evaluate(classifier, seven, views=(1, 1))
    assert not np.allclose(single.logits, first.logits)  # more views: other logits


@pytest.mark.slow
def test_cli_writes_predictions_and_summary(seven, tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.chdir(tmp_path)
    temp = tmp_path / "tmp"  # the default output: a new folder in the temp folder, never the current one
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    argv = [
        "evaluate",
        str(seven),
        "--checkpoint",
        str(TINY / "vit_checkpoint.pth"),
        *TINY_SET,
        "--views",
        "2x3",
        "--num-workers",
        "0",
    ]
    assert main(argv) == 0 and main(argv) == 0
    printed = re.findall(
        r"top-1 ([\d.]+)%  top-5 ([\d.]+)%  mean per-class ([\d.]+)%  loss ([\d.]+)  \((\d+) examples\)",
        capsys.readouterr().out,
    )
    first, second = sorted(temp.iterdir())
    assert first.name.startswith("hvm1-evaluate-") and second.name.startswith("hvm1-evaluate-")
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (first, second)]
    assert summaries[0] == summaries[1]
    summary = summaries[0]
    shown = (
        f"{summary['top1']:.2f}",
        f"{summary['top5']:.2f}",
        f"{summary['mean_class_accuracy']:.2f}",
        f"{summary['loss']:.4f}",
        str(summary["count"]),
    )
    assert printed == [shown, shown]  # the console says what the summary holds
    assert summaries[0]["views"] == "2x3" and summaries[0]["count"] == 11 and summaries[0]["mode"] == "video"
    assert (first / "predictions.csv").read_text() == (second / "predictions.csv").read_text()
    assert (first / "predictions.csv").read_text().count("\n") == 12
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seven", "tmp"]  # the data, the temp folder


def test_class_count_mismatch_is_an_error_before_any_compute(classifier, tmp_path, clips, monkeypatch):
    data = class_folders(tmp_path / "five", {f"c{i}": [clips["box"][i]] for i in range(5)})
    monkeypatch.setattr(classifier, "forward", lambda video: pytest.fail("the model ran"))
    with pytest.raises(ValueError, match="head has 7 classes but .* has 5 class folders"):
        evaluate(classifier, data)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,label\n{clips['box'][0]},9\n")
    with pytest.raises(ValueError, match=r"7 classes \(labels 0-6\) .* labels 9-9"):
        evaluate(classifier, manifest)


def test_no_head_is_an_error(encoder, seven):
    with pytest.raises(ValueError, match="no classification head"):
        evaluate(encoder, seven)


@pytest.mark.slow
def test_csv_manifest_equals_class_folders(classifier, seven, tmp_path):
    from hvm1.eval import labelled_files

    listing = labelled_files(seven)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("".join(f"{path},{label}\n" for path, label in zip(listing.files, listing.labels)))
    by_folder = evaluate(classifier, seven, views=(1, 3))
    by_manifest = evaluate(classifier, manifest, views=(1, 3))
    np.testing.assert_array_equal(by_folder.logits, by_manifest.logits)


def test_image_mode(classifier, tmp_path):
    photographs = images()
    data = class_folders(tmp_path / "images", {f"c{i}": [photographs[i % len(photographs)]] for i in range(7)})
    result = evaluate(classifier, data, image_mode=True)
    assert result.metrics.count == 7
    # The model's own statistics (here the video default), never ImageNet's forced over them.
    assert result.settings["mode"] == "image" and result.settings["mean"] == [0.45, 0.45, 0.45]
    imagenet = evaluate(classifier, data, preprocessing=preprocessing_for(classifier).for_images())
    assert imagenet.settings["mode"] == "image" and imagenet.settings["mean"] == [0.485, 0.456, 0.406]
    assert not np.allclose(imagenet.logits, result.logits)
    with pytest.raises(ValueError, match="1x1"):
        evaluate(classifier, data, image_mode=True, views=(2, 3))


def test_metrics():
    logits = torch.tensor([[3.0, 2, 1, 0, 0, 0], [0, 3, 2, 1, 0, 0], [0, 1, 3, 2, 0, 0], [5, 4, 3, 2, 1, 0]])
    metrics = classification_metrics(logits, torch.tensor([0, 2, 2, 5]))
    assert metrics.top1 == 50 and metrics.top5 == 75
    assert metrics.mean_class_accuracy == pytest.approx(100 * (1 + 0.5 + 0) / 3)
    assert metrics.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2, 2, 5])).item())


def test_parse_views():
    assert parse_views("2x3") == (2, 3) and parse_views("5X1") == (5, 1)
    for text in ("2", "2x2", "0x3", "ax3"):
        with pytest.raises(ValueError, match="CLIPSxCROPS"):
            parse_views(text)


def test_cli_class_count_error_names_both_counts(tmp_path, clips, capsys):
    data = class_folders(tmp_path / "three", {f"c{i}": [clips["box"][i]] for i in range(3)})
    argv = [
        "evaluate",
        str(data),
        "--checkpoint",
        str(TINY / "vit_checkpoint.pth"),
        *TINY_SET,
        "--out-dir",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "hvm1 evaluate: error: the model's head has 7 classes but" in error and "has 3 class folders" in error
    assert not (tmp_path / "out").exists()


def test_per_class_accuracy_and_most_confused_pairs_by_name(tmp_path):
    from hvm1.eval import Predictions

    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = [0, 1, 1, 0, 1, 1, 2]
    logits = np.eye(3)[predicted]
    predictions = Predictions.score([f"f{i}.mp4" for i in range(7)], labels, logits, classes=["pour", "stir", "cut"])
    assert [(row.name, row.count, row.top1) for row in predictions.per_class()] == [
        ("pour", 2, 50.0),
        ("stir", 2, 50.0),
        ("cut", 3, pytest.approx(100 / 3)),
    ]
    pairs = [(pair.true_name, pair.predicted_name, pair.count) for pair in predictions.confused_pairs()]
    assert pairs == [("cut", "stir", 2), ("pour", "stir", 1), ("stir", "pour", 1)]
    _, per_class, summary = predictions.write(tmp_path)
    assert per_class.read_text().splitlines() == [
        "class,name,examples,top1",
        "0,pour,2,50.00",
        "1,stir,2,50.00",
        "2,cut,3,33.33",
    ]
    assert json.loads(summary.read_text())["most_confused"][0] == {
        "true": 2,
        "true_name": "cut",
        "predicted": 1,
        "predicted_name": "stir",
        "count": 2,
    }


@pytest.mark.slow
def test_the_model_names_the_classes_and_the_console_names_the_confusions(classifier, seven, tmp_path, capsys):
    import copy

    from hvm1.checkpoint import save_safetensors

    named = copy.deepcopy(classifier)
    named.class_names = ("pour", "stir", "cut", "peel", "wash", "fold", "open")
    file = save_safetensors(named, tmp_path / "named.safetensors")
    assert (
        main(
            [
                "evaluate",
                str(seven),
                "--checkpoint",
                str(file),
                "--views",
                "1x1",
                "--num-workers",
                "0",
                "--out-dir",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for pair in summary["most_confused"][:5]:
        assert (
            f"  {pair['true_name']} ({pair['true']}) -> {pair['predicted_name']} ({pair['predicted']}): "
            f"{pair['count']}" in out
        )
        assert pair["true_name"] == named.class_names[pair["true"]]
    rows = (tmp_path / "out" / "per_class.csv").read_text().splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == list(named.class_names)
    predictions = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert predictions[1].split(",")[2] == "pour"  # label_name of the first file, in class folder c0
