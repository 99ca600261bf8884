"""Start `hvm1 demo` as a subprocess on a free loopback port, and drive its page in Debian's headless Chromium.

Chromium is launched as every browser test launches it (`tests/browser.py`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from browser import outside_requests
from reference_data import TINY, fixture

# The tiny reference models: width 64 matches no named size, so the head counts are given.
MAE_HEADS = {"num_heads": 4, "decoder_num_heads": 4}
VIT_HEADS = {"num_heads": 4}


STARTUP_TIMEOUT = 240  # seconds: importing torch and Gradio on a busy 2-core machine
RESULT_TIMEOUT = 180_000  # ms


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_model_args() -> list[str]:
    folder = fixture(TINY)
    sets = [item for name, value in MAE_HEADS.items() for item in ("--set", f"{name}={value}")]
    vit_sets = [item for name, value in VIT_HEADS.items() for item in ("--vit-set", f"{name}={value}")]
    return [
        "--checkpoint",
        str(folder / "mae_checkpoint.pth"),
        *sets,
        "--vit-checkpoint",
        str(folder / "vit_checkpoint.pth"),
        *vit_sets,
    ]


@dataclass
class DemoProcess:
    """A running `hvm1 demo`: its URL, process, log, and the folders it was given as TMPDIR and as cwd."""

    url: str
    process: subprocess.Popen
    log: Path
    tmpdir: Path
    cwd: Path
    log_file: object = field(repr=False)

    def stop(self) -> int:
        """SIGTERM (as a service manager stops it), wait for it; returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_demo(folder: Path, *extra: str) -> DemoProcess:
    """`hvm1 demo` on the tiny reference models, with TMPDIR and the working folder both empty under `folder`."""
    tmpdir, cwd = folder / "tmp", folder / "cwd"
    tmpdir.mkdir(parents=True)
    cwd.mkdir()
    port = free_port()
    log = folder / "demo.log"
    log_file = log.open("w")
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hvm1.cli", "-v", "demo", *tiny_model_args(), "--port", str(port), *extra],
        cwd=cwd,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    demo = DemoProcess(f"http://127.0.0.1:{port}/", process, log, tmpdir, cwd, log_file)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            demo.stop()
            pytest.fail(f"hvm1 demo exited with status {process.returncode}:\n{demo.log_text()}")
        if "serving on" in demo.log_text():
            with urllib.request.urlopen(demo.url, timeout=10) as response:
                assert response.status == 200
            return demo
        time.sleep(0.5)
    demo.stop()
    pytest.fail(f"hvm1 demo did not start within {STARTUP_TIMEOUT} s:\n{demo.log_text()}")


class DemoPage:
    """One visitor's tab on the demo page; records every URL the page asked for."""

    def __init__(self, context, demo: DemoProcess) -> None:
        self.page = context.new_page()
        self.demo, self.url = demo, demo.url
        self.page.set_default_timeout(RESULT_TIMEOUT)  # Playwright's 30 s is short on a loaded 2-core machine
        self.requested: list[str] = []
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.goto(self.url)
        self.page.wait_for_selector("#hvm1-run")

    def upload(self, path: Path) -> None:
        """Choose `path` in the upload box (clearing a file chosen before) and wait until the page has taken it."""
        box = self.page.locator("#hvm1-upload")
        if box.locator("td.filename").count():
            box.get_by_role("button", name="Clear").click()
        box.locator("input[type=file]").set_input_files(str(path))
        box.locator(f"td.filename[aria-label={path.name!r}]").wait_for()
        self.page.wait_for_function("() => document.querySelector('#hvm1-source input[value=\"your upload\"]').checked")

    def choose(self, mask_type: str, ratio: float | None = None, seed: int | None = None) -> None:
        self.page.locator("#hvm1-mask-type").get_by_text(mask_type, exact=True).click()
        if ratio is not None:
            self.page.locator("#hvm1-mask-ratio input[type=number]").fill(str(ratio))
            self.page.locator("#hvm1-mask-ratio input[type=number]").press("Enter")
        if seed is not None:
            self.page.locator("#hvm1-seed input").fill(str(seed))

    def run(self) -> None:
        self.page.click("#hvm1-run")

    def wait_for_result(self, expected_summary: str) -> str:
        """Wait until the result summary contains `expected_summary` and says all is done; returns it."""
        summary = self.page.locator("#hvm1-summary")
        summary.get_by_text(expected_summary).wait_for(timeout=RESULT_TIMEOUT)
        summary.get_by_text("all done in").wait_for(timeout=RESULT_TIMEOUT)
        return summary.inner_text()

    def wait_for_error(self, text: str) -> str:
        """Wait for an error message containing `text` on the page; returns its text."""
        message = self.page.get_by_text(text)
        message.first.wait_for(timeout=RESULT_TIMEOUT)
        return message.first.inner_text()

    def image_size(self, elem_id: str) -> tuple[int, int]:
        """The natural (width, height) of the image shown in component `elem_id`, once it has loaded.

        The image is looked up afresh at each check: Gradio may put a new `img` in the component after the
        summary says all is done, and one found before that could be left detached, never to load. Past the
        timeout, the error says what the page showed (the image's address, and what fetching it answers) and
        what the demo logged.
        """
        selector = f"#{elem_id} img"
        try:
            self.wait_until(selector, "element.complete && element.naturalWidth > 0")
        except Exception as error:  # noqa: BLE001 - re-raised with what the page and the demo showed
            log = self.demo.log_text()[-4000:]
            raise AssertionError(
                f"{selector} never loaded: {self.describe_image(selector)}\nthe demo's log ends:\n{log}"
            ) from error
        return tuple(self.page.locator(selector).first.evaluate("(image) => [image.naturalWidth, image.naturalHeight]"))

    def wait_until(self, selector: str, ready: str) -> None:
        """Wait until the element at `selector` exists and the JavaScript expression `ready` (of `element`) is
        true, looking the element up afresh at each check (Gradio replaces elements as results arrive)."""
        check = "(selector) => { const element = document.querySelector(selector); "
        check += f"return element !== null && ({ready}); }}"
        self.page.wait_for_function(check, arg=selector, timeout=RESULT_TIMEOUT)

    def describe_image(self, selector: str) -> str:
        """What the page shows at `selector`: each image's address, state and the status fetching it gives."""
        images = self.page.locator(selector)
        found = []
        for index in range(images.count()):
            state = images.nth(index).evaluate("(i) => [i.getAttribute('src'), i.complete, i.naturalWidth]")
            src = state[0] or ""
            status = "-"
            if src and not src.startswith("data:"):
                status = str(self.page.request.get(src if "://" in src else self.url.rstrip("/") + src).status)
            found.append(f"src={src!r} complete={state[1]} naturalWidth={state[2]} fetch status={status}")
        return "; ".join(found) or "no image"

    def animation_size(self) -> tuple[int, int]:
        """The (width, height) of the animation: an MP4 the browser decodes (H.264), else a GIF image."""
        box = self.page.locator("#hvm1-animation")
        box.locator("video, img").first.wait_for()
        if box.locator("video").count():
            self.wait_until("#hvm1-animation video", "element.videoWidth > 0")
            return tuple(box.locator("video").first.evaluate("(video) => [video.videoWidth, video.videoHeight]"))
        return self.image_size("hvm1-animation")

    def outside_requests(self) -> list[str]:
        return outside_requests(self.requested)
