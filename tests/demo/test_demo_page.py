"""`hvm1 demo` in a real browser: Debian's headless Chromium driven by Playwright, on the tiny reference models.

One server (a subprocess on a free loopback port, limits 5 MB and 20 s) serves the tests below; the last
test starts its own to check what stopping leaves behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from demo_browser import DemoPage, start_demo

TILE, FRAMES, T_TOKENS = 56, 8, 4  # the tiny reference MAE: 56 px, pred_t_dim 8; the ViT: 8 frames / t_patch 2
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "demo.png"


def grid_size(rows: int, columns: int) -> tuple[int, int]:
    """(width, height) of a picture of `rows` x `columns` tiles with 1 px padding."""
    return columns * (TILE + 1) + 1, rows * (TILE + 1) + 1


@pytest.fixture(scope="module")
def demo(browser, tmp_path_factory):
    server = start_demo(tmp_path_factory.mktemp("demo"), "--max-upload-mb", "5", "--max-seconds", "20")
    yield server
    server.stop()


@pytest.fixture
def visitor(browser, demo):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield DemoPage(context, demo)
    context.close()


def test_upload_completes_with_pictures_of_the_expected_size(visitor, demo, videos_dir):
    visitor.upload(videos_dir / "box.mp4")
    visitor.choose("random", seed=3)
    assert visitor.page.locator("#hvm1-mask-ratio input[type=number]").input_value() == "0.9"  # random's default
    visitor.run()
    summary = visitor.wait_for_result("box.mp4: random mask, ratio 0.90, seed 3")
    chosen = re.search(r"^precision (.+?) \(", demo.log_text(), re.M).group(1)  # what the policy chose here
    assert "completed in" in summary and f"({chosen} on cpu)" in summary
    assert visitor.image_size("hvm1-completion") == grid_size(3, FRAMES)
    assert visitor.animation_size() == (3 * (TILE + 1) + 1, TILE + 2)  # a frame: the three side by side
    assert visitor.image_size("hvm1-attention") == grid_size(2, T_TOKENS)
    assert visitor.image_size("hvm1-pca") == grid_size(2, T_TOKENS)  # frames over their feature maps
    scores = visitor.page.locator("#hvm1-scores").inner_text()
    assert all(method in scores for method in ("MAE", "mean", "nearest_frame", "interpolate", "PSNR", "SSIM"))
    assert visitor.outside_requests() == []

    # The same upload again with other settings: the session kept its clip, though the upload is deleted.
    visitor.choose("temporal", ratio=0.75)
    visitor.page.locator("#hvm1-score input").uncheck()
    visitor.run()
    visitor.wait_for_result("box.mp4: temporal mask, ratio 0.75")
    assert visitor.image_size("hvm1-completion") == grid_size(3, FRAMES)
    assert "PSNR" not in visitor.page.locator("#hvm1-scores").inner_text()


def test_sample_clip_and_the_readme_screenshot(visitor, request):
    visitor.choose("center")
    visitor.run()
    visitor.wait_for_result("the sample clip: center mask, ratio 0.50")
    assert visitor.image_size("hvm1-completion") == grid_size(3, FRAMES)
    if request.config.getoption("--update-screenshot"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        visitor.page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_text_file_named_mp4_shows_an_error_and_a_good_upload_still_works(visitor, videos_dir, tmp_path):
    visitor.page.locator("#hvm1-source").get_by_text("your upload").click()
    visitor.run()
    visitor.wait_for_error("no video uploaded yet")
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video, just text\n" * 100)
    visitor.upload(fake)
    visitor.run()
    message = visitor.wait_for_error("holiday.mp4 not a video file FFmpeg can read")
    assert str(tmp_path) not in message
    visitor.upload(videos_dir / "cup.mp4")
    visitor.run()
    visitor.wait_for_result("cup.mp4: center mask")
    assert visitor.image_size("hvm1-completion") == grid_size(3, FRAMES)


def test_uploads_over_the_limits_are_refused_with_a_message(visitor, videos_dir):
    visitor.upload(videos_dir / "tree.avi")  # 30 s
    visitor.run()
    visitor.wait_for_error("tree.avi is 30 s long; this demo takes videos up to 20 s")
    visitor.page.locator("#hvm1-upload").get_by_role("button", name="Clear").click()
    visitor.page.locator("#hvm1-upload input[type=file]").set_input_files(str(videos_dir / "vtest.avi"))  # 5.4 MB
    visitor.wait_for_error("5 MB")


def test_two_visitors_at_once_both_get_their_own_results(browser, demo, videos_dir):
    contexts = [browser.new_context() for _ in range(2)]
    try:
        pages = [DemoPage(context, demo) for context in contexts]
        for page, video in zip(pages, ("box.mp4", "cup.mp4")):
            page.upload(videos_dir / video)
        for page in pages:
            page.run()  # both queued before either finishes waiting
        for page, video in zip(pages, ("box.mp4", "cup.mp4")):
            page.wait_for_result(f"{video}: center mask")
            assert page.image_size("hvm1-completion") == grid_size(3, FRAMES)
    finally:
        for context in contexts:
            context.close()


def test_a_file_another_visitor_completed_first_is_still_there_for_its_uploader(browser, demo, videos_dir):
    # Gradio stores both uploads of the same file at one path; the second visitor's run must not take it
    # from under the first, who uploaded earlier and clicks later.
    contexts = [browser.new_context() for _ in range(2)]
    try:
        early, late = (DemoPage(context, demo) for context in contexts)
        early.upload(videos_dir / "cup.mp4")
        late.upload(videos_dir / "cup.mp4")
        late.run()
        late.wait_for_result("cup.mp4: center mask")
        early.choose("temporal")
        early.run()
        early.wait_for_result("cup.mp4: temporal mask")
        assert early.image_size("hvm1-completion") == grid_size(3, FRAMES)
    finally:
        for context in contexts:
            context.close()


def test_an_upload_is_not_served_to_another_visitor(browser, demo, videos_dir):
    first, second = browser.new_context(), browser.new_context()
    try:
        owner = DemoPage(first, demo)
        owner.upload(videos_dir / "cup.mp4")
        link = owner.page.locator("#hvm1-upload a[href*='file=']").first.get_attribute("href")
        owner.run()
        owner.wait_for_result("cup.mp4: center mask")
        other = DemoPage(second, demo)
        response = other.page.request.get(link if "://" in link else demo.url.rstrip("/") + link)
        assert response.status in (403, 404)
    finally:
        first.close()
        second.close()


def test_stopping_the_server_removes_everything_it_wrote(browser, videos_dir, tmp_path):
    server = start_demo(tmp_path)
    try:
        context = browser.new_context()
        visitor = DemoPage(context, server)
        visitor.upload(videos_dir / "cup.mp4")
        visitor.run()
        visitor.wait_for_result("cup.mp4: center mask")
        context.close()
        assert any(server.tmpdir.iterdir())  # the demo's temporary folder, while it runs
    finally:
        status = server.stop()
    assert status == 0, server.log_text()
    left = sorted(map(str, [*server.tmpdir.rglob("*"), *server.cwd.rglob("*")]))
    assert left == [], server.log_text()
