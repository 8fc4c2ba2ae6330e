"""One client connection: read a frame, dispatch it, write the answer, in request order.

Kafka's guarantee is that a connection's responses come back in the order of its requests,
so each connection handles one request at a time. A frame that is negative, larger than
`socket.request.max.bytes` (before SASL authentication, `sasl.server.max.receive.size`), or
undecodable closes this connection with one log line naming the peer and the reason; nothing
else is affected. Disconnects are normal, not errors. A request that takes longer than
`socket.request.receive.timeout.ms` (plus a second per MiB) to arrive once its size has is a
slowloris: the server's sweep closes the connection.

The connection's Session (security/session.py) says who is on it; after a SaslHandshake v0 the
next frames are raw SASL tokens, answered here without a request header, and a failed
authentication closes the connection once its answer is sent. A client over one of its quotas
gets its answer at once and then nothing more is read from it for the throttle time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from odradek.protocol.file_region import RegionGone
from odradek.protocol.frames import FrameError
from odradek.security.sasl import SaslAuthenticationFailed
from odradek.security.session import Session
from odradek.server.frame_protocol import FrameProtocol, StreamFrames
from odradek.server.region_writer import RegionWriter, read_regions

log = logging.getLogger(__name__)

# Above this much unsent data we wait for the socket before reading the next request.
WRITE_HIGH_WATER_BYTES = 4 * 1024 * 1024
# A request has socket.request.receive.timeout.ms to arrive, and one second more per MiB of it.
BYTES_PER_EXTRA_SECOND = 1024 * 1024


def peer_name(address) -> str:
    """host:port of a socket's peer address, as log lines name a client."""
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


class Connection:
    def __init__(self, frames: FrameProtocol | StreamFrames, writer: asyncio.StreamWriter, dispatcher,
                 max_request_bytes: int, session: Session | None = None, receive_timeout_s: float = 30.0):
        self.frames = frames
        self.session = session or Session()
        self.writer = writer
        self.dispatcher = dispatcher
        self.max_request_bytes = max_request_bytes
        self.peer = peer_name(writer.get_extra_info("peername"))
        self.busy = False
        self.closing = False
        self.last_active = time.monotonic()  # when the last request was answered (connections.max.idle.ms)
        self.receiving_until: float | None = None  # while a request arrives: when it must have (slowloris)
        self.receive_timeout_s = receive_timeout_s
        transport = writer.transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER_BYTES)
        # A Fetch's records go from the page cache to a plain socket with sendfile; TLS encrypts them
        # in this process, so there they are read and written through the transport.
        self.sends_regions = writer.get_extra_info("sslcontext") is None and writer.get_extra_info("socket") is not None
        self.region_writer: RegionWriter | None = None

    async def serve(self) -> None:
        try:
            while not self.closing:
                size = await self.frames.read_size()
                if size < 0:
                    raise FrameError(f"negative frame size {size}")
                session = self.session
                limit = session.frame_limit(self.max_request_bytes)
                if size > limit:
                    name = "socket.request.max.bytes" if session.authenticated else "sasl.server.max.receive.size"
                    raise FrameError(f"frame of {size} bytes is larger than {name} {limit}"
                                     + ("" if session.authenticated else " before authentication"))
                self.receiving_until = time.monotonic() + self.receive_timeout_s + size / BYTES_PER_EXTRA_SECOND
                frame = await self.frames.read_body(size)
                self.receiving_until = None
                self.busy = True
                try:
                    if session.state == "raw":
                        response = self._raw_sasl_token(frame)
                    else:
                        response = await self.dispatcher.dispatch(frame, self.peer, session)
                    if response is not None and self.writer.transport.is_closing():
                        break  # the client left while its request was served (a parked Fetch): no one to answer
                    if response is not None:
                        if isinstance(response, list):  # a Fetch: fields and records, in order
                            await self._write_chunks(response)
                        else:
                            self.writer.write(response)
                        if session.close_after_response or \
                                self.writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER_BYTES:
                            await self.writer.drain()
                finally:
                    self.busy = False
                    self.last_active = time.monotonic()
                if session.close_after_response:
                    break
                if session.throttle_ms > 0:  # over a client quota: its channel stays muted, as Kafka's does
                    await asyncio.sleep(session.throttle_ms / 1000)
                    session.throttle_ms = 0
        except (FrameError, RegionGone) as error:
            log.warning("Closing connection from %s: %s", self.peer, error)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("Closing connection from %s after an unexpected error", self.peer)
        finally:
            self.writer.close()
            if self.region_writer is not None:
                self.region_writer.close()

    async def _write_chunks(self, chunks: list) -> None:
        if not self.sends_regions:
            self.writer.writelines(read_regions(chunks))
            return
        if self.region_writer is None:
            self.region_writer = RegionWriter(self.writer.transport)
        await self.region_writer.write(chunks)

    def _raw_sasl_token(self, token: bytes) -> bytes:
        """A SASL token after SaslHandshake v0: the answer is the server's token, size-prefixed;
        a failure closes the connection (v0 has no way to carry an error)."""
        try:
            answer = self.session.authenticate(bytes(token))
        except SaslAuthenticationFailed as failure:
            raise FrameError(f"SASL authentication with {self.session.mechanism} failed: {failure}") from None
        return len(answer).to_bytes(4, "big") + answer
