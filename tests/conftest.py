"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_data import reference_dir


@pytest.fixture(params=["tiny", "tiny_b"])
def reference(request) -> Path:
    """Each tiny reference model folder in turn."""
    return reference_dir(request.param)
