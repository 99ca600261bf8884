"""Where the benchmarks find their real videos and reference models: the test data inside the repository."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
#: The real videos (box.mp4, cup.mp4, tree.avi, vtest.avi; sources and licences in tests/fixtures/README.md).
VIDEOS = FIXTURES / "videos"
#: The tiny reference models and the published code's outputs on them.
REFERENCE = FIXTURES / "reference"
