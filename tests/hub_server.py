"""A local stand-in for the Hugging Face Hub's file endpoint, and helpers that point the hub client at it.

`FakeHub` answers `HEAD`/`GET /{repo}/resolve/{revision}/{filename}` on 127.0.0.1 with the headers
`huggingface_hub` needs (`Content-Length`, `ETag` = the content's SHA-256 as for the hub's large files,
`X-Repo-Commit`), a 404 with `X-Error-Code: EntryNotFound` for unknown files, and can misbehave on purpose
(`fault`): 'truncate' sends half the bytes (with a consistent, smaller `Content-Length` on the GET), 'corrupt'
sends as many bytes as promised but flips them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from huggingface_hub import constants

from hvm1 import zoo
from hvm1.models import MAEConfig

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serve `files[(repo_id, filename)] = bytes` over HTTP until `stop()`; records the requests it saw."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.fault: str | None = None
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(send_body=False)

            def do_GET(self) -> None:
                self._answer(send_body=True)

            def _answer(self, send_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = self.path.split("/resolve/", 1)
                repo_id = parts[0].lstrip("/")
                filename = unquote(parts[1].split("/", 1)[1]) if len(parts) == 2 and "/" in parts[1] else ""
                data = hub.files.get((repo_id, filename))
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data
                if send_body and hub.fault == "truncate":
                    body = data[: len(data) // 2]
                elif send_body and hub.fault == "corrupt":
                    body = bytes(b ^ 0xFF for b in data)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def file_requests(self) -> list[tuple[str, str]]:
        """The (method, path) of each request for a file (the client also asks the API other things)."""
        return [(method, path) for method, path in self.requests if "/resolve/" in path]

    def downloads(self) -> int:
        """How many file transfers (GET requests for a file) the server has answered."""
        return sum(method == "GET" for method, _ in self.file_requests())

    def stop(self) -> None:
        """Stop answering: later connections are refused, as with the network down."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def point_hub_client_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path) -> None:
    """Make `huggingface_hub` use `endpoint` and a cache under `hf_home`, online.

    The client reads `HF_ENDPOINT`, `HF_HOME` and `HF_HUB_OFFLINE` into `huggingface_hub.constants` at import,
    so the constants are patched along with the environment.
    """
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    set_offline(monkeypatch, False)


def set_offline(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    """Set `HF_HUB_OFFLINE` (environment and the client's constant)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


def use_tiny_architectures(monkeypatch: pytest.MonkeyPatch, tiny: MAEConfig, names: list[str]) -> None:
    """Test-only override: give the zoo entries `names` the tiny reference architecture (same family, width 64)
    in place of ViT-H, keeping their files, types and class counts (a head gets the tiny model's 7 classes)."""
    for name in names:
        entry = zoo.MODELS[name]
        config = tiny if entry.model_type == "mae" else tiny.encoder_config()
        if entry.num_classes:
            config = config.replace(num_classes=7)
        monkeypatch.setitem(zoo.MODELS, name, dataclasses.replace(entry, config=config))
