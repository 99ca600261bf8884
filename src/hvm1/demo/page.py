"""The demo page (Gradio): upload a clip or take the sample, choose the mask, see the completion.

`build_page` lays the page out around a `DemoService`; `serve` starts it on one loopback port with
everything that would reach outside hosts switched off (usage analytics, version checks, share links,
web fonts), requests queued one at a time, and Gradio's files kept in the demo's temporary folder.
Every upload the server stores is counted in an `UploadLedger`, so a file that several visitors uploaded
is removed only once each of their requests has read it. A visitor sees the demo's own messages, which
name their file; anything else that goes wrong shows as a bare error, never a server path.
Imports Gradio, so only `pip install 'hvm1[demo]'` makes it importable.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvm1.data import VIDEO_EXTENSIONS
from hvm1.models.masking import MASK_TYPES
from hvm1.progress import Progress
from hvm1.viz import DEFAULT_MASK_RATIOS

from .service import DemoClips, DemoInputError, DemoResult, DemoService
from .uploads import UploadLedger

logger = logging.getLogger(__name__)

UPLOAD, SAMPLE = "your upload", "sample clip: moving shapes"
# Requests waiting beyond this many get "queue full" instead of waiting for minutes.
QUEUE_SIZE = 32
# Gradio's cache of sent results: checked this often, files older than this removed (seconds).
CACHE_SWEEP = (600, 3600)
# No "share" button (it posts to an outside host); download and full screen only.
_IMAGE_BUTTONS: list[Any] = ["download", "fullscreen"]  # Gradio types them as literals
# System fonts: Gradio's default theme would ask a web-font host for its fonts.
_FONTS = (["ui-sans-serif", "system-ui", "sans-serif"], ["ui-monospace", "monospace"])


def _environment_offline() -> None:
    """Switch off what Gradio and huggingface_hub would send to outside hosts; must precede `import gradio`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


@dataclass(frozen=True)
class _Upload:
    """The clip a visitor's session read last, kept in that session's state (never shared)."""

    key: str
    clips: DemoClips


