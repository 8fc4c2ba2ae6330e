"""The listener and its lifecycle: accept connections; on stop, let in-flight requests finish.

bind() takes the port before the broker touches its data (a second broker on a busy port fails
without having read or written anything); start() begins accepting once the broker is ready.

Shutdown order (uvicorn's): stop accepting, ask connections to stop after their current
request, release parked fetches, wait up to a grace period, then cancel what is left.

Accepted sockets get `socket.send.buffer.bytes` as SO_SNDBUF and the listening socket
`socket.receive.buffer.bytes` as SO_RCVBUF (which accepted sockets inherit), as Kafka sets them; -1
leaves the kernel's autotuning, the receive side's default here (not Kafka's): a fixed window stalls
a producer while the one event loop serves other connections.

A connection that has sent no request for `connections.max.idle.ms` is closed, as Kafka does, and
one trickling a request slower than `socket.request.receive.timeout.ms` allows (a slowloris); a
sweep a few times per period finds them, so the request path pays nothing for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable

from odradek.security.session import Session
from odradek.server.connection import Connection, peer_name
from odradek.server.connection_limits import ConnectionLimits
from odradek.server.frame_protocol import FrameProtocol, StreamFrames
from odradek.server.tls_transport import accept_tls

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0
TLS_HANDSHAKE_TIMEOUT_S = 10.0  # a client that opens TLS and never finishes is dropped after this


class _TlsServer:
    """The part of asyncio's Server a TLS listener needs, accepting by hand so that each
    connection's handshake is awaited (server/tls_transport.py): a failure (garbage instead of a
    TLS hello, an untrusted or missing client certificate, a client that never finishes) is one log
    line, OpenSSL's alert to the client, and a closed socket."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, on_connection) -> None:
        family = socket.AF_INET6 if ":" in (host or "") else socket.AF_INET
        self._socket = socket.create_server((host or "", port), family=family, backlog=1024)
        self._socket.setblocking(False)
        self.context = context
        self._on_connection = on_connection
        self._accepting: asyncio.Task | None = None
        self._handshakes: set[asyncio.Task] = set()

    @property
    def sockets(self) -> list[socket.socket]:
        return [self._socket]

    async def start_serving(self) -> None:
        if self._accepting is None:
            self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._handshakes):
            task.cancel()
        self._socket.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, address = await loop.sock_accept(self._socket)
            except OSError as error:  # out of descriptors: wait, as a kernel backlog would
                log.warning("Accepting a TLS connection failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._handshake(connection, address))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, connection: socket.socket, address) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        peer = peer_name(address)
        try:
            transport = await accept_tls(loop, connection, self.context, protocol, TLS_HANDSHAKE_TIMEOUT_S)
        except asyncio.CancelledError:
            connection.close()
            raise
        except Exception as error:  # noqa: BLE001 - whatever the client did, it gets the alert and a closed socket
            reason = getattr(error, "reason", None) or str(error) or error.__class__.__name__
            log.info("Failed authentication with %s (SSL handshake failed: %s)", peer, reason)
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._on_connection(StreamFrames(reader), writer)


class SocketServer:
    def __init__(self, dispatcher, host: str, port: int, *, max_request_bytes: int, max_idle_ms: int = 600_000,
                 receive_timeout_ms: int = 30_000,
                 on_stopping=None, ssl_context: ssl.SSLContext | None = None,
                 session_factory: Callable[[asyncio.StreamWriter], Session] | None = None,
                 listener_name: str = "PLAINTEXT", limits: ConnectionLimits | None = None,
                 send_buffer_bytes: int = 102400, receive_buffer_bytes: int = -1) -> None:
        self.dispatcher = dispatcher
        self.send_buffer_bytes = send_buffer_bytes
        self.receive_buffer_bytes = receive_buffer_bytes
        self.listener_name = listener_name
        self.limits = limits
        self.ssl_context = ssl_context
        self.session_factory = session_factory
        self.host = host
        self.port = port
        self.max_request_bytes = max_request_bytes
        self.max_idle_s = max_idle_ms / 1000
        self.receive_timeout_s = receive_timeout_ms / 1000
        self.on_stopping = on_stopping
        self._server: asyncio.base_events.Server | None = None
        self._connections: dict[asyncio.Task, Connection] = {}
        self._waiting: set[asyncio.Task] = set()  # connections held back by max.connections or the creation rate
        self._sweeper: asyncio.Task | None = None

    async def bind(self) -> None:
        """Bind the listening socket without accepting; OSError with one line if the port is taken."""
        try:
            if self.ssl_context is None:
                self._server = await asyncio.get_running_loop().create_server(
                    lambda: FrameProtocol(self._accept), self.host or None, self.port, reuse_address=True,
                    start_serving=False)
            else:
                self._server = _TlsServer(self.host, self.port, self.ssl_context, self._accept)
        except OSError as exc:
            where = f"{self.host or '0.0.0.0'}:{self.port}"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(exc.errno, f"cannot listen on {where}: {reason}") from None
        sockets = self._server.sockets
        if self.receive_buffer_bytes != -1:
            for listening in sockets:
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_bytes)
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def busy_count(self) -> int:
        """Connections with a request being handled now."""
        return sum(1 for connection in list(self._connections.values()) if connection.busy)

    def set_ssl_context(self, context: ssl.SSLContext) -> None:
        """Serve new connections with another TLS context (a key store replaced while running);
        connections already open keep theirs, as in Kafka."""
        self.ssl_context = context
        if isinstance(self._server, _TlsServer):
            self._server.context = context

    async def start(self) -> None:
        """Accept connections (after bind())."""
        await self._server.start_serving()
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._close_idle_connections())

    async def _close_idle_connections(self) -> None:
        interval = min(max(self.max_idle_s / 4, 0.05), max(self.receive_timeout_s / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for task, connection in list(self._connections.items()):
                if connection.receiving_until is not None and now > connection.receiving_until:
                    log.warning("Closing connection from %s: its request did not arrive in time "
                                "(socket.request.receive.timeout.ms)", connection.peer)
                    task.cancel()
                elif not connection.busy and now - connection.last_active >= self.max_idle_s:
                    log.debug("Closing connection from %s: idle for %.0f ms (connections.max.idle.ms)",
                              connection.peer, (now - connection.last_active) * 1000)
                    task.cancel()

    async def go_dark(self) -> None:
        """Stop listening and drop every connection: this broker is cut off from its cluster, and
        clients should ask the other brokers (cluster mode; see membership.py)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections) + list(self._waiting):
            task.cancel()
        log.warning("Listener %s:%d closed until this broker is back in its cluster", self.host, self.port)

    async def come_back(self) -> None:
        if self._server is None:
            await self.bind()
            await self.start()
            log.info("Listener %s:%d open again", self.host, self.port)

    async def _accept(self, frames: FrameProtocol | StreamFrames, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        peername = writer.get_extra_info("peername")
        ip = peername[0] if isinstance(peername, tuple) else str(peername)
        if limits is not None:
            waiting = asyncio.current_task()
            self._waiting.add(waiting)
            try:
                admitted = await limits.admit(self.listener_name, ip)
            except asyncio.CancelledError:
                writer.transport.abort()
                raise
            finally:
                self._waiting.discard(waiting)
            if not admitted:
                writer.transport.abort()
                return
        if self.send_buffer_bytes != -1:
            accepted = writer.get_extra_info("socket")
            if accepted is not None:
                accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        try:
            session = self.session_factory(writer) if self.session_factory is not None else None
            connection = Connection(frames, writer, self.dispatcher, self.max_request_bytes, session,
                                    self.receive_timeout_s)
            task = asyncio.current_task()
            self._connections[task] = connection
            try:
                await connection.serve()
            finally:
                self._connections.pop(task, None)
        finally:
            if limits is not None:
                await limits.release(self.listener_name, ip)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for task in list(self._waiting):
            task.cancel()
        for task, connection in list(self._connections.items()):
            connection.closing = True
            if not connection.busy:
                task.cancel()
        if self.on_stopping is not None:
            self.on_stopping()
        if self._connections:
            _done, pending = await asyncio.wait(list(self._connections), timeout=SHUTDOWN_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
