"""Bytes of a file that a response carries without holding them: a Fetch partition's records.

The log answers a read with a FileRegion (which file, from where, how many bytes) instead of the
bytes themselves; the connection then sends it from the page cache to the socket with
`os.sendfile`, or, where it cannot (TLS, data already waiting in the transport), reads it with one
pread just before writing. Either way the records never pass through an encoder or a Python copy
held beyond the write, and an in-flight fetch costs a few objects, not its size in memory.

Between the read and the send the file may change: truncated by a follower that diverged, or
deleted and its descriptor closed. The region then refuses (RegionGone) rather than send other
bytes than it promised; the response is half-written by then, so its connection is closed, as
Kafka closes one whose FileRecords were truncated under a send.
"""

from __future__ import annotations

import os


class RegionGone(OSError):
    """The file no longer holds the region: the response cannot be completed."""


class FileRegion:
    """`length` bytes of an open file from `position`.

    `file` is the log's handle of the file (log/file_handles.py): `pin(create=False)` gives its
    descriptor (reopening it by name if it was closed), `unpin()` releases it, and `identity` says
    which file it has open; the region remembers the identity of the file it was read from.
    """

    __slots__ = ("file", "position", "length", "identity")

    def __init__(self, file, position: int, length: int, identity) -> None:
        self.file = file
        self.position = position
        self.length = length
        self.identity = identity

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"FileRegion({self.file.path}, position={self.position}, length={self.length})"

    def read(self) -> bytes:
        """The region's bytes, read now."""
        fd = self.pin()
        try:
            data = os.pread(fd, self.length, self.position)
        finally:
            self.unpin()
        if len(data) != self.length:
            raise RegionGone(f"{self.file.path} was cut short under a read of {self!r}")
        return data

    def send(self, socket_fd: int, file_fd: int, sent: int) -> int:
        """Send what follows the first `sent` bytes to a non-blocking socket with sendfile, from
        the descriptor pin() gave; how many bytes went (BlockingIOError when the socket takes none
        now)."""
        count = os.sendfile(socket_fd, file_fd, self.position + sent, self.length - sent)
        if count == 0:
            raise RegionGone(f"{self.file.path} was cut short under a send of {self!r}")
        return count

    def pin(self) -> int:
        """The file's descriptor, kept open until unpin(): while a send waits for room, the bytes
        it goes on with come from the file it started with."""
        file = self.file
        try:
            fd = file.pin(create=False)
        except FileNotFoundError:
            raise RegionGone(f"{file.path} was deleted before {self!r} was sent") from None
        if file.identity != self.identity:
            file.unpin()
            raise RegionGone(f"{file.path} was replaced before {self!r} was sent")
        return fd

    def unpin(self) -> None:
        self.file.unpin()
