"""The photo storage adapters (services/ports.py ``PhotoStorage``): local files, and memory.

``LocalPhotoStorage`` keeps each photo in one file named by its SHA-256 under a two-letter
fan-out directory (``ab/abcd…``), written to a temporary file in the same directory and renamed
into place, so a reader never sees half a photo and two writers of the same picture write the
same bytes. A key that is not 64 hex digits is refused before any path is made from it.
``MemoryPhotoStorage`` keeps them in a dict (tests).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

__all__ = ["LocalPhotoStorage", "MemoryPhotoStorage"]

_KEY = re.compile(r"[0-9a-f]{64}")


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError("a photo's key is the SHA-256 of its bytes in lower-case hex")
    return key


class LocalPhotoStorage:
    """Photos as files under ``directory`` (created when first needed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        key = _checked(key)
        return self.directory / key[:2] / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return  # content-addressed: the same key holds the same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None


class MemoryPhotoStorage:
    """Photos in a dict: for tests, and nothing else (a restart forgets them)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self.files.setdefault(_checked(key), data)

    def get(self, key: str) -> bytes | None:
        return self.files.get(_checked(key))
