"""Where the test data lives, and helpers for it (imported by tests): the one place that says so.

The data is inside the repository, under `tests/fixtures/` (`tests/fixtures/README.md` gives each file's
source, licence and what the tests need of it). A test asks for a file through `fixture` (or a helper built
on it): when the file is missing it is skipped with the reason on a developer's machine, and it fails when
the environment variable `CI` is set (as CI services set it), so that missing data never passes as a skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = FIXTURES / "reference"
VIDEOS = FIXTURES / "videos"
IMAGES = FIXTURES / "images"
TINY = REFERENCE / "tiny"
MAE_CHECKPOINT = TINY / "mae_checkpoint.pth"
VIT_CHECKPOINT = TINY / "vit_checkpoint.pth"
#: The real test videos: box.mp4 and cup.mp4 (H.264, 29.97 and 26.78 fps; box's header counts one frame more
#: than decode), tree.avi (Cinepak, 15 fps; its header promises 444 frames, 68 decode) and vtest.avi
#: (MS-MPEG4 v3, 10 fps, keyframes every 25 s).
VIDEO_NAMES = ("box.mp4", "cup.mp4", "tree.avi", "vtest.avi")
#: The real test photographs.
IMAGE_NAMES = ("baboon.jpg", "butterfly.jpg", "fruits.jpg", "orange.jpg")
#: The tiny checkpoints' width (64) matches no named size: their head counts must be given.
TINY_HEADS = {"num_heads": 4, "decoder_num_heads": 4}
TINY_SET = ["--set", "num_heads=4", "--set", "decoder_num_heads=4"]


def in_ci() -> bool:
    """Whether the environment variable CI says this is a CI run (set and not 'false' or '0')."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_unless_ci(reason: str) -> None:
    """Stop a test that lacks something it needs: a failure under CI (which must have everything), a skip with
    the reason elsewhere."""
    if in_ci():
        pytest.fail(f"{reason}; under CI this fails instead of skipping")
    pytest.skip(reason)


def missing(path: Path) -> None:
    """Stop a test whose data file is absent, as `skip_unless_ci` says."""
    skip_unless_ci(f"test data {path} not found (tests/fixtures/ in the repository holds it)")


def fixture(path: Path) -> Path:
    """`path` (a file or folder of test data), or stop the test as `missing` says when it does not exist."""
    if not path.exists():
        missing(path)
    return path


def video(name: str) -> Path:
    """A real test video by file name (`VIDEO_NAMES`)."""
    return fixture(VIDEOS / name)


def image(name: str) -> Path:
    """A real test photograph by file name (`IMAGE_NAMES`)."""
    return fixture(IMAGES / name)


def images() -> list[Path]:
    """Every real test photograph, sorted by name."""
    return [image(name) for name in sorted(IMAGE_NAMES)]


def reference_dir(name: str) -> Path:
    """A tiny reference model folder (`tiny` or `tiny_b`): checkpoints, config and the published outputs."""
    path = REFERENCE / name
    for file in ("config.json", "expected.npz", "mae_checkpoint.pth", "vit_checkpoint.pth"):
        fixture(path / file)
    return path


def reference_heads(path: Path) -> dict[str, int]:
    """The head counts the tiny checkpoints can't tell (width 64 matches no named size)."""
    config = json.loads((path / "config.json").read_text())
    return {"num_heads": config["num_heads"], "decoder_num_heads": config["decoder_num_heads"]}


def reference_sets(path: Path) -> list[str]:
    """The same head counts as CLI options (`--set num_heads=4 --set decoder_num_heads=4`)."""
    return [item for field, value in reference_heads(path).items() for item in ("--set", f"{field}={value}")]
