"""Where ../shared lies, and helpers for the tiny reference checkpoints in it (imported by tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference"


def reference_dir(name: str) -> Path:
    """A reference model folder under ../shared/reference, or skip the test with the reason."""
    path = REFERENCE / name
    if not (path / "expected.npz").is_file():
        pytest.skip(f"reference data not found at {path} (../shared beside the checkout)")
    return path


def reference_heads(path: Path) -> dict[str, int]:
    """The head counts the tiny checkpoints can't tell (width 64 matches no named size)."""
    config = json.loads((path / "config.json").read_text())
    return {"num_heads": config["num_heads"], "decoder_num_heads": config["decoder_num_heads"]}
