"""Fixtures for the visualisation tests: the tiny reference checkpoints and the real videos in ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def _shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} not found (../shared beside the checkout holds the reference checkpoints and videos)")
    return path


def _reference_heads(folder: Path) -> dict[str, int]:
    """The head counts a tiny reference checkpoint can't tell (width 64 matches no named size)."""
    config = json.loads((folder / "config.json").read_text())
    return {"num_heads": config["num_heads"], "decoder_num_heads": config["decoder_num_heads"]}


@pytest.fixture
def videos_dir() -> Path:
    """The folder of real test videos (box.mp4, cup.mp4, tree.avi, vtest.avi)."""
    return _shared("videos")


@pytest.fixture
def two_videos(videos_dir: Path) -> list[Path]:
    """An H.264 and a Cinepak video (tree.avi: its header promises more frames than decode)."""
    return [videos_dir / "box.mp4", videos_dir / "tree.avi"]


@pytest.fixture(params=["tiny", "tiny_b"])
def reference(request) -> Path:
    """Each tiny reference model folder: pred_t_dim 8 (tiny) and 4 (tiny_b) for 8 input frames."""
    return _shared(f"reference/{request.param}")


@pytest.fixture
def reference_mae(reference: Path):
    """The MAE of each tiny reference folder, loaded through hvm1."""
    import hvm1

    return hvm1.load_model(reference / "mae_checkpoint.pth", **_reference_heads(reference))


@pytest.fixture
def mae_args() -> list[str]:
    """CLI model options for the tiny reference MAE (56 px, 8 frames, pred_t_dim 8)."""
    folder = _shared("reference/tiny")
    sets = [item for field, value in _reference_heads(folder).items() for item in ("--set", f"{field}={value}")]
    return ["--checkpoint", str(folder / "mae_checkpoint.pth"), *sets]


@pytest.fixture
def vit_args() -> list[str]:
    """CLI model options for the tiny reference ViT (with a 7-class head)."""
    folder = _shared("reference/tiny")
    return ["--checkpoint", str(folder / "vit_checkpoint.pth"), "--set", "num_heads=4"]
