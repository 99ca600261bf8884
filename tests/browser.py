"""Headless Chromium for the browser tests (the demo page, the documentation site).

Chromium comes from Debian (`.ci/run` installs it) and is driven by Playwright's Python package, launched with
`executable_path` since Playwright's own browser download can't be reached. Each launch gives Chromium a new
empty user-data folder; the flags keep it from reaching outside hosts.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

from reference_data import skip_unless_ci

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_browser():
    """Playwright's sync API and the path of Debian's chromium; skips without them, except in CI (a failure)."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = [what for what, ok in (("chromium on PATH", chromium), ("playwright", sync_playwright)) if not ok]
    if missing:
        skip_unless_ci(f"browser tests need {' and '.join(missing)} (.ci/run installs them)")
    return sync_playwright, chromium


def launch_chromium(playwright, chromium: str):
    return playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)


def outside_requests(urls: list[str]) -> list[str]:
    """The URLs among `urls` that go to another host than this machine's loopback address."""
    return [
        url
        for url in urls
        if urlparse(url).hostname not in ("127.0.0.1", None) and not url.startswith(("data:", "blob:"))
    ]
