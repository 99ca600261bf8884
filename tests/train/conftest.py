"""Fixtures for the training tests: small re-encoded copies of the real test videos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reference_data import MAE_CHECKPOINT, VIDEO_NAMES, VIDEOS, fixture
from train_helpers import shrink_video


@pytest.fixture(scope="session")
def small_videos(tmp_path_factory) -> list[Path]:
    """The first 3 s of each real test video at 96x72, so that a training step decodes in milliseconds."""
    fixture(MAE_CHECKPOINT)
    folder = tmp_path_factory.mktemp("small_videos")
    return [shrink_video(fixture(VIDEOS / name), folder / f"{Path(name).stem}.avi") for name in VIDEO_NAMES]


@pytest.fixture(scope="session")
def two_classes(small_videos, tmp_path_factory) -> Path:
    """A folder of two class subfolders, two real videos each."""
    root = tmp_path_factory.mktemp("two_classes")
    for label, members in (("people", small_videos[2:]), ("objects", small_videos[:2])):
        (root / label).mkdir()
        for video in members:
            (root / label / video.name).symlink_to(video)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a small shared machine two threads spin against each other (tiny models run
    20x slower), and results don't depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
