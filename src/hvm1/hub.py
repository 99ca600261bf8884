"""Fetching checkpoint files from the Hugging Face Hub: the weights alone by default, or the whole file.

Everything goes through `huggingface_hub`, so its environment is honoured: `HF_HOME` / `HF_HUB_CACHE` (where
files are cached), `HF_HUB_OFFLINE` (no network; cached files only), `HF_ENDPOINT` (a mirror), `HF_TOKEN`, and
its progress-bar switches.

`fetch_weights` (every load by zoo name) fetches only what loading a published training checkpoint reads: the
zip archive's central directory at the end of the file, `data.pkl`, the small records, and the storages of the
`model` dict's tensors, in byte ranges several at a time, each record checked against the CRC-32 the central
directory gives. The result is the published file with the rest (the optimizer state, two thirds of it) left
as holes of zeros: a sparse file in the repo's cache folder under `hvm1-slim/COMMIT/`, which the one loader
memory-maps as it would the whole file. Verified records of an interrupted fetch are kept for the next call; a
server that ignores `Range` gets the whole-file download.

`download_file` is the whole-file download through `hf_hub_download` (resumed downloads, the size check, its
progress bar), and a fresh file whose ETag is a SHA-256 (the hub's id for large files) is hashed and removed
from the cache again if it doesn't match, so a corrupted download is never trusted later.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import pickle
import re
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import (
    WeakFileLock,
    build_hf_headers,
    hf_raise_for_status,
    http_stream_backoff,
    is_tqdm_disabled,
)
from huggingface_hub.utils import tqdm as hub_tqdm

from .checkpoint import WEIGHTS_KEYS, CheckpointError
from .files import write_atomically

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_HASH_CHUNK = 16 << 20
# The folder of a hub repo's cache that holds the weights-only files, beside the hub's blobs/refs/snapshots.
SLIM_FOLDER = "hvm1-slim"
# The first request reads this much of the file's end: the end-of-central-directory records and, for small
# archives, the whole directory (a published file's directory, ~1500 records, takes a second request).
TAIL_BYTES = 8 << 10
# Ranges are cut at record boundaries into pieces of at most this many bytes (a larger record is one piece);
# PARALLEL_REQUESTS of them are in flight at once; a piece cut off is resumed ATTEMPTS - 1 more times.
PIECE_BYTES = 64 << 20
PARALLEL_REQUESTS = 8
ATTEMPTS = 3
_READ_CHUNK = 1 << 20
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_LOCAL_HEADER_SIGNATURE = 0x04034B50


class DownloadError(OSError):
    """A checkpoint that could not be fetched (offline, not found, network or integrity failure); names the file."""


def _fspath(path: str | os.PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)


def cached_file(
    repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path | None:
    """The cached copy of the whole `filename` from the hub repo `repo_id` at `revision` (default `main`), or
    None. Looks only at the local cache (no network).

    Args:
        repo_id: the hub model repo.
        filename: the file in it.
        revision: the repo revision (default `main`).
        cache_dir: the hub cache folder (default: the `HF_*` environment's).

    Returns:
        The cached file, or None.
    """
    found = try_to_load_from_cache(repo_id, filename, cache_dir=_fspath(cache_dir), revision=revision)
    return Path(found) if isinstance(found, str) else None


def cached_weights(
    repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path | None:
    """The cached file the weights of `filename` load from without network: the whole file when the hub cache
    has it, else the weights-only file of a finished `fetch_weights`, else None.

    Args:
        repo_id: the hub model repo.
        filename: the file in it.
        revision: the repo revision (default `main`).
        cache_dir: the hub cache folder (default: the `HF_*` environment's).

    Returns:
        The cached file, or None.
    """
    if (whole := cached_file(repo_id, filename, revision=revision, cache_dir=cache_dir)) is not None:
        return whole
    repo_cache = _repo_cache(repo_id, cache_dir)
    commit = _cached_commit(repo_cache, revision)
    slim = repo_cache / SLIM_FOLDER / commit / filename if commit else None
    return slim if slim is not None and slim.is_file() else None


def is_weights_only(path: str | os.PathLike) -> bool:
    """Whether `path` is a weights-only file written by `fetch_weights` (the optimizer state left as zeros).

    Args:
        path: a checkpoint file.

    Returns:
        True for a weights-only file.
    """
    return Path(path).parent.parent.name == SLIM_FOLDER


def file_url(repo_id: str, filename: str, *, revision: str | None = None) -> str:
    """The URL `filename` of the hub repo `repo_id` is downloaded from (honours `HF_ENDPOINT`).

    Args:
        repo_id: the hub model repo.
        filename: the file in it.
        revision: the repo revision (default `main`).

    Returns:
        The URL.
    """
    return hf_hub_url(repo_id, filename, revision=revision)


def _what(repo_id: str, filename: str, revision: str | None, description: str | None) -> str:
    return f"{filename}{f' ({description})' if description else ''} from the hub repo {repo_id}" + (
        f" at revision {revision}" if revision else ""
    )


def _not_cached(
    what: str, why: str, repo_id: str, filename: str, url: str, cache_dir: Any, load_hint: str | None
) -> DownloadError:
    hint = load_hint or f"hvm1.load_model('/path/to/{filename}')"
    return DownloadError(
        f"{what} is not in the cache ({cache_dir or constants.HF_HUB_CACHE}) and {why}. Download it where "
        f"there is network (`hf download {repo_id} {filename}` or load it once by name), or fetch {url} by "
        f"hand and load the file by path: {hint}"
    )


def download_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    description: str | None = None,
    load_hint: str | None = None,
) -> Path:
    """Download the whole `filename` from the hub model repo `repo_id` into the cache (once), verified by its
    SHA-256 where the hub gives one, and return its local path.

    A second call uses the cache (with one metadata request when online, none when offline). `description`
    (e.g. "model 'vit_hvm1_none'") goes into every error message; `load_hint`, the call that loads the file once
    fetched by hand, into the offline one. Nothing broken is left in the cache for a later call to trust.

    Args:
        repo_id: the hub model repo.
        filename: the file in it.
        revision: the repo revision (default `main`).
        cache_dir: the hub cache folder (default: the `HF_*` environment's).
        description: what is being loaded, for error messages.
        load_hint: the call that loads the file once fetched by hand, for the offline message.

    Returns:
        The local path of the whole file.

    Raises:
        DownloadError: offline with nothing cached; the repo, revision or file doesn't exist; the network
            fails or the download is incomplete or corrupt.
    """
    what = _what(repo_id, filename, revision, description)
    url = file_url(repo_id, filename, revision=revision)
    before = cached_file(repo_id, filename, revision=revision, cache_dir=cache_dir)
    try:
        path = Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=_fspath(cache_dir)))
    except LocalEntryNotFoundError as error:
        why = (
            "downloads are off (HF_HUB_OFFLINE is set)"
            if constants.HF_HUB_OFFLINE
            else f"the hub could not be reached ({_first_line(error)})"
        )
        raise _not_cached(what, why, repo_id, filename, url, cache_dir, load_hint) from None
    except (EntryNotFoundError, RepositoryNotFoundError) as error:  # after LocalEntryNotFoundError, its subclass
        raise DownloadError(f"cannot download {what}: not found at {url} ({_first_line(error)})") from None
    except Exception as error:  # the hub client's HTTP, transport and consistency errors vary by version
        raise DownloadError(
            f"cannot download {what} ({url}): {type(error).__name__}: {_first_line(error)} (a partial download "
            f"is not kept in the cache)"
        ) from error
    if before is None or before.resolve() != path.resolve():
        _verify(path, what)
    return path


def fetch_weights(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    description: str | None = None,
    load_hint: str | None = None,
    full_download: bool = False,
) -> Path:
    """The local file to load the model weights of the checkpoint `filename` (a `torch.save` zip archive) of
    the hub repo `repo_id` from: fetched once, then from the cache with no network, offline included.

    Fetches only the weights (see the module docstring; the bytes are the published file's, CRC-32 checked,
    the optimizer state left as zeros) into a sparse file in the cache, with one progress bar in bytes on
    terminals (the hub client's `tqdm`, silenced as its own bars are). An interrupted fetch keeps its verified
    records and the next call fetches the rest. `full_download=True`, a server that ignores `Range`, or a
    file that is no zip of stored records gets the whole file (`download_file`), which then replaces a
    weights-only copy; a whole file already in the cache is used as it is.

    Args:
        repo_id: the hub model repo.
        filename: the checkpoint in it.
        revision: the repo revision (default `main`).
        cache_dir: the hub cache folder (default: the `HF_*` environment's).
        description: what is being loaded (e.g. "model 'vit_hvm1_none'"), for error messages.
        load_hint: the call that loads the file once fetched by hand, for the offline message.
        full_download: fetch the whole file.

    Returns:
        The local file to load the weights from.

    Raises:
        DownloadError: as `download_file` raises it, and for a record whose CRC-32 fails (named; it is
            fetched again on the next call, and nothing is loaded from it).
    """
    if full_download:
        whole = download_file(
            repo_id, filename, revision=revision, cache_dir=cache_dir, description=description, load_hint=load_hint
        )
        # The whole file supersedes a weights-only copy of the same commit (its snapshot folder's name); one
        # still mapped by a process (undeletable on Windows) stays.
        with contextlib.suppress(OSError):
            (_repo_cache(repo_id, cache_dir) / SLIM_FOLDER / whole.parent.name / filename).unlink(missing_ok=True)
        return whole
    if (found := cached_weights(repo_id, filename, revision=revision, cache_dir=cache_dir)) is not None:
        return found
    what = _what(repo_id, filename, revision, description)
    url = file_url(repo_id, filename, revision=revision)
    if constants.HF_HUB_OFFLINE:
        raise _not_cached(
            what, "downloads are off (HF_HUB_OFFLINE is set)", repo_id, filename, url, cache_dir, load_hint
        )
    from . import __version__

    headers = build_hf_headers(library_name="hvm1", library_version=__version__)
    try:
        metadata = get_hf_file_metadata(url, headers=headers)
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise DownloadError(f"cannot download {what}: not found at {url} ({_first_line(error)})") from None
    except HfHubHTTPError as error:
        raise DownloadError(f"cannot download {what} ({url}): {_first_line(error)}") from None
    except Exception as error:  # transport errors: their classes depend on the hub client's HTTP library
        why = f"the hub could not be reached ({type(error).__name__}: {_first_line(error)})"
        raise _not_cached(what, why, repo_id, filename, url, cache_dir, load_hint) from None
    download_whole = functools.partial(
        download_file,
        repo_id,
        filename,
        revision=revision,
        cache_dir=cache_dir,
        description=description,
        load_hint=load_hint,
    )
    if metadata.size is None or metadata.commit_hash is None:
        logger.info("%s: the hub gave no size or commit; downloading the whole file", what)
        return download_whole()
    # As the hub client does: a large file's bytes come from where the hub redirects (a CDN), which gets no token.
    location = url if getattr(metadata, "xet_file_data", None) is not None else metadata.location
    if _origin(location) != _origin(url):
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    repo_cache = _repo_cache(repo_id, cache_dir)
    target = repo_cache / SLIM_FOLDER / metadata.commit_hash / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    _remember_commit(repo_cache, revision, metadata.commit_hash)
    with WeakFileLock(repo_cache / SLIM_FOLDER / f"{metadata.commit_hash}.{filename}.lock"):
        if target.is_file():  # another process finished it meanwhile
            return target
        fetch = _WeightsFetch(location, headers, target, metadata.size, metadata.etag or "", what, filename)
        if fetch.run():
            return target
    return download_whole()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _repo_cache(repo_id: str, cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")


def _cached_commit(repo_cache: Path, revision: str | None) -> str | None:
    """The commit `revision` names, from the cache's refs as the hub client keeps them (no network)."""
    revision = revision or constants.DEFAULT_REVISION
    if _COMMIT.fullmatch(revision):
        return revision
    ref = repo_cache / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


def _remember_commit(repo_cache: Path, revision: str | None, commit: str) -> None:
    """Record `revision` -> `commit` in the cache's refs (the hub client's own layout), for offline loads."""
    revision = revision or constants.DEFAULT_REVISION
    if revision == commit:
        return
    ref = repo_cache / "refs" / revision
    if ref.is_file() and ref.read_text().strip() == commit:
        return
    write_atomically(ref, lambda handle: handle.write(commit.encode()))


@dataclass(frozen=True)
class _Record:
    """One entry of the archive: its name, the bytes from its local header to the next entry, and its check."""

    name: str
    start: int
    end: int
    size: int
    crc: int
    stored: bool


class _RangeIgnored(Exception):
    """The server answered a range request with the whole file."""


class _Cut(Exception):
    """A response that ended before the range it was asked for."""


class _WeightsFetch:
    """One weights-only fetch into `target`: resumable through `target.incomplete` and its `.json` state."""

    def __init__(
        self, url: str, headers: dict[str, str], target: Path, size: int, etag: str, what: str, filename: str
    ) -> None:
        self.url, self.headers, self.target, self.size, self.what, self.filename = (
            url,
            headers,
            target,
            size,
            what,
            filename,
        )
        self.partial = target.with_name(target.name + ".incomplete")
        self.state_path = target.with_name(target.name + ".incomplete.json")
        self.lock = threading.Lock()
        self.saving = threading.Lock()
        self.state: dict[str, Any] = {"etag": etag, "size": size, "tail": None, "directory": None, "verified": {}}
        # Entries verified by an earlier call: on disk, checked again from there (not fetched) before they count.
        self.earlier: dict[str, list[int]] = {}
        self.resumed = False
        if self.partial.is_file() and self.partial.stat().st_size == size and self.state_path.is_file():
            try:
                saved = json.loads(self.state_path.read_text())
            except (OSError, ValueError):
                saved = {}
            if (saved.get("etag"), saved.get("size")) == (etag, size):
                self.state = {**saved, "verified": {}}
                self.earlier = saved.get("verified", {})
                self.resumed = True
        self.bar: Any = None
        self.errors: list[str] = []
        self.damaged = False

    # ---- the fetch ------------------------------------------------------------------------------------------

    def run(self) -> bool:
        """Fetch what the weights need; True when `target` is complete, False when the whole file is needed."""
        with open(self.partial, "r+b" if self.resumed else "w+b") as handle:
            if not self.resumed:
                handle.truncate(self.size)  # a sparse file: the bytes never fetched take no disk space
            self.fd = handle.fileno()
            records = self._directory()
            if records is None:
                return self._give_up("the server ignores range requests")
            small = [r for r in records if _storage_key(r.name) is None]
            if not all(r.stored for r in small):
                return self._give_up("its records are compressed")
            self._fetch(small)
            self._raise_errors()
            pickle_record = next((r for r in small if r.name.endswith("/data.pkl") or r.name == "data.pkl"), None)
            if pickle_record is None:
                return self._give_up("it holds no data.pkl")
            try:
                keys = model_storage_keys(self._read_data(pickle_record))
            except CheckpointError as error:
                return self._give_up(str(error))
            needed = small + [r for r in records if _storage_key(r.name) in keys]
            if not all(r.stored for r in needed):
                return self._give_up("its records are compressed")
            self._check_on_disk(needed)
            directory = self.size - self.state["directory"]
            total = directory + sum(r.end - r.start for r in needed)
            done = directory + sum(r.end - r.start for r in needed if r.name in self.state["verified"])
            logger.info("%s: fetching %d of %d bytes (the model's weights)", self.what, total, self.size)
            hub_level = logging.getLogger("huggingface_hub").getEffectiveLevel()
            with hub_tqdm(
                total=total,
                initial=done,
                unit="B",
                unit_scale=True,
                desc=self.filename,
                disable=is_tqdm_disabled(hub_level),
                name="huggingface_hub.http_get",
            ) as self.bar:
                self._fetch(needed)
            self._raise_errors()
            handle.flush()
            os.fsync(self.fd)
        os.replace(self.partial, self.target)
        self.state_path.unlink(missing_ok=True)
        return True

    def _give_up(self, why: str) -> bool:
        logger.info("%s: downloading the whole file (%s)", self.what, why)
        self.partial.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)
        return False

    def _directory(self) -> list[_Record] | None:
        """The archive's records from its central directory (fetched once, kept in the partial file)."""
        if self.state["directory"] is None:
            tail_start = max(0, self.size - TAIL_BYTES)
            try:
                self._get(tail_start, self.size)
                start = self._directory_start(tail_start)
                if start < tail_start:
                    self._get(start, tail_start)
            except _RangeIgnored:
                return None
            except DownloadError:
                raise
            except Exception as error:  # noqa: BLE001 - HTTP and transport errors alike
                raise DownloadError(
                    f"cannot fetch the central directory of {self.what} ({self.url}): {type(error).__name__}: "
                    f"{_first_line(error)}"
                ) from None
            self.state.update(tail=tail_start, directory=start)
            self._save_state()
        try:
            with zipfile.ZipFile(self.partial) as archive:  # reads the end records and the directory only
                infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            self.state["directory"] = None
            self._save_state()
            raise DownloadError(
                f"{self.what}: its central directory is unreadable ({error}); trying again fetches it afresh"
            ) from None
        ends = [info.header_offset for info in infos[1:]] + [self.state["directory"]]
        return [
            _Record(
                info.filename,
                info.header_offset,
                end,
                info.file_size,
                info.CRC,
                info.compress_type == zipfile.ZIP_STORED,
            )
            for info, end in zip(infos, ends)
        ]

    def _directory_start(self, tail_start: int) -> int:
        tail = os.pread(self.fd, self.size - tail_start, tail_start)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            raise DownloadError(
                f"{self.what} is no zip archive (no end of central directory in its last {len(tail)} bytes)"
            )
        size, offset = struct.unpack_from("<II", tail, at + 12)
        if offset == 0xFFFFFFFF or size == 0xFFFFFFFF:  # zip64: the locator before it gives the zip64 record
            locator = tail.rfind(b"PK\x06\x07", 0, at)
            if locator < 0:
                raise DownloadError(f"{self.what}: a zip64 archive without its zip64 locator")
            (record,) = struct.unpack_from("<Q", tail, locator + 8)
            if record < tail_start:
                raise DownloadError(f"{self.what}: its zip64 end record lies outside the last {len(tail)} bytes")
            size, offset = struct.unpack_from("<QQ", tail, record - tail_start + 40)
        return offset

    def _check_on_disk(self, records: list[_Record]) -> None:
        """Check the records already on disk (from the tail fetch, or verified by an earlier call); a record
        that fails is fetched again."""
        for record in records:
            on_disk = record.name in self.earlier or record.start >= self.state["tail"]
            if on_disk and record.name not in self.state["verified"]:
                self._check(record, report=False)

    def _fetch(self, records: list[_Record]) -> None:
        """Fetch and check every record of `records` not verified yet, PARALLEL_REQUESTS pieces at a time."""
        self._check_on_disk(records)
        pieces = list(_pieces([r for r in records if r.name not in self.state["verified"]]))
        if pieces:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, len(pieces))) as pool:
                list(pool.map(self._fetch_piece, pieces))

    def _fetch_piece(self, piece: list[_Record]) -> None:
        """Fetch one piece, resuming from its first unchecked record when the response is cut short."""
        failure: BaseException | None = None
        for _ in range(ATTEMPTS):
            received = [piece[0].start]
            try:
                self._get(piece[0].start, piece[-1].end, received=received)
                failure = None
            except Exception as error:  # noqa: BLE001 - cut connections and HTTP errors alike: resume the piece
                failure = error
            whole = [r for r in piece if r.end <= received[0]]
            passed = all([self._check(r) for r in whole])
            self._save_state()
            if not passed:
                return  # a damaged record: named in the errors, fetched again by the next call
            piece = piece[len(whole) :]
            self._progress((piece[0].start if piece else received[0]) - received[0])  # a record cut short
            if not piece or isinstance(failure, _RangeIgnored):
                break
        if piece and failure is not None:
            with self.lock:
                self.errors.append(
                    f"bytes {piece[0].start}-{piece[-1].end - 1} could not be fetched "
                    f"({type(failure).__name__}: {_first_line(failure)})"
                )

    def _progress(self, count: int) -> None:
        if self.bar is not None and count:
            with self.lock:
                self.bar.update(count)

    def _get(self, start: int, end: int, *, received: list[int] | None = None) -> None:
        """Fetch bytes [start, end) into the partial file; `received[0]` follows how far it got."""
        headers = {**self.headers, "Range": f"bytes={start}-{end - 1}"}
        position = start
        with http_stream_backoff("GET", self.url, headers=headers) as response:
            hf_raise_for_status(response)
            if response.status_code != 206:
                raise _RangeIgnored(f"the server answered {response.status_code} to a range request")
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-{end - 1}/"):
                raise DownloadError(f"{self.what}: asked for bytes {start}-{end - 1}, got {content_range!r}")
            for chunk in response.iter_bytes(chunk_size=_READ_CHUNK):
                if position + len(chunk) > end:
                    raise DownloadError(f"{self.what}: the server sent more than bytes {start}-{end - 1}")
                os.pwrite(self.fd, chunk, position)
                position += len(chunk)
                if received is not None:
                    received[0] = position
                self._progress(len(chunk))
        if position != end:
            raise _Cut(f"the response ended at byte {position} of {start}-{end - 1}")

    def _check(self, record: _Record, *, report: bool = True) -> bool:
        """CRC-32 check of a record on disk: marks it verified, or (`report`) names it in the errors."""
        header = os.pread(self.fd, _LOCAL_HEADER.size, record.start)
        fields = _LOCAL_HEADER.unpack(header) if len(header) == _LOCAL_HEADER.size else None
        if fields is None or fields[0] != _LOCAL_HEADER_SIGNATURE:
            problem = "has no local header where the central directory puts it"
        else:
            data_start = record.start + _LOCAL_HEADER.size + fields[9] + fields[10]
            crc = 0
            for offset in range(data_start, data_start + record.size, _READ_CHUNK):
                crc = zlib.crc32(os.pread(self.fd, min(_READ_CHUNK, data_start + record.size - offset), offset), crc)
            if crc == record.crc:
                with self.lock:
                    self.state["verified"][record.name] = [record.start, record.end]
                return True
            problem = f"fails its CRC-32 check (0x{crc:08x}, the central directory says 0x{record.crc:08x})"
        if report:
            with self.lock:
                self.errors.append(f"the entry {record.name!r} {problem}")
                self.damaged = True
        return False

    def _read_data(self, record: _Record) -> bytes:
        header = _LOCAL_HEADER.unpack(os.pread(self.fd, _LOCAL_HEADER.size, record.start))
        return os.pread(self.fd, record.size, record.start + _LOCAL_HEADER.size + header[9] + header[10])

    def _raise_errors(self) -> None:
        if not self.errors:
            return
        if self.damaged:  # the central directory has no check of its own: the next call fetches it again (a few
            self.state["directory"] = None  # hundred kB) in case the damage was there; the verified entries
            self._save_state()  # are then checked against it from disk
        kept = sum(end - start for start, end in self.state["verified"].values())
        raise DownloadError(
            f"cannot fetch the weights of {self.what}: {'; '.join(self.errors)}. The {kept} bytes of verified "
            f"entries are kept in {self.partial} and nothing else of it is used: trying again fetches the rest"
        )

    def _save_state(self) -> None:
        """Record what is verified, for the next call should this one be interrupted (which checks those
        entries again from disk, so bytes a crash lost before reaching the disk are fetched again)."""
        with self.saving:  # one writer at a time, so a newer state is never replaced by an older one
            with self.lock:
                text = json.dumps(self.state).encode()
            write_atomically(self.state_path, lambda handle: handle.write(text))


def _storage_key(name: str) -> str | None:
    """`K` for an archive record `PREFIX/data/K` (a tensor storage), else None."""
    parts = name.split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "data" else None


def _pieces(records: list[_Record]) -> Iterator[list[_Record]]:
    """Runs of adjacent records, cut at record boundaries into pieces of at most PIECE_BYTES."""
    piece: list[_Record] = []
    for record in records:
        if piece and (record.start != piece[-1].end or record.end - piece[0].start > PIECE_BYTES):
            yield piece
            piece = []
        piece.append(record)
    if piece:
        yield piece


def _verify(path: Path, what: str) -> None:
    """Check a fresh download against its blob name when that is a SHA-256; on mismatch, evict it and raise."""
    blob = path.resolve()
    if not _SHA256.fullmatch(blob.name):
        return
    logger.info("verifying the SHA-256 of %s", path.name)
    digest = hashlib.sha256()
    with open(blob, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() == blob.name:
        return
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)
    raise DownloadError(
        f"the download of {what} is corrupt: its SHA-256 is {digest.hexdigest()}, the hub says {blob.name}; it "
        f"was removed from the cache, so trying again downloads it afresh"
    )


# ---- which storages of a zip checkpoint hold the weights (read without unpickling anything) -----------


class _Inert(dict):
    """What every global of a scanned pickle becomes: records its arguments and state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.inert_args = (args, kwargs)

    def __setstate__(self, state: Any) -> None:
        self.inert_state = state

    def append(self, item: Any) -> None:
        self.setdefault("_items", []).append(item)

    def extend(self, items: Any) -> None:
        self.setdefault("_items", []).extend(items)


@dataclass(frozen=True)
class _StorageRef:
    key: str


class _StorageScanner(pickle.Unpickler):
    """Unpickles a `data.pkl` into inert stand-ins: no global is imported, every storage becomes its key."""

    def find_class(self, module: str, name: str) -> type:
        return type(name, (_Inert,), {"__module__": "hvm1.inert." + module})

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return _StorageRef(str(pid[2]))


def _storage_keys(obj: Any) -> set[str]:
    keys, stack, seen = set(), [obj], set()
    while stack:
        item = stack.pop()
        if isinstance(item, _StorageRef):
            keys.add(item.key)
        elif id(item) not in seen:
            seen.add(id(item))
            if isinstance(item, Mapping):
                stack.extend(item.values())
            if isinstance(item, (list, tuple)):
                stack.extend(item)
            if isinstance(item, _Inert):  # NEWOBJ builds one without calling __init__
                args, kwargs = getattr(item, "inert_args", ((), {}))
                stack.extend((*args, *kwargs.values(), getattr(item, "inert_state", None)))
    return keys


def model_storage_keys(data_pkl: bytes) -> set[str]:
    """The storage keys (`K` of the archive's `data/K` entries) that hold the model's weights in a zip
    checkpoint whose pickle is `data_pkl`: those reached from `model`, `model_state` or `state_dict` when the
    top-level dict has one, else (a bare state dict) all of them.

    Nothing is constructed while reading (every global becomes an inert stand-in), so this is safe on any file.

    Args:
        data_pkl: the archive's `data.pkl` bytes.

    Returns:
        The storage keys of the weights.

    Raises:
        CheckpointError: the pickle is corrupt or names no storage for the weights.
    """
    try:
        obj = _StorageScanner(io.BytesIO(data_pkl), encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise CheckpointError(f"cannot read the checkpoint's pickle: {type(error).__name__}: {error}") from None
    if isinstance(obj, Mapping):
        obj = next((obj[key] for key in WEIGHTS_KEYS if key in obj), obj)
    if not (keys := _storage_keys(obj)):
        raise CheckpointError("the checkpoint's pickle holds no tensor storages for the model's weights")
    return keys
