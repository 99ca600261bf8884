"""`hvm1 demo`: a page in the browser where anyone can upload a clip and see an HVM-1 MAE complete it.

`DemoService` (no web dependencies) does the work: one shared model, upload limits, one run at a time.
`run_demo` puts it on a Gradio page (`pip install 'hvm1[demo]'`) in a temporary folder that holds
everything written, and removes it when the server stops.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hvm1.devices import Precision
from hvm1.models import VideoMAE, VideoViT
from hvm1.zoo import Preprocessing

from .service import DemoClips, DemoInputError, DemoResult, DemoService, UploadLimits
from .uploads import UploadLedger

logger = logging.getLogger(__name__)

__all__ = [
    "DemoClips",
    "DemoInputError",
    "DemoResult",
    "DemoServer",
    "DemoService",
    "UploadLedger",
    "UploadLimits",
    "require_gradio",
    "run_demo",
]


def require_gradio() -> None:
    """Raise ImportError saying how to install the demo extra when Gradio is not installed (without
    importing it: Gradio fixes its temporary folder when imported, and `run_demo` chooses that folder)."""
    if importlib.util.find_spec("gradio") is None:
        raise ImportError("the demo needs Gradio, which is not installed: pip install 'hvm1[demo]'")


@dataclass(frozen=True)
class DemoServer:
    """A running demo: its local `url`, the `service` behind it and the temporary `workdir` it writes in."""

    url: str
    service: DemoService
    workdir: Path


@contextlib.contextmanager
def run_demo(
    mae: VideoMAE,
    *,
    mae_name: str,
    mae_preprocessing: Preprocessing | None = None,
    vit: VideoViT | None = None,
    vit_name: str | None = None,
    vit_preprocessing: Preprocessing | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    limits: UploadLimits = UploadLimits(),
    precision: Precision | str = "fp32",
) -> Iterator[DemoServer]:
    """Serve the demo page for `mae` (and `vit`'s attention maps, both at `precision`) on `host`:`port` while
    the block runs.

    Makes a temporary folder (the sample clip, results, and Gradio's uploads and cache, through
    `GRADIO_TEMP_DIR`, which stays set: Gradio's threads may still look at it), starts the page in a
    background thread, and on leaving stops it and removes the folder. Binds to loopback unless `host`
    says otherwise; `port` None takes Gradio's default (7860, or the next free one). Gradio reads
    `GRADIO_TEMP_DIR` partly when first imported, so serve once per process, before importing Gradio.

    Args:
        mae: the MAE that completes the videos.
        mae_name: its name on the page and in file names.
        mae_preprocessing: how its inputs are read (default: the model's own).
        vit: a ViT for the attention and PCA maps, if any.
        vit_name: its name.
        vit_preprocessing: how its inputs are read.
        host: the address to bind (default loopback).
        port: the port (None: Gradio's default, 7860, or the next free one).
        limits: the largest upload and the longest video taken.
        precision: the precision both models run at.

    Yields:
        The `DemoServer`: its URL, the service and the temporary folder, while the page is served.

    Raises:
        ImportError: Gradio is not installed (`pip install 'hvm1[demo]'`).
    """
    require_gradio()
    from hvm1.viz import SAMPLE_NAME, make_sample_clip

    from .page import build_page, serve

    with tempfile.TemporaryDirectory(prefix="hvm1-demo-") as scratch:
        workdir = Path(scratch)
        os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
        page = None
        try:
            sample = make_sample_clip(workdir / SAMPLE_NAME)
            service = DemoService(
                mae,
                workdir,
                mae_name=mae_name,
                mae_preprocessing=mae_preprocessing,
                vit=vit,
                vit_name=vit_name,
                vit_preprocessing=vit_preprocessing,
                limits=limits,
                precision=precision,
            )
            uploads = UploadLedger()
            page = build_page(service, sample, uploads)
            url = serve(page, uploads, host, port, max_file_size=limits.max_bytes)
            yield DemoServer(url, service, workdir)
        finally:
            if page is not None:
                page.close()
