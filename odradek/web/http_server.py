"""A small HTTP/1.1 server on the broker's event loop, for operators, orchestrators, the REST API and
the web console.

One request per connection (Connection: close), a request head of at most 16 KiB that must arrive
within 10 s, a body of at most 1 MiB (with Content-Length) within 30 s, at most 64 connections at
once (more wait unread), and the answer written within 30 s: a slow or hostile HTTP client holds
one of those slots, never the Kafka listeners. The application is one coroutine from HttpRequest
to HttpResponse; heavy work it does in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
HEAD_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 30.0
DISCARD_TIMEOUT_S = 2.0
DISCARD_MAX_BYTES = 16 * 1024 * 1024
MAX_CONNECTIONS = 64
REASONS = {200: "OK", 201: "Created", 204: "No Content", 302: "Found", 307: "Temporary Redirect", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           409: "Conflict", 411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # percent-decoded per segment by the router, raw here
    query: dict[str, str]  # the last value of each name
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""
    peer: str = ""  # the client's IP address

    def json(self):
        """The body as JSON; HttpError 400 (or 415 for another content type) otherwise."""
        content_type = self.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type not in ("application/json", "") and not content_type.endswith("+json"):
            raise HttpError(415, f"expected a JSON body (Content-Type: application/json), not {content_type}")
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None


@dataclass
class HttpResponse:
    status: int
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class HttpError(Exception):
    """An answer other than success, raised from anywhere below the application."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def json_response(status: int, value) -> HttpResponse:
    """`value` as JSON. A long "data" list is encoded an item at a time: one json.dumps of
    megabytes holds the GIL throughout, and from a worker thread that would stall the event loop."""
    data = value.get("data") if isinstance(value, dict) else None
    if not isinstance(data, list) or len(data) < 100:
        return HttpResponse(status, "application/json", json.dumps(value, separators=(",", ":")).encode())
    head = json.dumps({k: v for k, v in value.items() if k != "data"}, separators=(",", ":"))
    items = ",".join([json.dumps(item, separators=(",", ":")) for item in data])
    body = (head[:-1] + ("," if len(head) > 2 else "") + '"data":[' + items + "]}").encode()
    return HttpResponse(status, "application/json", body)


Application = Callable[[HttpRequest], Awaitable[HttpResponse]]
Handler = Callable[..., Awaitable[HttpResponse]]


class Router:
    """Routes by method and path pattern ("/api/v3/clusters/{cluster_id}"); a `{name}` segment
    matches one percent-decoded path segment and is passed to the handler as a keyword."""

    def __init__(self) -> None:
        self._routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        segments = tuple(pattern.strip("/").split("/"))
        for known, handlers in self._routes:
            if known == segments:
                handlers[method] = handler
                return
        self._routes.append((segments, {method: handler}))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and its path parameters; HttpError 404 or 405."""
        segments = [unquote(s) for s in path.strip("/").split("/")]
        for pattern, handlers in self._routes:
            params = _bind(pattern, segments)
            if params is None:
                continue
            handler = handlers.get("GET" if method == "HEAD" else method)  # others (TRACE, OPTIONS, ...): 405
            if handler is None:
                allowed = sorted(set(handlers) | ({"HEAD"} if "GET" in handlers else set()))
                raise HttpError(405, f"{method} is not allowed on {path}", [("Allow", ", ".join(allowed))])
            return handler, params
        raise HttpError(404, f"no such resource: {path}")


def _bind(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params = {}
    for expected, actual in zip(pattern, segments):
        if expected.startswith("{") and expected.endswith("}"):
            if not actual:
                return None
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params


class HttpServer:
    def __init__(self, host: str, port: int, application: Application) -> None:
        self.host, self.port = host, port
        self.application = application
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
                peer = writer.get_extra_info("peername")
                request_or_error = await self._read(reader, peer[0] if peer else "")
                if isinstance(request_or_error, HttpResponse):
                    response, head_only = request_or_error, False
                else:
                    response = await self._answer(request_or_error)
                    head_only = request_or_error.method == "HEAD"
                writer.write(_encode(response, head_only))
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
                if response.status in (411, 413):
                    await self._discard_unread_body(reader, writer)
            except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

    @staticmethod
    async def _discard_unread_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A body refused unread is still being sent: closing at once would reset the connection
        before the client reads why. Read and drop it for a moment (bounded) first."""
        writer.write_eof()
        try:
            async with asyncio.timeout(DISCARD_TIMEOUT_S):
                for _ in range(DISCARD_MAX_BYTES // 65536):
                    if not await reader.read(65536):
                        break
        except (asyncio.TimeoutError, ConnectionError):
            pass

    async def _read(self, reader: asyncio.StreamReader, peer: str) -> HttpRequest | HttpResponse:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            return _error(431, "request head too large")
        except asyncio.IncompleteReadError as partial:
            head = partial.partial
            if not head:
                raise
        if len(head) > MAX_HEAD_BYTES:
            return _error(431, "request head too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _error(400, "bad request line")
        method, target = parts[0], parts[1]
        if not method.isalpha() or not method.isupper():
            return _error(400, "bad request line")
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "transfer-encoding" in headers:
            return _error(411, "send the body with a Content-Length, not chunked")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            return _error(400, "bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            return _error(413, f"the body may be at most {MAX_BODY_BYTES} bytes")
        if length:
            try:
                body = await asyncio.wait_for(reader.readexactly(length), BODY_TIMEOUT_S)
            except asyncio.TimeoutError:
                return _error(408, "the body did not arrive in time")
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        return HttpRequest(method, url.path or "/", query, headers, body, peer)

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self.application(request)
        except HttpError as error:
            return _error(error.status, error.message, error.headers)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            return _error(500, "internal error; see the broker log")


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    """Errors as Confluent's REST Proxy writes them: {"error_code": ..., "message": ...}."""
    response = json_response(status, {"error_code": status, "message": message})
    response.headers.extend(headers or [])
    return response


def _encode(response: HttpResponse, head_only: bool) -> bytes:
    reason = REASONS.get(response.status, "")
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    body = b"" if response.status == 204 else response.body
    if response.status != 204:
        lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body
