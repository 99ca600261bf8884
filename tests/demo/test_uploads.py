"""The upload ledger: a file that several visitors uploaded (Gradio stores identical content at one path)
goes only when every upload of it has been read, and never while an upload is being received."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hvm1.demo import UploadLedger


def store(path: Path, content: bytes = b"video bytes") -> str:
    """What Gradio's upload does: the file at a path named by its content, renamed into place by each upload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    received = path.parent / f".{threading.get_ident()}.part"
    received.write_bytes(content)
    os.replace(received, path)
    return str(path)


def test_identical_uploads_each_get_their_read(tmp_path):
    ledger = UploadLedger()
    path = tmp_path / "gradio" / "HASH" / "cup.mp4"
    for _ in range(3):  # three visitors upload the same file: one path
        with ledger.arrival() as stored:
            stored.append(store(path))
    assert ledger.unread(path) == 3
    ledger.release(path)
    ledger.release(path)
    assert path.is_file() and ledger.unread(path) == 1  # the third visitor's request has not run yet
    ledger.release(path)
    assert not path.exists() and not path.parent.exists()  # its folder too, once empty
    ledger.release(path)  # a request for a file already gone changes nothing
    assert ledger.unread(path) == 0


def test_the_same_content_under_another_name_keeps_the_folder(tmp_path):
    ledger = UploadLedger()
    first, second = tmp_path / "HASH" / "a.mp4", tmp_path / "HASH" / "b.mp4"
    with ledger.arrival() as stored:
        stored.extend([store(first), store(second)])
    ledger.release(first)
    assert not first.exists() and second.is_file()
    ledger.release(second)
    assert not (tmp_path / "HASH").exists()


def test_a_file_read_by_all_waits_while_an_upload_is_arriving(tmp_path):
    ledger = UploadLedger()
    path = tmp_path / "HASH" / "cup.mp4"
    with ledger.arrival() as stored:
        stored.append(store(path))
    with ledger.arrival() as arriving:  # a new upload, perhaps of this very content, is being received
        ledger.release(path)  # the first visitor's request has read it
        assert path.is_file()
        arriving.append(store(path))
    assert path.is_file() and ledger.unread(path) == 1  # the new upload needs it
    with ledger.arrival():
        ledger.release(path)
        assert path.is_file()
    assert not path.exists()  # removed once the other upload (of something else) was received


def test_many_visitors_at_once(tmp_path):
    ledger = UploadLedger()
    path = tmp_path / "HASH" / "cup.mp4"
    seen: list[bool] = []
    start = threading.Barrier(8)

    def visitor() -> None:
        start.wait()
        with ledger.arrival() as stored:
            stored.append(store(path))
        seen.append(path.read_bytes() == b"video bytes")  # the request reads its upload...
        ledger.release(path)  # ... and releases it

    threads = [threading.Thread(target=visitor) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [True] * 8 and not path.exists() and ledger.unread(path) == 0
