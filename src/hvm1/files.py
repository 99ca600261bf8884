"""Writing files atomically: the one writer every checkpoint, converted model and embedding file goes through.

A file is written to a temporary name in its own folder, flushed to disk, then renamed over the target, and
the folder is flushed too: whatever interrupts the write (a crash, Ctrl-C, a full disk), the target is either
the old file or the complete new one, never a torn one. The new file gets the permissions a plain `open(path,
"wb")` would give it: an existing file's mode, else 0666 less the umask (`tempfile.mkstemp` would make it
private, unreadable to others on a shared cluster).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a new temporary file beside `path`, then put that file in `path`'s place.

    The file is fsynced before the rename and its folder after; it gets the permissions a plain write would.
    Nothing is left behind when `write` raises, and `path` is then untouched.

    Args:
        path: the file to write; its folder is created when needed.
        write: called with the temporary file opened for binary writing (a writer that takes a file name may
            write to `handle.name` instead).

    Returns:
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)  # a plain write keeps an existing file's mode
    except FileNotFoundError:
        mode = None
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as handle:  # created as open(path, "wb") creates: 0666 less the umask
            if mode is None:
                mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            write(handle)
        # A writer that writes by name may have replaced the file (safetensors makes it private): sync and
        # set the mode of what is there now.
        _fsync(temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync(path.parent)  # the rename itself survives a crash
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically with `write_atomically`; returns the path.

    Args:
        path: the file.
        text: its text.

    Returns:
        The path.
    """
    data = text.encode("utf-8")
    return write_atomically(path, lambda handle: handle.write(data))


def check_writable(folder: str | os.PathLike) -> None:
    """Check that files can be created in a folder before work whose result goes there.

    So a read-only or wrong place fails in a second, not after hours. Creates nothing.

    Args:
        folder: the folder; where it does not exist yet, the nearest folder above it that does (where it
            would be made) is checked.

    Raises:
        OSError: files cannot be created there (the folder and the reason named)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise OSError(f"cannot write into {folder}: {existing} is a file, not a folder")
    probe = existing / f".hvm1-write-check-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.open("xb").close()
    except OSError as error:
        raise OSError(f"cannot write into {folder}: {error.strerror or error}") from None
    probe.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def output_folder(out_dir: str | os.PathLike | None, command: str) -> Path:
    """Where a command's files go: `out_dir` when given, else (the one rule of every command) a new folder
    `hvm1-COMMAND-DATE-*` in the temp folder, never the current one.

    Args:
        out_dir: The folder asked for, or None.
        command: The command's name, for the new folder's.

    Returns:
        The folder (a new one already exists; `out_dir` is made by whoever writes into it).
    """
    import tempfile
    import time

    if out_dir is not None:
        return Path(out_dir)
    return Path(tempfile.mkdtemp(prefix=f"hvm1-{command}-{time.strftime('%Y%m%d-%H%M%S')}-"))
