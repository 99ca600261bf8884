"""`hvm1 classify` and `classify`: top-k names with probabilities, as `evaluate` reads and averages the views."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from eval_files import class_folders
from hvm1.cli import main
from hvm1.eval import evaluate
from hvm1.eval.classify import ClassifyConfig, classify
from hvm1.labels import LabelsError
from reference_data import TINY_HEADS, TINY_SET, VIDEOS, VIT_CHECKPOINT, fixture, images

NAMES = ["pouring", "stirring", "cutting", "peeling", "washing", "folding", "opening"]


@pytest.fixture
def names_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n")
    return path


def config(paths, tmp_path, **settings) -> ClassifyConfig:
    return ClassifyConfig(
        paths=tuple(paths),
        checkpoint=fixture(VIT_CHECKPOINT),
        overrides=TINY_HEADS,
        out_dir=tmp_path / "out",
        num_workers=0,
        device="cpu",
        precision="fp32",
        **settings,
    )


@pytest.mark.slow
def test_probabilities_are_the_softmax_of_the_views_evaluate_averages(classifier, clips, names_file, tmp_path):
    videos = [clips["box"][0], clips["cup"][0], clips["vtest"][1]]
    report = classify(config(videos, tmp_path, labels=str(names_file), views="2x3", top_k=3))
    # evaluate over a class-folder layout of the same files, same views: its logits give the probabilities.
    folders = class_folders(
        tmp_path / "data", {f"c{i}": [video] for i, video in enumerate(videos)} | {f"c{i}": [] for i in range(3, 7)}
    )
    logits = torch.from_numpy(evaluate(classifier, folders, views=(2, 3)).logits).double()
    expected = logits.softmax(dim=1)
    assert [item.path for item in report.result.files] == [str(video) for video in videos]
    for row, item in enumerate(report.result.files):
        order = expected[row].argsort(descending=True)[:3].tolist()
        assert [ranked.index for ranked in item.top] == order
        assert [ranked.name for ranked in item.top] == [NAMES[index] for index in order]
        np.testing.assert_allclose([ranked.probability for ranked in item.top], expected[row, order].numpy(), atol=1e-5)
    assert report.skipped == []
    rows = list(csv.DictReader(open(tmp_path / "out" / "classes.csv")))
    assert len(rows) == 9 and rows[0]["name"] == report.result.files[0].top[0].name
    saved = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert saved["views"] == "2x3" and saved["files"][2]["top"][0]["name"] == report.result.files[2].top[0].name


@pytest.mark.slow
def test_cli_prints_a_table_writes_csv_and_json_and_names_a_bad_file(clips, names_file, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    out = tmp_path / "out"
    status = main(
        [
            "classify",
            str(clips["box"][0]),
            str(broken),
            str(clips["cup"][1]),
            "--checkpoint",
            str(VIT_CHECKPOINT),
            *TINY_SET,
            "--labels",
            str(names_file),
            "--top-k",
            "2",
            "--views",
            "1x1",
            "--num-workers",
            "0",
            "--out-dir",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert f"{broken}:" in captured.err and "skipped" in captured.err
    saved = json.loads((out / "classes.json").read_text())
    assert [item["path"] for item in saved["files"]] == [str(clips["box"][0]), str(clips["cup"][1])]
    assert saved["skipped"][0]["path"] == str(broken)
    lines = captured.out.splitlines()
    assert lines[0].split() == ["file", "rank", "class", "probability"]
    first = saved["files"][0]["top"]
    assert lines[1].split() == [str(clips["box"][0]), "1", first[0]["name"], f"{100 * first[0]['probability']:.2f}%"]
    assert lines[2].split() == ["2", first[1]["name"], f"{100 * first[1]['probability']:.2f}%"]
    assert f"wrote {out / 'classes.csv'} and {out / 'classes.json'}" in captured.out


def test_a_count_that_is_not_the_heads_is_an_error_before_any_compute(clips, tmp_path, monkeypatch, capsys):
    wrong = tmp_path / "five.txt"
    wrong.write_text("a\nb\nc\nd\ne\n")
    from hvm1.models import VideoViT

    monkeypatch.setattr(VideoViT, "forward", lambda self, video: pytest.fail("the model ran"))
    with pytest.raises(LabelsError, match="five.txt has 5 class names but the model's head has 7 classes"):
        classify(config([clips["box"][0]], tmp_path, labels=str(wrong)))
    assert not (tmp_path / "out").exists()
    assert (
        main(["classify", str(clips["box"][0]), "--checkpoint", str(VIT_CHECKPOINT), *TINY_SET, "--labels", str(wrong)])
        == 1
    )
    assert "has 5 class names but the model's head has 7 classes" in capsys.readouterr().err


def test_a_model_without_names_says_how_to_give_them(clips, tmp_path):
    with pytest.raises(LabelsError, match="records no class names for its 7-class head"):
        classify(config([clips["box"][0]], tmp_path))


@pytest.mark.slow
def test_labels_from_a_folder_of_class_subfolders_and_images(tmp_path):
    photographs = images()[:2]
    classes = tmp_path / "train"
    for name in reversed(NAMES):
        (classes / name).mkdir(parents=True)
    report = classify(config(photographs, tmp_path, labels=str(classes), images=True, top_k=7))
    assert report.result.settings["mode"] == "image" and report.result.settings["views"] == "1x1"
    for item in report.result.files:
        assert sorted(ranked.name for ranked in item.top) == sorted(NAMES)
        assert sum(ranked.probability for ranked in item.top) == pytest.approx(1.0)
        assert [ranked.rank for ranked in item.top] == list(range(1, 8))
        probabilities = [ranked.probability for ranked in item.top]
        assert probabilities == sorted(probabilities, reverse=True)
    # A folder's names are its sorted subfolders: index 0 is the first in sorted order.
    assert report.result.names == tuple(sorted(NAMES))


@pytest.mark.slow
def test_stride_gives_each_windows_top_classes_a_plot_and_an_annotated_video(names_file, tmp_path):
    import av

    from eval_files import cut_clip

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    video = cut_clip(fixture(VIDEOS / "box.mp4"), tmp_path / "six.mp4", 0.0, seconds=6.0)  # windows of 2.1 s
    report = classify(config([video, broken], tmp_path, labels=str(names_file), views="1x1", top_k=2, stride=1.0))
    [item] = report.timelines
    assert [skip.path for skip in report.skipped] == [str(broken)]
    starts = item.timeline.times[:, 0]
    assert len(starts) >= 3 and report.notes == []
    np.testing.assert_allclose(starts, np.arange(len(starts)) * 1.0, atol=0.05)
    assert report.result.settings["views"] == "1x1" and report.result.settings["stride"] == 1.0
    rows = list(csv.DictReader(open(tmp_path / "out" / "windows.csv")))
    assert len(rows) == 2 * len(starts)
    for window, ranked in enumerate(item.top):
        order = np.argsort(-item.timeline.values[window], kind="stable")[:2]
        assert [entry.name for entry in ranked] == [NAMES[index] for index in order]
        assert [(row["rank"], row["name"]) for row in rows[2 * window : 2 * window + 2]] == [
            ("1", ranked[0].name),
            ("2", ranked[1].name),
        ]
    np.testing.assert_allclose(item.timeline.values.sum(axis=1), 1.0, atol=1e-5)
    assert item.plot.stat().st_size > 0 and item.plot in report.written and item.video in report.written
    with av.open(str(item.video)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 10


def test_stride_bad_input_is_named_before_any_compute(clips, names_file, tmp_path, monkeypatch):
    from hvm1.models import VideoViT

    monkeypatch.setattr(VideoViT, "forward", lambda self, video: pytest.fail("the model ran"))
    with pytest.raises(ValueError, match="stride must be a number of seconds above 0, got 0"):
        classify(config([clips["box"][0]], tmp_path, labels=str(names_file), stride=0))
    with pytest.raises(ValueError, match="stride is for windows over videos"):
        classify(config([clips["box"][0]], tmp_path, labels=str(names_file), stride=1.0, images=True))


@pytest.mark.slow
def test_a_video_shorter_than_one_window_is_one_padded_window_and_said(clips, names_file, tmp_path, capsys):
    from eval_files import cut_clip

    short = cut_clip(fixture(VIDEOS / "box.mp4"), tmp_path / "short.mp4", 0.0, seconds=0.5)
    report = classify(config([short], tmp_path, labels=str(names_file), views="1x1", stride=1.0))
    [item] = report.timelines
    assert len(item.timeline) == 1 and item.timeline.padded > 0
    assert report.notes == [
        f"{short}: shorter than one window: one window, its last {item.timeline.padded} frames "
        f"repeated (as read_clip pads)"
    ]
    arguments = ["--checkpoint", str(fixture(VIT_CHECKPOINT)), *TINY_SET, "--labels", str(names_file)]
    arguments += ["--views", "1x1", "--stride", "1", "--num-workers", "0", "--device", "cpu", "--precision", "fp32"]
    assert main(["classify", str(short), *arguments, "--out-dir", str(tmp_path / "cli")]) == 0
    assert f"{short}: 1 window; leading classes" in capsys.readouterr().out
