"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import launch_chromium, require_browser
from reference_data import reference_dir


@pytest.fixture(params=["tiny", "tiny_b"])
def reference(request) -> Path:
    """Each tiny reference model folder in turn."""
    return reference_dir(request.param)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-screenshot",
        action="store_true",
        help="rewrite docs/demo.png (the README's picture of `hvm1 demo`) from the browser test",
    )


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, through Playwright), one per test module; skips without it, except in CI."""
    sync_playwright, chromium = require_browser()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium)
        yield browser
        browser.close()
