"""File discovery, the dataset layouts, and bad files reported through DataLoader workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from data_files import encode_video
from hvm1.data import ClipDataset, Sample, Skipped, VideoError, collate, find_images, find_videos, image_eval_preset
from hvm1.data.transforms import visualisation_preset
from hvm1.zoo import IMAGENET_MEAN, IMAGENET_STD, VIDEO_MEAN, VIDEO_STD
from reference_data import VIDEOS

SMALL = visualisation_preset(32, 2, VIDEO_MEAN, VIDEO_STD)


def touch(root: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        paths.append(path)
    return paths


def test_find_videos_recursive_sorted_any_case(tmp_path):
    touch(tmp_path, "b.MP4", "a.avi", "sub/c.mkv", "sub/deeper/d.WebM", "e.m4v", "f.Mov", "notes.txt", "g.mp3")
    touch(tmp_path, ".hidden.mp4", ".cache/x.mp4", "sub/._resource.mov")
    found = [path.relative_to(tmp_path).as_posix() for path in find_videos(tmp_path)]
    assert found == ["a.avi", "b.MP4", "e.m4v", "f.Mov", "sub/c.mkv", "sub/deeper/d.WebM"]


def test_find_files_takes_files_as_given_and_lists_each_once(tmp_path):
    clip, other = touch(tmp_path, "x/clip.mp4", "odd.name")
    assert find_videos([other, tmp_path / "x", clip]) == [other, clip]
    assert find_videos(str(clip)) == [clip]
    with pytest.raises(FileNotFoundError, match="missing"):
        find_videos(tmp_path / "missing")


def test_find_images(tmp_path):
    touch(tmp_path, "a.JPG", "b.jpeg", "c/d.png", "e.bmp", "f.webp", "g.gif", "h.mp4")
    assert [path.name for path in find_images(tmp_path)] == ["a.JPG", "b.jpeg", "d.png", "e.bmp", "f.webp"]


def test_class_folders_label_by_sorted_name(tmp_path):
    touch(tmp_path, "zebra/1.mp4", "zebra/deep/2.mp4", "ant/3.avi", "mole/README.md")
    dataset = ClipDataset.from_class_folders(tmp_path, SMALL)
    assert dataset.classes == ["ant", "mole", "zebra"]
    assert [(path.name, label) for path, label in zip(dataset.files, dataset.labels)] == [
        ("3.avi", 0),
        ("1.mp4", 2),
        ("2.mp4", 2),
    ]
    touch(tmp_path, "loose.mp4")
    with pytest.raises(ValueError, match="belong to no class folder, e.g. loose.mp4"):
        ClipDataset.from_class_folders(tmp_path, SMALL)
    with pytest.raises(FileNotFoundError):
        ClipDataset.from_class_folders(tmp_path / "missing", SMALL)


def test_csv_manifest(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\nclips/a.mp4,3\n/abs/b.mp4, 1\n\n")
    dataset = ClipDataset.from_csv(tmp_path / "list.csv", SMALL)
    assert dataset.files == [tmp_path / "clips/a.mp4", Path("/abs/b.mp4")]
    assert dataset.labels == [3, 1]
    (tmp_path / "bad.csv").write_text("a.mp4,3\nb.mp4,cat\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: expected 'path,label'"):
        ClipDataset.from_csv(tmp_path / "bad.csv", SMALL)


def test_flat_folder_is_unlabelled(tmp_path):
    encode_video(tmp_path / "one.avi", fps=10, num_frames=12)
    sample = ClipDataset.from_folder(tmp_path, SMALL)[0]
    assert isinstance(sample, Sample)
    assert (sample.video.shape, sample.label, sample.path) == ((3, 2, 32, 32), -1, str(tmp_path / "one.avi"))


def mixed_folder(root: Path) -> tuple[list[Path], list[Path]]:
    """A class-folder tree of good (made on the spot, plus a real one) and bad videos."""
    (root / "a").mkdir()
    good = [encode_video(root / "a" / f"{index}.avi", fps=10, num_frames=12) for index in range(3)]
    real = VIDEOS / "cup.mp4"
    if real.is_file():
        (root / "b").mkdir()
        (root / "b" / "cup.mp4").symlink_to(real)
        good.append(root / "b" / "cup.mp4")
    bad = [root / "a" / "notes.mp4", root / "b" / "empty.mov"]
    bad[0].write_text("not a video")
    bad[1].parent.mkdir(exist_ok=True)
    bad[1].write_bytes(b"")
    return good, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_skipped_files_reach_the_main_process(tmp_path, workers):
    good, bad = mixed_folder(tmp_path)
    dataset = ClipDataset.from_class_folders(tmp_path, SMALL, skip_bad=True)
    loader = DataLoader(dataset, batch_size=2, num_workers=workers, collate_fn=collate)
    paths, skipped, labels = [], [], []
    for batch in loader:
        if batch.video is not None:
            assert batch.video.shape == (len(batch.path), 3, 2, 32, 32)
            labels += batch.label.tolist()
        paths += batch.path
        skipped += batch.skipped
    assert sorted(paths) == sorted(map(str, good))
    assert sorted(item.path for item in skipped) == sorted(map(str, bad))
    assert all(isinstance(item, Skipped) and "not a video file" in item.reason for item in skipped)
    assert sorted(labels) == sorted(0 if path.parent.name == "a" else 1 for path in good)


def test_bad_files_raise_through_workers(tmp_path):
    # One bad file only: torch takes seconds to stop workers that still hold prefetched items after an error.
    (tmp_path / "notes.mp4").write_text("not a video")
    loader = DataLoader(ClipDataset([tmp_path / "notes.mp4"], SMALL), num_workers=1, collate_fn=collate)
    with pytest.raises(VideoError, match="notes.mp4: not a video file"):
        next(iter(loader))


def test_collate_of_only_skipped_files():
    batch = collate([Skipped("a.mp4", "no such file")])
    assert (batch.video, batch.label, batch.path, batch.skipped) == (None, None, [], [Skipped("a.mp4", "no such file")])


def test_image_folder(tmp_path, images):
    for index, image in enumerate(images[:2]):
        (tmp_path / f"class{index}").mkdir()
        (tmp_path / f"class{index}" / image.name).symlink_to(image)
    (tmp_path / "class1" / "broken.png").write_text("not an image")
    preset = image_eval_preset(32, 4, IMAGENET_MEAN, IMAGENET_STD)
    dataset = ClipDataset.from_class_folders(tmp_path, preset, skip_bad=True)
    batch = collate([dataset[index] for index in range(len(dataset))])
    assert batch.video.shape == (2, 3, 4, 32, 32)
    assert batch.label.tolist() == [0, 1]
    assert [item.path for item in batch.skipped] == [str(tmp_path / "class1" / "broken.png")]
    assert torch.equal(batch.padded, torch.zeros(2, dtype=torch.long))
