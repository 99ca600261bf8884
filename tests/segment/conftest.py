"""Fixtures for the segmentation tests."""

from __future__ import annotations

import pytest
from segment_data import reference_vit


@pytest.fixture
def tiny_vit():
    """The tiny reference ViT (56 px, patch 14, 8 frames, width 64, 2 blocks) with its perturbed weights."""
    return reference_vit()
