"""`hvm1 demo` as a command: its settings, and serving the page until interrupted."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hvm1.models import VideoMAE, VideoViT
from hvm1.progress import SILENT, Progress
from hvm1.reports import Report
from hvm1.settings import DeviceSettings, ModelSettings, setting

__all__ = ["DEFAULT_MAE", "DemoConfig", "DemoReport", "serve_demo"]

#: The MAE the demo serves when none is named.
DEFAULT_MAE = "mae_hvm1_none"


@dataclass(frozen=True, kw_only=True)
class DemoConfig(ModelSettings, DeviceSettings):
    """`hvm1 demo`: the MAE (default `DEFAULT_MAE`), an optional ViT, where to listen and what uploads to take."""

    model: str | None = setting(
        None, metavar="NAME", help=f"a zoo MAE name (default {DEFAULT_MAE}); its weights are fetched once"
    )
    vit_model: str | None = setting(
        None,
        metavar="NAME",
        help="also draw this zoo ViT's attention and PCA feature "
        "maps, and a finetuned one's top-5 classes (e.g. vit_hvm1_ssv2-50shot)",
    )
    vit_checkpoint: Path | None = setting(
        None, metavar="FILE", help="also draw attention and PCA feature maps with this file's ViT"
    )
    vit_overrides: dict[str, Any] = setting(
        default_factory=dict,
        option="--vit-set",
        metavar="FIELD=VALUE",
        help="an architecture field of the ViT, as --set is for the MAE; repeatable",
    )
    host: str = setting("127.0.0.1", help="the address to listen on (127.0.0.1: this machine only; 0.0.0.0 for all)")
    port: int | None = setting(None, metavar="N", help="the port (default: 7860, or the next free one)")
    max_upload_mb: float = setting(200.0, metavar="MB", help="the largest upload taken, in MB")
    max_seconds: float = setting(600.0, metavar="S", help="the longest video taken, in seconds")


@dataclass
class DemoReport(Report):
    """What a demo served: its address (the page is gone once `serve_demo` returns)."""

    url: str = ""


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve_demo(config: DemoConfig, progress: Progress = SILENT) -> DemoReport:
    """`hvm1 demo`: load the models, serve the page (`run_demo`) until Ctrl-C, then stop it and clean up.

    In the main thread, SIGTERM (a service manager, a test) stops it as Ctrl-C does, so the temporary folder
    goes too.

    Args:
        config: The command's settings.
        progress: Told what loads, the precision, the address served and the stop.

    Returns:
        The address that was served.

    Raises:
        ValueError: Both `vit_model` and `vit_checkpoint`, or a bad limit.
        ImportError: Gradio (hvm1[demo]) is not installed.
    """
    from hvm1.devices import resolve_device
    from hvm1.inference import precision_for_run
    from hvm1.zoo import load_for_command

    from . import UploadLimits, require_gradio, run_demo

    require_gradio()
    if config.vit_model is not None and config.vit_checkpoint is not None:
        raise ValueError("give one of --vit-model NAME and --vit-checkpoint FILE, not both")
    device = resolve_device(config.device)
    progress.note(f"loading {config.model_source or DEFAULT_MAE}")
    mae = load_for_command(config, model_type="mae", device=device, default=DEFAULT_MAE, progress=progress)
    vit = None
    vit_settings = ModelSettings(
        model=config.vit_model,
        checkpoint=config.vit_checkpoint,
        overrides=config.vit_overrides,
        full_download=config.full_download,
    )
    if vit_settings.model_source is not None:
        progress.note(f"loading {vit_settings.model_source}")
        vit = load_for_command(vit_settings, model_type="vit", device=device, progress=progress)
    precision = precision_for_run(config.precision, device, (mae.model, vit.model if vit else None), progress)
    limits = UploadLimits(max_megabytes=config.max_upload_mb, max_seconds=config.max_seconds)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    with run_demo(
        cast(VideoMAE, mae.model),
        mae_name=mae.stem,
        mae_preprocessing=mae.preprocessing,
        vit=cast(VideoViT, vit.model) if vit else None,
        vit_name=vit.stem if vit else None,
        vit_preprocessing=vit.preprocessing if vit else None,
        host=config.host,
        port=config.port,
        limits=limits,
        precision=precision,
    ) as server:
        progress.note(f"hvm1 demo: serving on {server.url} (Ctrl-C stops)")
        progress.keeping("the demo stopped; its temporary folder is removed")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            progress.note("hvm1 demo: stopping")
    return DemoReport(url=server.url)
