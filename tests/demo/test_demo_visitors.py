"""`hvm1 demo` with several visitors at once, through Gradio's own client (`gradio_client`): each a session of
its own, all submitted together, on the tiny reference models. Three upload the same file (Gradio stores it
once, at a path named by its content), three bad files, three take the sample clip."""

from __future__ import annotations

import re

import pytest
from demo_browser import start_demo

pytestmark = pytest.mark.slow  # a server started, nine completions

RESULT_TIMEOUT = 300  # seconds: nine runs queued one at a time on a busy machine
SAMPLE = "sample clip: moving shapes"


@pytest.fixture
def client_module():
    return pytest.importorskip("gradio_client")


def test_nine_visitors_at_once_with_identical_and_bad_uploads(client_module, videos_dir, tmp_path):
    Client, handle_file = client_module.Client, client_module.handle_file
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video, just text\n" * 40)
    empty = tmp_path / "empty clip.mp4"
    empty.write_bytes(b"")
    visits = (
        [("your upload", videos_dir / "cup.mp4")] * 3
        + [("your upload", notes)] * 2
        + [("your upload", empty)]
        + [(SAMPLE, None)] * 3
    )
    server = start_demo(tmp_path / "server")
    try:
        visitors = [Client(server.url, verbose=False) for _ in visits]
        jobs = [
            visitor.submit(
                source, handle_file(str(path)) if path else None, "center", 0.5, 0, False, api_name="/complete"
            )
            for visitor, (source, path) in zip(visitors, visits)
        ]
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(job.result(timeout=RESULT_TIMEOUT)[0])  # the summary
            except client_module.exceptions.AppError as error:
                outcomes.append(f"error: {error}")
        log = server.log_text()
        # Every identical upload is completed, each in its own session; the sample clip for each who asked.
        for outcome in outcomes[:3]:
            assert re.match(r"\*\*cup\.mp4\*\*: center mask, ratio 0\.50; completed in", outcome), (outcome, log)
        for outcome in outcomes[6:]:
            assert outcome.startswith("**the sample clip**: center mask"), (outcome, log)
        # Bad uploads: the demo's message, naming the visitor's file, never a server path.
        for outcome in outcomes[3:5]:
            assert outcome.startswith("error: notes.mp4 not a video file FFmpeg can read"), (outcome, log)
        assert outcomes[5].startswith("error: empty clip.mp4 "), (outcomes[5], log)
        for outcome in outcomes:
            assert str(server.tmpdir) not in outcome and "gradio/" not in outcome and "/tmp" not in outcome
        # Every upload has been read, so none is left on the server; the page still serves a new visitor.
        assert [
            path.name
            for path in server.tmpdir.rglob("*.mp4")
            if path.name in ("cup.mp4", "notes.mp4", "empty clip.mp4")
        ] == []
        late = Client(server.url, verbose=False).predict(
            "your upload", handle_file(str(videos_dir / "cup.mp4")), "temporal", 0.75, 0, False, api_name="/complete"
        )
        assert late[0].startswith("**cup.mp4**: temporal mask")
    finally:
        status = server.stop()
    assert status == 0, server.log_text()
