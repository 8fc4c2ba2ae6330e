"""What the broker serves over HTTP on `metrics.listener`: Prometheus `/metrics`, `/health` (alive)
and `/ready` (serving, and in a cluster registered and caught up) for orchestrators, the admin REST
API under `/api` with its OpenAPI document, and the web console under `/ui`.

/health, /ready and the OpenAPI document answer everyone. Everything else asks who is calling when
`http.authentication.method` is BASIC, and what they may see when an authorizer is configured
(see http_auth).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from odradek.config import ConfigError
from odradek.security.acl import Operation, ResourceType
from odradek.web import openapi
from odradek.web.http_auth import HttpAuthenticator, HttpAuthorizer
from odradek.web.http_server import HttpError, HttpRequest, HttpResponse, HttpServer, Router, json_response
from odradek.web.metrics import BrokerCollector, registry_for

log = logging.getLogger(__name__)

UI_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
            ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}


def parse_listener(text: str) -> tuple[str, int]:
    """(host, port) of metrics.listener, e.g. http://127.0.0.1:9644; ConfigError otherwise."""
    url = urlsplit(text.strip())
    if url.scheme != "http" or not url.hostname or url.port is None or url.path not in ("", "/"):
        raise ConfigError(f"invalid value '{text}' for config 'metrics.listener': expected http://host:port, "
                          "for instance http://127.0.0.1:9644")
    return url.hostname, url.port


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _package_file(name: str) -> bytes | None:
    try:
        return resources.files("odradek.web").joinpath(name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


class OperatorEndpoints:
    def __init__(self, listener: str, collector: BrokerCollector, not_ready: Callable[[], list[str]], *,
                 authenticator: HttpAuthenticator, authorizer_of: Callable[[], object | None], rest=None,
                 node_id: int = 0, topic_stats=None) -> None:
        host, port = parse_listener(listener)
        self.registry = registry_for(collector)
        self.not_ready = not_ready
        self.authenticator = authenticator
        self.authorizer_of = authorizer_of
        self.rest = rest
        self.node_id = node_id
        self.topic_stats = topic_stats
        self._openapi: bytes | None = None
        self._scraping = asyncio.Lock()  # one scrape at a time: the lag history is not shared between threads
        router = Router()
        router.add("GET", "/", self.home)
        router.add("GET", "/metrics", self._authorized(self.metrics))
        router.add("GET", "/health", self.health)
        router.add("GET", "/ready", self.ready)
        router.add("GET", "/api/openapi.json", self.openapi)
        router.add("GET", "/api/odradek/throughput", self._authorized(self.throughput))
        router.add("GET", "/ui", self._authorized(self.ui_page))
        router.add("GET", "/ui/{asset}", self._authorized(self.ui_asset))
        if rest is not None:
            rest.routes(router, self._authorized)
        self.router = router
        self.server = HttpServer(host, port, self.application)
        if authenticator.method != "BASIC" and not _loopback(host):
            log.warning("metrics.listener %s serves /metrics, the REST API and the console without authentication "
                        "to everyone who can reach it (set http.authentication.method=BASIC)", listener)

    async def start(self) -> None:
        await self.server.start()
        log.info("Serving /metrics, /health, /ready, the REST API (/api) and the console (/ui) on http://%s:%d",
                 self.server.host or "0.0.0.0", self.server.port)

    async def stop(self) -> None:
        await self.server.stop()
        if self.rest is not None:
            await self.rest.close()

    async def application(self, request: HttpRequest) -> HttpResponse:
        handler, params = self.router.match(request.method, request.path)
        return await handler(request, **params)

    def _authorized(self, handler):
        """The handler gets the caller's HttpAuthorizer once they are authenticated."""
        async def authorized(request: HttpRequest, **params) -> HttpResponse:
            principal = await self.authenticator.principal(request)
            return await handler(request, HttpAuthorizer(self.authorizer_of, principal, request.peer), **params)
        return authorized

    async def home(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(302, headers=[("Location", "/ui")], body=b"see /ui\n")

    async def metrics(self, request: HttpRequest, auth: HttpAuthorizer) -> HttpResponse:
        auth.require(Operation.DESCRIBE, ResourceType.CLUSTER, "kafka-cluster")
        async with self._scraping:
            body = await asyncio.to_thread(generate_latest, self.registry)
        return HttpResponse(200, CONTENT_TYPE_LATEST, body)

    async def health(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, body=b"ok\n")

    async def ready(self, request: HttpRequest) -> HttpResponse:
        reasons = self.not_ready()
        body = json.dumps({"ready": not reasons, "waiting_for": reasons}).encode() + b"\n"
        return HttpResponse(503 if reasons else 200, "application/json", body)

    async def throughput(self, request: HttpRequest, auth: HttpAuthorizer) -> HttpResponse:
        """This broker's running totals of records and bytes in and out (the console's live
        throughput is their change between two reads)."""
        auth.require(Operation.DESCRIBE, ResourceType.CLUSTER, "kafka-cluster")
        total = self.topic_stats.total
        return json_response(200, {"node_id": self.node_id, "time_ms": int(time.time() * 1000),
                                   "messages_in": total.messages_in, "bytes_in": total.bytes_in,
                                   "bytes_out": total.bytes_out})

    async def openapi(self, request: HttpRequest) -> HttpResponse:
        if self._openapi is None:
            self._openapi = json.dumps(openapi.document(), indent=1).encode()
        return HttpResponse(200, "application/json", self._openapi)

    async def ui_page(self, request: HttpRequest, auth: HttpAuthorizer) -> HttpResponse:
        return await self.ui_asset(request, auth, "index.html")

    async def ui_asset(self, request: HttpRequest, auth: HttpAuthorizer, asset: str) -> HttpResponse:
        suffix = asset[asset.rfind("."):] if "." in asset else ""
        content = _package_file(f"ui/{asset}") if suffix in UI_TYPES and "/" not in asset and not asset.startswith(".") else None
        if content is None:
            raise HttpError(404, f"no such page: /ui/{asset}")
        return HttpResponse(200, UI_TYPES[suffix], content, [("Cache-Control", "no-cache")])
