"""A Fetch response written straight to a plain TCP socket: its fields with sendmsg, its records
from the page cache with sendfile (protocol/file_region.py), so the broker copies none of them.

The transport (uvloop's) stays the connection's writer for everything else. This writes only when
the transport has nothing waiting, so the bytes leave in order; through a duplicate of the
socket's descriptor, its own to wait on for room and to close, never one that a closed transport
could hand to another connection. When the transport has data waiting, or the connection is TLS
(Connection never makes a RegionWriter then), regions are read with one pread each and written
through the transport instead.

Small regions are read and gathered with the fields around them into one write: below
SENDFILE_MIN_BYTES, two system calls per partition cost more than the copy they save. The fields
before a region leave at once, in a segment of their own, as Kafka sends them. Held back with
MSG_MORE for the region's first segment they would take one of the 17 pieces a segment holds;
the region's pages, starting mid-page, then fill the other 16 before the segment is full, TCP
keeps the short segment until the next one is ready, and the two leave back to back, which a
paced socket (BBR, the fq qdisc) spaces with a timer: thousands of timers per GB, most of a
loopback consumer's broker system time. When the socket is full, the loop's writer callback goes
on with the response as room appears.
"""

from __future__ import annotations

import asyncio
import os
import socket

from odradek.protocol.file_region import FileRegion

SENDFILE_MIN_BYTES = 16 * 1024
_IOV_MAX = 1024  # buffers one sendmsg takes (Linux's IOV_MAX)


def read_regions(chunks: list) -> list:
    """The chunks with every region read into bytes: for a writer that cannot send regions."""
    return [chunk.read() if type(chunk) is FileRegion else chunk for chunk in chunks]


class RegionWriter:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._socket = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        self._socket.setblocking(False)  # already so: the duplicate shares the transport's file status
        self._fd = self._socket.fileno()
        self._loop = asyncio.get_running_loop()
        self._items: list = []  # the response being written: runs of buffers and FileRegions
        self._at = 0  # items before this one are sent
        self._progress = 0  # of items[_at]: bytes of a region sent, or buffers of a run
        self._file_fd: int | None = None  # items[_at]'s descriptor while it is a region being sent
        self._done: asyncio.Future | None = None  # while the loop writes the rest: set when it has

    def close(self) -> None:
        self._socket.close()  # closing twice does nothing

    async def write(self, chunks: list) -> None:
        """Send the chunks (bytes-like and FileRegions) in order; RegionGone or a ConnectionError
        when the response cannot be completed (the caller then closes the connection).

        What the socket does not take at once, the loop's writer callback sends as room appears,
        in that callback: a 6 MiB Fetch finds the socket full dozens of times (about a hundred
        through the Java consumer's 64 KiB receive window), and each refill then costs one
        callback, not a future and a resumed stack of coroutines."""
        if self._transport.get_write_buffer_size() or self._transport.is_closing():
            self._transport.writelines(read_regions(chunks))
            return
        self._items, self._at, self._progress = _gather(chunks), 0, 0
        try:
            if self._send_more():
                return
            self._done = self._loop.create_future()
            self._loop.add_writer(self._fd, self._on_room)
            try:
                await self._done
            finally:
                self._loop.remove_writer(self._fd)
                self._done = None
        finally:
            if self._file_fd is not None:
                self._items[self._at].unpin()
                self._file_fd = None
            self._items = []

    def _on_room(self) -> None:
        done = self._done
        if done is None or done.done():
            return
        try:
            if self._send_more():
                done.set_result(None)
        except Exception as failure:  # RegionGone, a closed connection: write() raises it
            done.set_exception(failure)

    def _send_more(self) -> bool:
        """Send items until the socket is full (False) or all are sent (True). A send that takes
        less than it was given means the socket is full: the writer then waits for room rather
        than trying again at once (that try would fail, and still push out what the socket holds)."""
        items = self._items
        while self._at < len(items):
            item = items[self._at]
            if type(item) is FileRegion:
                if self._file_fd is None:
                    self._file_fd = item.pin()
                try:
                    self._progress += item.send(self._fd, self._file_fd, self._progress)
                except BlockingIOError:
                    return False
                if self._progress < item.length:
                    return False
                item.unpin()
                self._file_fd = None
            elif not self._send_run(item):
                return False
            self._at += 1
            self._progress = 0
        return True

    def _send_run(self, buffers: list) -> bool:
        """Send a run of buffers from buffers[_progress], _IOV_MAX at a time; each batch but the
        last goes with MSG_MORE (its bytes are copied, so the next batch's join them in the same
        segment). False when the socket took only part of them (_progress then says where to go on)."""
        first = self._progress
        while first < len(buffers):
            end = min(first + _IOV_MAX, len(buffers))
            try:
                count = self._socket.sendmsg(buffers[first:end], (), 0 if end == len(buffers) else socket.MSG_MORE)
            except BlockingIOError:
                count = 0
            while first < end and count >= len(buffers[first]):
                count -= len(buffers[first])
                first += 1
            if first < end:
                if count:
                    buffers[first] = memoryview(buffers[first])[count:]
                self._progress = first
                return False
        return True


def _gather(chunks: list) -> list:
    """The chunks as they are sent: runs of buffers, one sendmsg each, between the regions sent
    with sendfile; a region smaller than SENDFILE_MIN_BYTES is read into its run."""
    items: list = []
    run: list = []
    for chunk in chunks:
        if type(chunk) is not FileRegion:
            run.append(chunk)
        elif chunk.length < SENDFILE_MIN_BYTES:
            run.append(chunk.read())
        else:
            if run:
                items.append(run)
                run = []
            items.append(chunk)
    if run:
        items.append(run)
    return items
