"""Fetching checkpoint files from the Hugging Face Hub: one download function, one cache probe, clear errors.

Everything goes through `huggingface_hub`, so its environment is honoured: `HF_HOME` / `HF_HUB_CACHE` (where
files are cached), `HF_HUB_OFFLINE` (no network; cached files only), `HF_ENDPOINT` (a mirror), `HF_TOKEN`,
resumed downloads, the size check and its progress bar. On top, a freshly downloaded file whose ETag is a
SHA-256 (the hub's id for large files) is hashed and removed from the cache again if it doesn't match, so a
corrupted download is never trusted later.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from huggingface_hub import constants, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK = 16 << 20


class DownloadError(OSError):
    """A checkpoint that could not be fetched (offline, not found, network or integrity failure); names the file."""


def cached_file(
    repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path | None:
    """The cached copy of `filename` from the hub repo `repo_id` at `revision` (default `main`), or None.

    Looks only at the local cache (no network).
    """
    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return Path(found) if isinstance(found, str) else None


def file_url(repo_id: str, filename: str, *, revision: str | None = None) -> str:
    """The URL `filename` of the hub repo `repo_id` is downloaded from (honours `HF_ENDPOINT`)."""
    return hf_hub_url(repo_id, filename, revision=revision)


def download_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    description: str | None = None,
    load_hint: str | None = None,
) -> Path:
    """Download `filename` from the hub model repo `repo_id` into the cache (once) and return its local path.

    A second call uses the cache (with one metadata request when online, none when offline). `description`
    (e.g. "model 'vit_hvm1_none'") goes into every error message; `load_hint`, the call that loads the file once
    fetched by hand, into the offline one. Raises `DownloadError` when offline with nothing
    cached, when the repo, revision or file doesn't exist, and when the network fails or the download is
    incomplete or corrupt; nothing broken is left in the cache for a later call to trust.
    """
    what = f"{filename}{f' ({description})' if description else ''} from the hub repo {repo_id}" + (
        f" at revision {revision}" if revision else ""
    )
    url = file_url(repo_id, filename, revision=revision)
    before = cached_file(repo_id, filename, revision=revision, cache_dir=cache_dir)
    try:
        path = Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir))
    except LocalEntryNotFoundError as error:
        default_hint = f"hvm1.load_model('/path/to/{filename}')"
        why = (
            "downloads are off (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE
            else f"the hub could not be reached ({_first_line(error)})"
        )
        raise DownloadError(
            f"{what} is not in the cache ({cache_dir or constants.HF_HUB_CACHE}) and {why}. Download it where "
            f"there is network (`hf download {repo_id} {filename}` or load it once by name), or fetch {url} by "
            f"hand and load the file by path: {load_hint or default_hint}"
        ) from None
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