def build_page(service: DemoService, sample_clip: Path, uploads: UploadLedger):
    """The Gradio Blocks page for `service`.

    Args:
        service: the models and work behind the page.
        sample_clip: the video "sample clip" stands for.
        uploads: the ledger `serve` counts stored uploads in; a request releases its upload once read.

    Returns:
        The page (`gradio.Blocks`), to start with `serve`.
    """
    _environment_offline()
    import gradio as gr

    def complete(last, source, upload, mask_type, mask_ratio, seed, score, progress=gr.Progress()):
        # A generator: the completion shows as soon as it is drawn, the scores and maps when they follow.
        name = Path(upload).name if upload and source == UPLOAD else "the sample clip"
        try:
            clips, last = _clips_for(service, uploads, last, source, upload, sample_clip)
            shown: DemoResult | None = None
            for result in service.stages(
                clips,
                mask_type,
                float(mask_ratio),
                int(seed or 0),
                _GradioProgress(progress),
                score=bool(score),
            ):
                yield (
                    last,
                    _summary(clips.name, result),
                    _score_table(result),
                    _unsent(result, shown, "picture", gr.skip()),
                    _unsent(result, shown, "animation", gr.skip()),
                    _unsent(result, shown, "attention", gr.skip()),
                    _unsent(result, shown, "feature_maps", gr.skip()),
                    class_table(result),
                )
                shown = result
        except DemoInputError as error:
            raise gr.Error(str(error), duration=None, title="This video can't be used") from None
        except Exception as error:  # the details (paths, traceback) go to the server's log, not to the visitor
            logger.exception("completing %s failed", name)
            raise gr.Error(
                f"{name} could not be completed: the demo failed ({type(error).__name__}); its log has the details",
                duration=None,
                title="Something went wrong",
            ) from None

    mae = service.mae.config
    with gr.Blocks(title="HVM-1 demo", analytics_enabled=False, delete_cache=CACHE_SWEEP) as page:
        gr.Markdown(
            f"# HVM-1: complete a masked video\n"
            f"Model **{service.mae_name}** ({mae.num_frames} frames of {mae.img_size} px; "
            f"{service.precision_text})"
            + (f", attention from **{service.vit_name}**" if service.vit is not None else "")
            + f". Videos up to {service.limits.max_megabytes:g} MB and {service.limits.max_seconds:g} s; "
            "the center clip is used. Uploads are deleted once read and never shown to anyone else."
        )
        last = gr.State(None)  # per visitor: the upload read last, so a rerun doesn't need it again
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.Radio([UPLOAD, SAMPLE], value=SAMPLE, label="Video", elem_id="hvm1-source")
                upload = gr.File(
                    label="Upload a video", file_types=list(VIDEO_EXTENSIONS), type="filepath", elem_id="hvm1-upload"
                )
                mask_type = gr.Radio(list(MASK_TYPES), value="center", label="Mask type", elem_id="hvm1-mask-type")
                mask_ratio = gr.Slider(
                    0.05,
                    0.95,
                    value=DEFAULT_MASK_RATIOS["center"],
                    step=0.05,
                    label="Mask ratio (fraction of patches removed)",
                    elem_id="hvm1-mask-ratio",
                )
                seed = gr.Number(0, precision=0, label="Seed (draws the random mask)", elem_id="hvm1-seed")
                score = gr.Checkbox(
                    True, label="Score against the baselines (PSNR, SSIM; takes a few seconds)", elem_id="hvm1-score"
                )
                run = gr.Button("Complete", variant="primary", elem_id="hvm1-run")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="hvm1-summary")
                scores = gr.Markdown(elem_id="hvm1-scores")
                picture = gr.Image(
                    label="original / masked / completion",
                    format="png",
                    interactive=False,
                    buttons=_IMAGE_BUTTONS,
                    elem_id="hvm1-completion",
                )
                animation: gr.Video | gr.Image
                if service.animation_format == "mp4":
                    animation = gr.Video(
                        label="the same over time",
                        interactive=False,
                        autoplay=True,
                        loop=True,
                        height=260,
                        elem_id="hvm1-animation",
                    )
                else:
                    animation = gr.Image(
                        label="the same over time", interactive=False, buttons=_IMAGE_BUTTONS, elem_id="hvm1-animation"
                    )
                attention = gr.Image(
                    label=f"last-block CLS attention ({service.vit_name})",
                    format="png",
                    interactive=False,
                    buttons=_IMAGE_BUTTONS,
                    visible=service.vit is not None,
                    elem_id="hvm1-attention",
                )
                features = gr.Image(
                    label=f"PCA of the patch features, 3 components as RGB ({service.vit_name})",
                    format="png",
                    interactive=False,
                    buttons=_IMAGE_BUTTONS,
                    visible=service.vit is not None,
                    elem_id="hvm1-pca",
                )
                classes = gr.Markdown(
                    visible=service.vit is not None and service.vit.class_names is not None, elem_id="hvm1-classes"
                )
        # Browser-side only, so they never wait behind a completion in the queue.
        upload.upload(None, None, source, js=f"() => {UPLOAD!r}")
        mask_type.change(None, mask_type, mask_ratio, js=f"(type) => ({DEFAULT_MASK_RATIOS!r})[type]")
        run.click(
            complete,
            [last, source, upload, mask_type, mask_ratio, seed, score],
            [last, summary, scores, picture, animation, attention, features, classes],
            concurrency_limit=1,
        )
    page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return page


def _unsent(result: DemoResult, shown: DemoResult | None, field: str, unchanged: Any) -> Any:
    """`result`'s picture `field` (an array or a file), or `unchanged` where the page shows that very picture already
    (`shown`, the run's last result sent): Gradio would otherwise write its file again, truncating it first, while
    the browser may still be reading it from the last result (a broken picture)."""
    value = getattr(result, field)
    return unchanged if shown is not None and value is not None and value is getattr(shown, field) else value


class _GradioProgress(Progress):
    """A run's `Progress` on Gradio's tracker, which takes (fraction done, what is happening now)."""

    def __init__(self, tracker) -> None:
        self.tracker = tracker
        self.total: int | None = None
        self.done = 0

    def start(self, total: int | None, unit: str = "item", label: str = "") -> None:
        self.total, self.done = total, 0

    def advance(self, done: int, item: str = "") -> None:
        self.done = done

    def note(self, message: str) -> None:
        self.tracker(self.done / self.total if self.total else 0.0, desc=message)

    def close(self) -> None:
        self.tracker(1.0, desc="done")


