"""The disk's fsync rate, printed beside every benchmark figure (writes + fsyncs of 4 KiB)."""

from __future__ import annotations

import os
import tempfile
import time


def fsync_rate(seconds: float = 0.5, directory: str | None = None) -> float:
    """fsyncs per second of a 4 KiB overwrite in ``directory`` (default: the working dir)."""
    block = b"\0" * 4096
    with tempfile.NamedTemporaryFile(dir=directory or os.getcwd()) as f:
        fd = f.fileno()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.pwrite(fd, block, 0)
            os.fsync(fd)
            n += 1
        return n / (time.perf_counter() - start)


if __name__ == "__main__":
    print(f"fsync rate: {fsync_rate(1.0):,.0f}/s")
