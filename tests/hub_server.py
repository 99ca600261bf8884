"""A local stand-in for the Hugging Face Hub's file endpoint, and helpers that point the hub client at it.

`FakeHub` answers `HEAD`/`GET /{repo}/resolve/{revision}/{filename}` on 127.0.0.1 with the headers
`huggingface_hub` needs (`Content-Length`, `ETag` = the content's SHA-256 as for the hub's large files,
`X-Repo-Commit`), a 404 with `X-Error-Code: EntryNotFound` for unknown files, answers `Range: bytes=A-B` with
206 and `Content-Range` as the hub's CDN does, counts the body bytes it sends (`sent`), and can misbehave on
purpose (`fault`): 'truncate' sends half the bytes (with a consistent, smaller `Content-Length`), 'corrupt'
sends as many bytes as promised but flips them, 'flip' flips the one byte at `flip_at` of the file (its headers
and ETag unchanged, as when the bytes are damaged on the way), 'ignore-range' answers every GET with 200 and the whole
file,
and 'cut' drops the connection half-way through a response once `cut_after` body bytes have gone out in all.
A file is `bytes`, or a `Path` served from disk (the benchmark's full-size file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from huggingface_hub import constants

from hvm1 import zoo
from hvm1.models import MAEConfig

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CHUNK = 1 << 20


@dataclasses.dataclass
class Sent:
    """One GET of a file: its path, the byte range asked for (None: the whole file) and the body bytes sent."""

    path: str
    range: tuple[int, int] | None
    nbytes: int = 0
    complete: bool = False


def _size(source: bytes | Path) -> int:
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def _sha256(source: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(16 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(source: bytes | Path, start: int, end: int):
    if isinstance(source, bytes):
        for at in range(start, end, _CHUNK):
            yield source[at : min(at + _CHUNK, end)]
        return
    with open(source, "rb") as f:
        f.seek(start)
        while start < end and (chunk := f.read(min(_CHUNK, end - start))):
            start += len(chunk)
            yield chunk


class FakeHub:
    """Serve `files[(repo_id, filename)] = bytes | Path` over HTTP until `stop()`; records the requests it saw
    (`requests`) and each file GET with the bytes it sent (`sent`)."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes | Path] = {}
        self.fault: str | None = None
        self.cut_after: int = 0
        self.flip_at: int = 0
        self.requests: list[tuple[str, str]] = []
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._etags: dict[tuple[int, int, float], str] = {}
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
                size = _size(data)
                asked = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", "") or "")
                start, end = (int(asked[1]), min(int(asked[2]) + 1, size)) if asked else (0, size)
                if asked and hub.fault == "ignore-range":
                    start, end, asked = 0, size, None
                if asked and not start < end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = end - start
                if send_body and hub.fault == "truncate":
                    length //= 2
                self.send_response(206 if asked else 200)
                self.send_header("Content-Length", str(length))
                if asked:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{hub.etag(data)}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if send_body:
                    self._send(data, start, start + length, (start, end - 1) if asked else None)

            def _send(self, data: bytes | Path, start: int, end: int, asked: tuple[int, int] | None) -> None:
                record = Sent(self.path, asked)
                with hub._lock:
                    hub.sent.append(record)
                position = start
                for chunk in _chunks(data, start, end):
                    if hub.fault == "corrupt":
                        chunk = bytes(b ^ 0xFF for b in chunk)
                    if hub.fault == "flip" and position <= hub.flip_at < position + len(chunk):
                        at = hub.flip_at - position
                        chunk = chunk[:at] + bytes([chunk[at] ^ 0x01]) + chunk[at + 1 :]
                    position += len(chunk)
                    if hub.fault == "cut":
                        with hub._lock:
                            allowed = max(0, hub.cut_after - hub.bytes_sent())
                        if allowed < len(chunk):
                            chunk = chunk[: min(allowed, (end - start) // 2)]
                            self._write(chunk, record)
                            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-response
                            self.close_connection = True
                            return
                    if not self._write(chunk, record):
                        return
                record.complete = True

            def _write(self, chunk: bytes, record: Sent) -> bool:
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up (e.g. on a 200 to a range)
                    self.close_connection = True
                    return False
                with hub._lock:
                    record.nbytes += len(chunk)
                return True

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def etag(self, data: bytes | Path) -> str:
        """The SHA-256 of a file (cached for one on disk, by size and modification time)."""
        if isinstance(data, bytes):
            return hashlib.sha256(data).hexdigest()
        stat = data.stat()
        key = (stat.st_ino, stat.st_size, stat.st_mtime)
        if key not in self._etags:
            self._etags[key] = _sha256(data)
        return self._etags[key]

    def bytes_sent(self) -> int:
        """The body bytes of files sent so far, all GETs together."""
        return sum(record.nbytes for record in self.sent)

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
