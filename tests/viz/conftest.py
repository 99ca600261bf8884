"""Fixtures for the visualisation tests: the tiny reference checkpoints and the real videos (tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_data import TINY, VIDEOS, fixture, reference_dir, reference_heads, reference_sets


@pytest.fixture
def videos_dir() -> Path:
    """The folder of real test videos (box.mp4, cup.mp4, tree.avi, vtest.avi)."""
    return fixture(VIDEOS)


@pytest.fixture
def two_videos(videos_dir: Path) -> list[Path]:
    """An H.264 and a Cinepak video (tree.avi: its header promises more frames than decode)."""
    return [videos_dir / "box.mp4", videos_dir / "tree.avi"]


@pytest.fixture
def reference_mae(reference: Path):
    """The MAE of each tiny reference folder (`reference`: pred_t_dim 8 and 4 for 8 frames), loaded through hvm1."""
    import hvm1

    return hvm1.load_model(reference / "mae_checkpoint.pth", **reference_heads(reference))


@pytest.fixture
def mae_args() -> list[str]:
    """CLI model options for the tiny reference MAE (56 px, 8 frames, pred_t_dim 8)."""
    folder = reference_dir("tiny")
    return ["--checkpoint", str(folder / "mae_checkpoint.pth"), *reference_sets(folder)]


@pytest.fixture
def vit_args() -> list[str]:
    """CLI model options for the tiny reference ViT (with a 7-class head)."""
    return ["--checkpoint", str(fixture(TINY / "vit_checkpoint.pth")), "--set", "num_heads=4"]
