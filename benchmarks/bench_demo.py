"""Claim: a completion through the `hvm1 demo` page with a full-size ViT-H/14 MAE takes about as long as the
model's completion alone (the page, the queue, the pictures and the transfer to the browser add little).

    python benchmarks/bench_demo.py [--repeats 3] [--vit] [--video tests/fixtures/videos/box.mp4] [--device cpu]
                                    [--precision auto|fp32|bf16|fp16]

Builds `mae_hvm1_none`'s architecture (ViT-H/14, 16 frames of 224 px) with random weights (no download; with
--vit also `vit_hvm1_none`'s encoder for the attention maps), serves the demo page in this process on a free
loopback port, and drives it in Debian's headless Chromium (Playwright): upload the video, then --repeats
times, taking turns,
- `complete_clip` on the same clip in this process (the model's completion alone: encoder, decoder) at the
  page's precision (`hvm1.devices.resolve_precision`, default auto as `hvm1 demo`), and
- a click on Complete (center mask, ratio 0.5, the page's default) until the new completion picture is shown
  in the browser, as wall time, beside the time the page itself reports (model + pictures + files), and
  until the scores that follow it are shown.
The first page run also decodes the upload (the session keeps the clip for the reruns); it is printed apart.
Every MAE forward pass is timed too, so the page's own work (pictures, scores, files) shows apart from the
model's. Taking turns in one process means other work on a shared machine stretches both alike; medians are
printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
from results import printed_result

from fixtures import VIDEOS

VIDEO = VIDEOS / "box.mp4"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def page_seconds(page, previous: str) -> tuple[float, float, float, str]:
    """Click Complete; wait for a new completion picture, then for the scores. Returns (wall s until the
    completion shows, wall s until all is done, the page's own s for the completion, the final summary)."""
    start = time.perf_counter()
    page.click("#hvm1-run")
    page.wait_for_function(
        "(previous) => { const s = document.querySelector('#hvm1-summary [data-testid=markdown]').innerText;"
        " return s.includes('completed in') && s !== previous; }",
        arg=previous,
        timeout=1_800_000,
    )
    page.wait_for_function(
        "() => { const i = document.querySelector('#hvm1-completion img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    shown = time.perf_counter() - start
    page.locator("#hvm1-summary").get_by_text("all done in").wait_for(timeout=1_800_000)
    done = time.perf_counter() - start
    summary = page.locator("#hvm1-summary [data-testid=markdown]").inner_text()
    reported = float(re.search(r"completed in ([0-9.]+) s", summary).group(1))
    return shown, done, reported, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vit", action="store_true", help="also load a ViT-H/14 and draw attention maps")
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium on PATH (apt-get install chromium) and playwright (pip install playwright)")
    from forward_timer import time_forwards
    from playwright.sync_api import sync_playwright

    import hvm1
    from hvm1.demo import run_demo
    from hvm1.models import VideoMAE
    from hvm1.viz import complete_clip

    forwards = time_forwards(VideoMAE)  # every MAE forward pass, alone or in the page's run

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    start = time.perf_counter()
    mae = hvm1.load_model("mae_hvm1_none", pretrained=False, device=args.device)
    vit = hvm1.load_model("vit_hvm1_none", pretrained=False, device=args.device) if args.vit else None
    print(
        f"random-weight models built in {time.perf_counter() - start:.1f} s: ViT-H/14 MAE"
        + (" + ViT-H/14" if vit is not None else "")
    )
    with (
        run_demo(
            mae,
            mae_name="mae_hvm1_none (random weights)",
            vit=vit,
            vit_name="vit_hvm1_none (random weights)",
            port=free_port(),
            precision=args.precision,
        ) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.locator("#hvm1-upload input[type=file]").set_input_files(str(args.video))
        page.locator(f"#hvm1-upload td.filename[aria-label={args.video.name!r}]").wait_for()
        page.wait_for_function("() => document.querySelector('#hvm1-source input[value=\"your upload\"]').checked")
        clip = server.service.read(args.video).mae
        bare, walls, dones, reported, page_forwards = [], [], [], [], []
        first = page_seconds(page, "")
        summary = first[3]
        print(
            f"first page run (decodes the upload): completion shown after {first[0]:.2f} s in the browser "
            f"({first[2]:.2f} s on the server), scores after {first[1]:.2f} s"
        )
        for _ in range(args.repeats):
            start = time.perf_counter()
            complete_clip(mae, clip, "center", 0.5, precision=server.service.precision)
            bare.append(time.perf_counter() - start)
            wall, done, own, summary = page_seconds(page, summary)
            walls.append(wall)
            dones.append(done)
            reported.append(own)
            page_forwards.append(forwards[-1])
            print(
                f"  complete_clip alone {bare[-1]:.2f} s (forward {forwards[-2]:.2f} s) | through the page: "
                f"completion shown after {wall:.2f} s (server {own:.2f} s, of it the forward {forwards[-1]:.2f} s), "
                f"scores after {done:.2f} s"
            )
        browser.close()
    median = statistics.median
    print(
        f"median over {args.repeats}: complete_clip alone {median(bare):.2f} s, "
        f"through the page {median(walls):.2f} s until the completion shows "
        f"(server {median(reported):.2f} s, forward {median(page_forwards):.2f} s), {median(dones):.2f} s "
        "until the scores show; "
        f"page / alone = {median(walls) / median(bare):.2f}; "
        f"load average {os.getloadavg()[0]:.1f} at the end; {server.service.precision_text}"
    )


if __name__ == "__main__":
    with printed_result("bench_demo"):
        main()
