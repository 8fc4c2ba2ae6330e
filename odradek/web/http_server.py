"""A small HTTP/1.1 server on the broker's event loop, for what operators and orchestrators read.

GET and HEAD only, one request per connection (Connection: close), a request head of at most
16 KiB that must arrive within 10 s, at most 64 connections at once (more wait unread), and the
answer written within 30 s: a slow or hostile HTTP client holds one of those slots, never the
Kafka listeners. A route is a coroutine returning (status, content type, body); heavy ones do
their work in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}

Route = Callable[[], Awaitable[tuple[int, str, bytes]]]


class HttpServer:
    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.host, self.port = host, port
        self.routes = routes
        self._server: asyncio.base_events.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host or None, self.port, reuse_address=True,
                                                      limit=MAX_HEAD_BYTES)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(exc.errno, f"cannot listen on {self.host or '0.0.0.0'}:{self.port} for HTTP: {reason}") from None
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._slots:
            try:
                status, content_type, body, head_only = await self._answer(reader)
                reason = REASONS.get(status, "")
                head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                writer.write(head if head_only else head + body)
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
            except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            return 431, "text/plain", b"request head too large\n", False
        except asyncio.IncompleteReadError as partial:
            head = partial.partial
            if not head:
                raise
        if len(head) > MAX_HEAD_BYTES:
            return 431, "text/plain", b"request head too large\n", False
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request line\n", False
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET and HEAD\n", False
        route = self.routes.get(urlsplit(target).path.rstrip("/") or "/")
        if route is None:
            return 404, "text/plain", b"not found\n", method == "HEAD"
        try:
            status, content_type, body = await route()
        except Exception:
            log.exception("HTTP %s %s failed", method, target)
            return 500, "text/plain", b"internal error; see the broker log\n", method == "HEAD"
        return status, content_type, body, method == "HEAD"