def _clips_for(
    service: DemoService,
    uploads: UploadLedger,
    last: _Upload | None,
    source: str,
    upload: str | None,
    sample_clip: Path,
) -> tuple[DemoClips, _Upload | None]:
    """The clips to complete and the session's new state. An upload is read once and released (the file goes
    when no other stored upload of it is still to be read)."""
    if source == SAMPLE:
        key = f"sample:{sample_clip}"
        if last is None or last.key != key:
            last = _Upload(key, service.read(sample_clip, name="the sample clip"))
        return last.clips, last
    if not upload:
        raise DemoInputError("no video uploaded yet: upload one, or choose the sample clip")
    if last is not None and last.key == upload:
        return last.clips, last
    path = Path(upload)
    try:
        clips = service.read(path)
    finally:
        uploads.release(path)
    return clips, _Upload(upload, clips)


class _CountUploads:
    """ASGI middleware around the page's server: each file an upload request stores (Gradio answers
    `POST .../upload` with the list of stored paths) is counted in `uploads` as one more upload to read."""

    def __init__(self, app: Any, uploads: UploadLedger) -> None:
        self.app, self.uploads = app, uploads

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope["path"].endswith("/upload"):
            await self.app(scope, receive, send)
            return
        status, body = 0, bytearray()

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        with self.uploads.arrival() as stored:
            await self.app(scope, receive, capture)
            if status == 200:
                stored.extend(_stored_paths(bytes(body)))


def _stored_paths(body: bytes) -> list[str]:
    try:
        paths = json.loads(body)
    except ValueError:
        paths = None
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        logger.warning("an upload's answer is not a list of stored paths; its files are not counted")
        return []
    return paths


def _summary(name: str, result: DemoResult) -> str:
    ratio = f"{result.mask_ratio:.2f}" + (f", seed {result.seed}" if result.mask_type == "random" else "")
    status = f"all done in {result.seconds:.2f} s" if result.done else "scores and maps follow"
    return (
        f"**{name}**: {result.mask_type} mask, ratio {ratio}; completed in **{result.completion_seconds:.2f} s** "
        f"({result.precision}); MAE loss {result.loss:.4f}; {status}"
    )


def class_table(result: DemoResult) -> str:
    """The ViT's top classes on the clip as a Markdown table (empty until the ViT's stage is done)."""
    if not result.top_classes:
        return ""
    rows = [f"| {ranked.rank} | {ranked.name} | {100 * ranked.probability:.1f}% |" for ranked in result.top_classes]
    return "\n".join(
        [
            "**What the ViT sees** (its top classes on this clip)",
            "",
            "| | class | probability |",
            "| --- | --- | --- |",
            *rows,
        ]
    )


def _score_table(result: DemoResult) -> str:
    """The scores as a Markdown table: the MAE first, then the baselines that need no model ('' unscored)."""
    if not result.scores:
        return ""
    rows = [f"| {score.method} | {score.psnr:.2f} | {score.ssim:.3f} |" for score in result.scores]
    return "\n".join(["| on the removed patches | PSNR (dB) | SSIM |", "| --- | --- | --- |", *rows])


def serve(
    page: Any,
    uploads: UploadLedger,
    host: str = "127.0.0.1",
    port: int | None = None,
    max_file_size: int | None = None,
) -> str:
    """Start `page` (from `build_page`) in a background thread on `host`:`port`; returns its local URL.

    No share link, no server-side rendering (it would start a Node server); only the demo's own messages
    are shown on the page (Gradio's details of other errors, server paths among them, go to the log).
    Every stored upload is counted in `uploads` (by a middleware); `max_file_size` (bytes) is refused by
    the upload itself. Stop it with `page.close()`.
    """
    import gradio as gr
    from starlette.middleware import Middleware

    theme = gr.themes.Default(font=_FONTS[0], font_mono=_FONTS[1])
    _, url, _ = page.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        ssr_mode=False,
        max_file_size=max_file_size,
        theme=theme,
        footer_links=[],
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        app_kwargs={"middleware": [Middleware(_CountUploads, uploads=uploads)]},
    )
    logger.info("demo page serving on %s", url)
    return url
