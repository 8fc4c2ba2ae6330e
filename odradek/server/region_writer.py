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
loopback consumer's broker system time. A send that takes less than it was given means the
socket is full: the writer then waits for room rather than trying again at once (that try would
fail, and still push out what the socket holds).
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
        self._waiter: asyncio.Future | None = None  # set when the socket has room again
        self._watching = False  # the loop watches the socket for room, for the rest of this response

    def close(self) -> None:
        self._socket.close()  # closing twice does nothing

    async def write(self, chunks: list) -> None:
        """Send the chunks (bytes-like and FileRegions) in order; RegionGone or a ConnectionError
        when the response cannot be completed (the caller then closes the connection)."""
        if self._transport.get_write_buffer_size() or self._transport.is_closing():
            self._transport.writelines(read_regions(chunks))
            return
        try:
            await self._write(chunks)
        finally:
            if self._watching:
                self._watching = False
                self._loop.remove_writer(self._fd)

    async def _write(self, chunks: list) -> None:
        gathered: list = []
        for chunk in chunks:
            if type(chunk) is not FileRegion:
                gathered.append(chunk)
            elif chunk.length < SENDFILE_MIN_BYTES:
                gathered.append(chunk.read())
            else:
                if gathered:
                    await self._send(gathered)
                    gathered = []
                await self._sendfile(chunk)
        if gathered:
            await self._send(gathered)

    async def _sendfile(self, region: FileRegion) -> None:
        sent = 0
        while True:
            try:
                sent += region.send(self._fd, sent)
            except BlockingIOError:
                pass
            if sent >= region.length:
                return
            await self._room()

    async def _send(self, buffers: list) -> None:
        """Send the buffers, _IOV_MAX at a time; each batch but the last goes with MSG_MORE (its
        bytes are copied, so the next batch's join them in the same segment)."""
        first = 0  # buffers before this one are sent
        while first < len(buffers):
            end = min(first + _IOV_MAX, len(buffers))
            try:
                count = self._socket.sendmsg(buffers[first:end], (), 0 if end == len(buffers) else socket.MSG_MORE)
            except BlockingIOError:
                count = 0
            while first < end and count >= len(buffers[first]):
                count -= len(buffers[first])
                first += 1
            if first < end:  # the socket took part of them: it is full
                if count:
                    buffers[first] = memoryview(buffers[first])[count:]
                await self._room()

    async def _room(self) -> None:
        """Wait until the socket takes more (a consumer reading slower than we send).

        The loop keeps watching the socket until the response is written: a large Fetch waits
        for room many times, and each new registration costs the loop several system calls.
        Between its waits the writing never yields to the loop, so a socket with room wakes it at
        most once more than needed."""
        self._waiter = self._loop.create_future()
        if not self._watching:
            self._loop.add_writer(self._fd, self._wake)
            self._watching = True
        await self._waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
