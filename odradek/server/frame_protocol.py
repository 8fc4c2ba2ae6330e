"""Request frames received straight into buffers of their own (an asyncio.BufferedProtocol).

Why: through a StreamReader every byte a client sends is copied three times before a handler
sees it (the transport's bytes object, the reader's buffer, readexactly's result), and a
producer's requests are nearly all records that only go on to a log. Here the socket reads into
a small per-connection buffer until a frame's size is known, then directly into a bytearray of
that size. The frame is the broker's own, writable buffer: the Produce path patches offsets into
its records where they lie and writes them out (protocol/produce_request.py).

The scratch buffer is freed whenever it is empty, so an idle connection holds none. At most
SCRATCH_BYTES are read ahead of the frame the connection asks for; beyond that the
transport stops reading, and TCP's window holds the client back, as Kafka mutes a channel while
it serves one of its requests. TLS connections keep the StreamReader (StreamFrames): their bytes
are decrypted in this process anyway.
"""

from __future__ import annotations

import asyncio
import ctypes

SCRATCH_BYTES = 4 * 1024
_MIN_ROOM = 1024  # less free room than this at the scratch buffer's end: move what is unread to its start
_UNFILLED_MIN_BYTES = 32 * 1024  # below this, bytearray(size) is as cheap as the C call

try:
    _bytearray_from = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)(
        ("PyByteArray_FromStringAndSize", ctypes.pythonapi))
except (AttributeError, OSError):  # not CPython
    _bytearray_from = None


def unfilled_bytearray(size: int) -> bytearray:
    """A new bytearray of `size` bytes that are not zeroed first, for a frame the socket fills.

    bytearray(size) writes zeros over all of it, which took 5% of the broker's CPU under 300 MB/s of
    produce (perf: memset), only for the socket to overwrite them. CPython's C API makes the buffer
    without the zeros. It is never handed out before the socket has filled it (read_body)."""
    if size < _UNFILLED_MIN_BYTES or _bytearray_from is None:
        return bytearray(size)
    return _bytearray_from(None, size)


class FrameProtocol(asyncio.BufferedProtocol):
    """One plain connection's reading side; its writing side is an ordinary StreamWriter, whose
    drain() this protocol serves (as StreamReaderProtocol does; uvloop reads into a protocol's
    buffers only if it is not an asyncio.Protocol, so asyncio's FlowControlMixin cannot be used).

    `on_connection(frames, writer)` runs as the connection's task, as start_server's callback does.
    """

    def __init__(self, on_connection) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_connection = on_connection
        self._scratch = bytearray()  # SCRATCH_BYTES while it holds unread bytes, else empty
        self._start = 0  # unread bytes are _scratch[_start:_end]
        self._end = 0
        self._body: bytearray | None = None  # a frame being received directly, while read_body waits
        self._filled = 0
        self._waiter: asyncio.Future | None = None
        self._closed = False  # end of stream or connection lost: no more bytes will come
        self._reading_paused = False
        self._writing_paused = False
        self._drained: asyncio.Future | None = None  # drain() waits on it while writing is paused
        self._lost = False
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task | None = None

    # --- protocol side: called by the event loop ----------------------------------------------

    def connection_made(self, transport) -> None:
        self._transport = transport
        writer = asyncio.StreamWriter(transport, self, None, self._loop)
        self._task = self._loop.create_task(self._on_connection(self, writer))
        self._task.add_done_callback(lambda _task: transport.close())

    def connection_lost(self, exc) -> None:
        self._lost = self._closed = True
        self._wake()
        self._writable(exc)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._writable(None)

    def _writable(self, exc) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            if exc is None:
                drained.set_result(None)
            else:
                drained.set_exception(exc)

    async def _drain_helper(self) -> None:
        """StreamWriter.drain(): wait while the transport holds more than its high-water mark."""
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            return
        self._drained = self._loop.create_future()
        try:
            await self._drained
        finally:
            self._drained = None

    def eof_received(self) -> bool:
        self._closed = True
        self._wake()
        return True  # keep the transport open: the answer to a request already read still goes out

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._body is not None:
            return memoryview(self._body)[self._filled :]
        scratch = self._scratch
        if not scratch:  # freed when emptied (_consumed), so unread bytes start at 0 in a new one
            scratch = self._scratch = bytearray(SCRATCH_BYTES)
        elif len(scratch) - self._end < _MIN_ROOM and self._start > 0:
            unread = self._end - self._start
            scratch[:unread] = scratch[self._start : self._end]
            self._start, self._end = 0, unread
        return memoryview(scratch)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._body is not None:
            self._filled += nbytes
            if self._filled == len(self._body):
                self._body = None
                self._wake()
            return
        self._end += nbytes
        if self._end - self._start == len(self._scratch):
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    # --- connection side: awaited by the connection's task -------------------------------------

    async def read_size(self) -> int:
        """The next frame's 4-byte size (signed, as sent)."""
        while self._end - self._start < 4:
            await self._wait()
        start = self._start
        size = int.from_bytes(self._scratch[start : start + 4], "big", signed=True)
        self._start = start + 4
        self._consumed()
        return size

    async def read_body(self, size: int) -> bytearray:
        """The `size` bytes after a frame's size, as a new buffer."""
        body = unfilled_bytearray(size)
        have = min(self._end - self._start, size)
        if have:
            body[:have] = memoryview(self._scratch)[self._start : self._start + have]
            self._start += have
        if have < size:
            self._body, self._filled = body, have
        self._consumed()
        try:
            while self._body is body:
                await self._wait()
        finally:
            if self._body is body:  # cancelled (a slowloris swept away) or the client left
                self._body = None
        return body

    async def _wait(self) -> None:
        """Until the event loop has more bytes; IncompleteReadError (with what came of the frame)
        once no more will come."""
        if self._closed:
            if self._body is not None:
                partial = bytes(self._body[: self._filled])
            else:
                partial = bytes(self._scratch[self._start : self._end])
            raise asyncio.IncompleteReadError(partial, None)
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _consumed(self) -> None:
        """Bytes were taken from the scratch buffer: free it once empty (an idle connection then
        holds none), and read again if it had filled."""
        if self._start == self._end:
            self._scratch = bytearray()
            self._start = self._end = 0
        if self._reading_paused and not self._closed:
            self._reading_paused = False
            self._transport.resume_reading()


class StreamFrames:
    """The frames of a StreamReader (TLS connections), read as FrameProtocol's are."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def read_size(self) -> int:
        return int.from_bytes(await self.reader.readexactly(4), "big", signed=True)

    async def read_body(self, size: int) -> bytes:
        return await self.reader.readexactly(size)
