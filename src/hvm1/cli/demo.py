"""`hvm1 demo`: serve the completion demo page in the browser until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..settings import parse_overrides
from .common import _add_device_arg, _add_model_args, _add_precision_arg, _precision_for

DEFAULT_MAE = "mae_hvm1_none"


# Each command's one-line help, as `hvm1 -h` lists it without importing what the commands need.
COMMANDS = {
    "demo": "serve a page in the browser: upload a video, see the MAE complete it (needs hvm1[demo])",
}


def _load(source: str | Path, model_type: str, sets: list[str], device):
    from ..zoo import load_for_inputs

    loaded = load_for_inputs(source, model_type=model_type, device=device, **parse_overrides(sets))
    return loaded.model, loaded.stem, loaded.preprocessing


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _cmd_demo(args: argparse.Namespace) -> int:
    import threading

    from ..demo import UploadLimits, require_gradio, run_demo
    from ..devices import resolve_device

    try:
        require_gradio()
    except ImportError as error:
        print(f"hvm1 demo: error: {error}", file=sys.stderr)
        return 1
    device = resolve_device(args.device)
    mae_source = args.checkpoint or args.model or DEFAULT_MAE
    print(f"loading {mae_source}", file=sys.stderr)
    mae, mae_name, mae_pre = _load(mae_source, "mae", args.set, device)
    vit = vit_name = vit_pre = None
    if vit_source := args.vit_checkpoint or args.vit_model:
        print(f"loading {vit_source}", file=sys.stderr)
        vit, vit_name, vit_pre = _load(vit_source, "vit", args.vit_set, device)
    precision = _precision_for(args, device, models=(mae, vit))
    limits = UploadLimits(max_megabytes=args.max_upload_mb, max_seconds=args.max_seconds)
    # SIGTERM (a service manager, a test) stops the server as Ctrl-C does, so the temporary folder goes too.
    signal.signal(signal.SIGTERM, _interrupt)
    with run_demo(mae, mae_name=mae_name, mae_preprocessing=mae_pre, vit=vit, vit_name=vit_name,
                  vit_preprocessing=vit_pre, host=args.host, port=args.port, limits=limits,
                  precision=precision) as server:
        print(f"hvm1 demo: serving on {server.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("hvm1 demo: stopping", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help=COMMANDS["demo"]
    )
    _add_model_args(demo, required=False)  # neither: mae_hvm1_none
    vit = demo.add_mutually_exclusive_group()
    vit.add_argument("--vit-model", metavar="NAME",
                     help="also draw this zoo ViT's attention and PCA feature maps (e.g. vit_hvm1_none)")
    vit.add_argument("--vit-checkpoint", metavar="FILE", type=Path,
                     help="also draw attention and PCA feature maps with this file's ViT")
    demo.add_argument("--vit-set", action="append", default=[], metavar="FIELD=VALUE",
                      help="an architecture field of the ViT, as --set is for the MAE; repeatable")
    demo.add_argument("--host", default="127.0.0.1",
                      help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    demo.add_argument("--port", type=int, metavar="N", help="the port (default: 7860, or the next free one)")
    _add_device_arg(demo)
    _add_precision_arg(demo)
    demo.add_argument("--max-upload-mb", type=float, default=200.0, metavar="MB",
                      help="the largest upload taken, in MB (default 200)")
    demo.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                      help="the longest video taken, in seconds (default 600)")
    demo.set_defaults(func=_cmd_demo)
