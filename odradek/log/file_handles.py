"""Open file descriptors of segment files, bounded: a least-recently-used set shared by the broker.

Each segment has three files (`.log`, `.index`, `.timeindex`, and sometimes `.txnindex`); holding
all of them open would need three descriptors per segment, and 10,000 partitions would not fit in
a 20,000-descriptor limit. Kafka holds one per segment (its indexes are memory-mapped, their files
closed); here every file is opened on use and kept open while it stays among the `limit` most
recently used, then closed. All I/O is positional (pread, pwrite, ftruncate, fsync), so a file
reopened after eviction behaves exactly as before.

Use: `with handle as fd: os.pread(fd, ...)`. The descriptor is pinned for the duration of the
`with` block: it is never closed, and its number never reused, under a reader in another thread.
A handle knows which file it has open (`identity`, device and inode), so a Fetch response's
records, sent after the read (protocol/file_region.py), can tell whether the file they came from is
the one now open under that name. Its `memo` is what its reader keeps of the file between reads
(an index's last searched window): dropped when the file is closed, so what is kept is bounded
by the open files, not by the files there are.
Thread-safe; one lock for the whole set, held only for the bookkeeping around an open or a close.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

DEFAULT_LIMIT = 4096


class OpenFiles:
    """The set of open segment-file descriptors, at most `limit` of them unless all are in use."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = max(limit, 1)
        self._lock = threading.Lock()
        self._open: OrderedDict[FileHandle, None] = OrderedDict()  # least recently used first

    @property
    def count(self) -> int:
        return len(self._open)

    def set_limit(self, limit: int) -> None:
        with self._lock:
            self.limit = max(limit, 1)
            self._make_room(0)

    def _make_room(self, wanted: int) -> None:
        """Close least recently used, unpinned files until `wanted` more fit (caller holds the lock).
        Looks only as far into the set as it must: the oldest entries are nearly always unpinned."""
        excess = len(self._open) + wanted - self.limit
        if excess <= 0:
            return
        victims = []
        for handle in self._open:
            if handle.pins == 0:
                victims.append(handle)
                if len(victims) >= excess:
                    break
        for handle in victims:
            self._close(handle)

    def _close(self, handle: "FileHandle") -> None:
        fd, handle.fd = handle.fd, None
        handle.memo = None
        self._open.pop(handle, None)
        if fd is not None:
            os.close(fd)


OPEN_FILES = OpenFiles()


class FileHandle:
    """One file of a segment, opened (read-write, created if missing) when used."""

    __slots__ = ("path", "fd", "pins", "files", "identity", "memo")

    def __init__(self, path: Path, files: OpenFiles = OPEN_FILES) -> None:
        self.path = path
        self.fd: int | None = None
        self.pins = 0
        self.files = files
        self.identity: tuple[int, int] | None = None  # (device, inode) of the file last opened
        self.memo = None  # the reader's, kept while the file is open

    def __enter__(self) -> int:
        return self.pin()

    def __exit__(self, *exc) -> None:
        self.unpin()

    def pin(self, create: bool = True) -> int:
        """The open descriptor, kept open until unpin(). Opening creates the file unless `create`
        is false (FileNotFoundError then when it is gone: a reader of old data must not make it anew)."""
        files = self.files
        with files._lock:
            if self.fd is None:
                files._make_room(1)
                fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
                status = os.fstat(fd)
                self.fd, self.identity = fd, (status.st_dev, status.st_ino)
                files._open[self] = None
            else:
                files._open.move_to_end(self)
            self.pins += 1
            return self.fd

    def unpin(self) -> None:
        files = self.files
        with files._lock:
            self.pins -= 1
            if self.pins == 0 and len(files._open) > files.limit:
                files._make_room(0)

    @property
    def is_open(self) -> bool:
        return self.fd is not None

    def close(self) -> None:
        """Close now if nobody is using it (else it is closed once evicted)."""
        with self.files._lock:
            if self.pins == 0:
                self.files._close(self)

    def rename(self, path: Path) -> None:
        """Rename the file (if it exists) and keep using it under the new name."""
        with self.files._lock:
            if self.path.exists():
                os.rename(self.path, path)
            self.path = path
