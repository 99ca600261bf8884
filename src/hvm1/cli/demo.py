"""`hvm1 demo`: serve the completion demo page in the browser until Ctrl-C."""

from __future__ import annotations

from .command import Command

COMMANDS = {
    "demo": Command(
        help="serve a page in the browser: upload a video, see the MAE complete it (needs hvm1[demo])",
        config="hvm1.demo.command:DemoConfig",
        run="hvm1.demo.command:serve_demo",
        show=lambda report: 0,
    ),
}
