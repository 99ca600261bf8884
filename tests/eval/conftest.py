"""Fixtures for the embedding, evaluation and probe tests: clips of the real videos, the tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_files import cut_clip
from reference_data import MAE_CHECKPOINT, TINY_HEADS, VIDEOS, VIT_CHECKPOINT, fixture

# Clips of each real video: (file, start in seconds); vtest.avi is a street seen by a fixed camera, box.mp4 a
# hand-held close-up of a box on a desk.
CUTS = {
    "vtest": ("vtest.avi", [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]),
    "box": ("box.mp4", [0.0, 3.0, 6.0, 9.0, 12.0]),
    "cup": ("cup.mp4", [0.0, 4.0]),
    "tree": ("tree.avi", [0.0]),
}


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, list[Path]]:
    """Short clips cut from each real video, by video: {'vtest': [...], 'box': [...], ...}."""
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for name, (file, starts) in CUTS.items():
        source = fixture(VIDEOS / file)
        out[name] = [cut_clip(source, folder / f"{name}{index}.mp4", start) for index, start in enumerate(starts)]
    return out


@pytest.fixture(scope="session")
def encoder():
    """The tiny MAE checkpoint's encoder as a ViT (no head)."""
    from hvm1 import load_model

    return load_model(fixture(MAE_CHECKPOINT), model_type="vit", **TINY_HEADS)


@pytest.fixture(scope="session")
def classifier():
    """The tiny ViT checkpoint with its 7-class head."""
    from hvm1 import load_model

    return load_model(fixture(VIT_CHECKPOINT), **TINY_HEADS)
