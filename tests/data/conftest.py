"""Fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_files import IMAGES, VIDEO_NAMES, VIDEOS, shared_file


@pytest.fixture(params=VIDEO_NAMES)
def video(request) -> Path:
    """Each real test video in turn."""
    return shared_file(VIDEOS, request.param)


@pytest.fixture
def images() -> list[Path]:
    """The real test photographs."""
    if not IMAGES.is_dir():
        pytest.skip(f"{IMAGES} not found (../shared beside the checkout holds the real test files)")
    return sorted(IMAGES.glob("*.jpg"))
