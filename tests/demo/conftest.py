"""Fixtures for the demo tests: the tiny reference checkpoints and the real videos (tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_browser import MAE_HEADS, VIT_HEADS

from reference_data import TINY, VIDEOS, fixture


@pytest.fixture
def videos_dir() -> Path:
    """The folder of real test videos (box.mp4 15 s, cup.mp4 8 s, tree.avi 30 s, vtest.avi 53 s and 5.4 MB)."""
    return fixture(VIDEOS)


@pytest.fixture(scope="session")
def tiny_models():
    """The tiny reference MAE (56 px, 8 frames, pred_t_dim 8) and ViT, loaded through hvm1."""
    import hvm1

    folder = fixture(TINY)
    mae = hvm1.load_model(folder / "mae_checkpoint.pth", **MAE_HEADS)
    vit = hvm1.load_model(folder / "vit_checkpoint.pth", **VIT_HEADS)
    return mae, vit
