"""Uploads that visitors share without knowing it, and when their stored file may go.

Gradio stores an upload at a path named by its content (`GRADIO_TEMP_DIR/HASH/NAME`), so visitors who upload
the same file get the same path, and a request that deleted "its" upload once read would take it from under
another visitor whose request has not run yet. `UploadLedger` counts, per stored path, the uploads that
stored it and that no request has read yet: a request that has read its upload `release`s one, and the file
goes when none is left, never while an upload is still being received (it may be storing that path again).
The page counts uploads as they are stored; this module knows nothing of the web.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


class UploadLedger:
    """How many stored uploads of each path are still to be read; removes a file when none is.

    Thread-safe: uploads arrive on the web server's event loop, requests read on worker threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unread: Counter[Path] = Counter()
        self._arriving = 0
        self._to_remove: set[Path] = set()  # read by all, waiting for the uploads being received to finish

    @contextlib.contextmanager
    def arrival(self) -> Iterator[list[str]]:
        """Hold this around receiving one upload request and put the paths it stored in the list it yields:
        each is then needed by one more request. Files released meanwhile are removed only afterwards."""
        stored: list[str] = []
        with self._lock:
            self._arriving += 1
        try:
            yield stored
        finally:
            with self._lock:
                self._arriving -= 1
                for path in map(Path, stored):
                    self._unread[path] += 1
                    self._to_remove.discard(path)  # stored again: needed again
                self._remove_unneeded()

    def release(self, path: str | os.PathLike) -> None:
        """A request has read the upload at `path` (or failed to): one need fewer. The file, and its folder
        when that is then empty, is removed once no stored upload of it is unread and none is arriving.

        Args:
            path: the upload's file.
        """
        path = Path(path)
        with self._lock:
            if self._unread[path] > 1:
                self._unread[path] -= 1
                return
            del self._unread[path]
            self._to_remove.add(path)
            self._remove_unneeded()

    def unread(self, path: str | os.PathLike) -> int:
        """How many stored uploads of `path` no request has read yet.

        Args:
            path: the upload's file.

        Returns:
            The count.
        """
        with self._lock:
            return self._unread[Path(path)]

    def _remove_unneeded(self) -> None:
        # Under the lock, so that no upload starts storing a path between the check and the removal.
        if self._arriving:
            return
        for path in self._to_remove:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()
            except OSError:  # not empty: the same content uploaded under another name shares the folder
                pass
            logger.debug("removed the upload %s", path.name)
        self._to_remove.clear()
