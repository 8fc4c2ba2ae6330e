"""One client connection: read a frame, dispatch it, write the answer, in request order.

Kafka's guarantee is that a connection's responses come back in the order of its requests,
so each connection handles one request at a time. A frame that is negative, larger than
`socket.request.max.bytes`, or undecodable closes this connection with one log line naming
the peer and the reason; nothing else is affected. Disconnects are normal, not errors.
"""

from __future__ import annotations

import asyncio
import logging
import time

from odradek.protocol.frames import FrameError

log = logging.getLogger(__name__)

# Above this much unsent data we wait for the socket before reading the next request.
WRITE_HIGH_WATER_BYTES = 4 * 1024 * 1024


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dispatcher, max_request_bytes: int):
        self.reader = reader
        self.writer = writer
        self.dispatcher = dispatcher
        self.max_request_bytes = max_request_bytes
        peername = writer.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        self.busy = False
        self.closing = False
        self.last_active = time.monotonic()  # when the last request was answered (connections.max.idle.ms)
        transport = writer.transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER_BYTES)

    async def serve(self) -> None:
        try:
            while not self.closing:
                head = await self.reader.readexactly(4)
                size = int.from_bytes(head, "big", signed=True)
                if size < 0:
                    raise FrameError(f"negative frame size {size}")
                if size > self.max_request_bytes:
                    raise FrameError(
                        f"frame of {size} bytes is larger than socket.request.max.bytes {self.max_request_bytes}"
                    )
                frame = await self.reader.readexactly(size)
                self.busy = True
                try:
                    response = await self.dispatcher.dispatch(frame, self.peer)
                    if response is not None:
                        self.writer.write(response)
                        if self.writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER_BYTES:
                            await self.writer.drain()
                finally:
                    self.busy = False
                    self.last_active = time.monotonic()
        except FrameError as error:
            log.warning("Closing connection from %s: %s", self.peer, error)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("Closing connection from %s after an unexpected error", self.peer)
        finally:
            self.writer.close()
