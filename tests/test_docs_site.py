"""The documentation site: built with `mkdocs build --strict` once per session, served on 127.0.0.1 and opened
in headless Chromium as a reader would open it, with nothing reachable but this machine."""

from __future__ import annotations

import functools
import http.server
import inspect
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from browser import outside_requests
from reference_data import skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # building the site takes tens of seconds


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built from this checkout into a temporary folder (the build fails on any warning)."""
    try:
        import mkdocstrings  # noqa: F401
    except ImportError:
        skip_unless_ci("the documentation site needs the docs extra: pip install -e '.[docs]' (.ci/run installs it)")
    folder = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return folder


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(site):
    """The site served over HTTP on a free loopback port; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_load_model_page_shows_its_signature(browser, site, served):
    import hvm1

    pages = [path for path in site.rglob("*.html") if 'id="hvm1.load_model"' in path.read_text()]
    assert len(pages) == 1, f"hvm1.load_model is described on {len(pages)} pages: {pages}"
    page = browser.new_page()
    page.goto(served + pages[0].relative_to(site).as_posix())
    heading = page.locator('[id="hvm1.load_model"]')
    heading.wait_for()
    # The signature block that follows the heading: each parameter of the real function, by name.
    signature = page.locator('[id="hvm1.load_model"] + div.doc-signature').first.inner_text()
    assert signature.startswith("load_model(")
    for name in inspect.signature(hvm1.load_model).parameters:
        assert name in signature, f"{name!r} missing from the rendered signature:\n{signature}"
    page.close()


def test_no_page_asks_for_anything_outside_the_machine(browser, site, served):
    pages = sorted(path.relative_to(site).as_posix() for path in site.rglob("*.html"))
    assert "reference/cli.html" in pages and "design/performance.html" in pages
    context = browser.new_context()
    requested: list[str] = []
    missing: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    context.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    page = context.new_page()
    for name in pages:
        page.goto(served + name, wait_until="networkidle")
    context.close()
    assert len(requested) > len(pages)  # the pages' own stylesheets and scripts were asked for, and counted
    assert outside_requests(requested) == []
    assert missing == []  # everything a page asks for is in the site
