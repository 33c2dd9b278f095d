"""A JSON-lines file written whole lines at a time, from any thread, reopened by name.

    out = AppendFile(path)      # created 0600 (its directory 0700) if missing
    out.write(line)             # one O_APPEND write: lines never interleave; OSError if closed
    out.reopen()                # after logrotate moved it away: new lines go to the new file
    out.close()

The lock keeps a write from meeting a reopen's or close's os.close (a write on a closed,
or worse reused, descriptor); it is held for one small write. A line cut short by a
crash (power lost mid-write, a full disk) is ended when the file is opened, so the
next line does not run on from it and both stay readable apart.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class AppendFile:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._fd: int | None = self._open()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                write_all(fd, b"\n")
        except OSError:
            os.close(fd)
            raise
        return fd

    def write(self, line: bytes) -> None:
        with self._lock:
            if self._fd is None:
                raise OSError(f"{self.path} is closed")
            write_all(self._fd, line)

    def reopen(self) -> None:
        """Open the file by its name again; raises OSError (the old file stays in use)."""
        fd = self._open()
        with self._lock:
            old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of `data` is written: a nearly full disk writes part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
