"""What the broker serves over HTTP on `metrics.listener`: Prometheus `/metrics`, and `/health`
(alive) and `/ready` (serving, and in a cluster registered and caught up) for orchestrators."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from odradek.config import ConfigError
from odradek.web.http_server import HttpServer
from odradek.web.metrics import BrokerCollector, registry_for

log = logging.getLogger(__name__)


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


class OperatorEndpoints:
    def __init__(self, listener: str, collector: BrokerCollector, not_ready: Callable[[], list[str]]) -> None:
        host, port = parse_listener(listener)
        self.registry = registry_for(collector)
        self.not_ready = not_ready
        self._scraping = asyncio.Lock()  # one scrape at a time: the lag history is not shared between threads
        self.server = HttpServer(host, port, {"/metrics": self.metrics, "/health": self.health, "/ready": self.ready})
        if not _loopback(host):
            log.warning("metrics.listener %s serves /metrics, /health and /ready without authentication to "
                        "everyone who can reach it", listener)

    async def start(self) -> None:
        await self.server.start()
        log.info("Serving /metrics, /health and /ready on http://%s:%d", self.server.host or "0.0.0.0", self.server.port)

    async def stop(self) -> None:
        await self.server.stop()

    async def metrics(self) -> tuple[int, str, bytes]:
        async with self._scraping:
            body = await asyncio.to_thread(generate_latest, self.registry)
        return 200, CONTENT_TYPE_LATEST, body

    async def health(self) -> tuple[int, str, bytes]:
        return 200, "text/plain; charset=utf-8", b"ok\n"

    async def ready(self) -> tuple[int, str, bytes]:
        reasons = self.not_ready()
        body = json.dumps({"ready": not reasons, "waiting_for": reasons}).encode() + b"\n"
        return (503 if reasons else 200), "application/json", body
