"""Fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_data import VIDEO_NAMES, VIDEOS, fixture
from reference_data import images as real_images


@pytest.fixture(params=VIDEO_NAMES)
def video(request) -> Path:
    """Each real test video in turn."""
    return fixture(VIDEOS / request.param)


@pytest.fixture
def images() -> list[Path]:
    """The real test photographs."""
    return real_images()
