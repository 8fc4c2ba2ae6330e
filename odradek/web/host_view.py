"""One HTTP address for a host of `--workers`: the supervisor serves it on `metrics.listener`, and
each worker serves its own on the ports after it.

- `/metrics` is every worker's, merged: each sample gets a `broker_id` label, each family keeps one
  HELP and TYPE, and `odradek_worker_up{broker_id}` says which workers answered. One scrape target
  per host, as a Prometheus set up for Kafka (one JMX exporter per broker) expects of a host.
- `/ready` is ready when every worker is (an orchestrator's probe for the host); it says which are not.
- `/health` answers while the supervisor runs.
- Anything else (the REST API, the console) is redirected to the first worker that is up: they are
  the cluster's, and any broker serves them.

The caller's Authorization header goes to the workers with each request, so a worker with
`http.authentication.method=BASIC` decides who may read its metrics, as it does when asked directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from urllib.parse import urlencode

from odradek.web.http_server import HttpRequest, HttpResponse, HttpServer

log = logging.getLogger(__name__)

WORKER_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Family:
    __slots__ = ("help", "type", "samples")

    def __init__(self) -> None:
        self.help: str | None = None
        self.type: str | None = None
        self.samples: list[str] = []


def merge_metrics(answers: Sequence[tuple[int, bytes | None]]) -> bytes:
    """The Prometheus text of several brokers as one: (broker id, its /metrics or None if it did not
    answer). A family's samples stay together, as the text format requires."""
    families: dict[str, _Family] = {}
    for broker_id, text in answers:
        if text is None:
            continue
        label = f'broker_id="{broker_id}"'
        family = None
        for line in text.decode("utf-8", "replace").splitlines():
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = families.setdefault(parts[2], _Family())
                    if parts[1] == "HELP":
                        family.help = family.help or line
                    else:
                        family.type = family.type or line
                continue
            if not line.strip():
                continue
            if family is None:
                family = families.setdefault("", _Family())
            family.samples.append(_labelled(line, label))
    up = families.setdefault("odradek_worker_up", _Family())
    up.help = "# HELP odradek_worker_up 1 if the worker answered this scrape, else 0"
    up.type = "# TYPE odradek_worker_up gauge"
    up.samples.extend(f'odradek_worker_up{{broker_id="{broker_id}"}} {0 if text is None else 1}'
                      for broker_id, text in answers)
    out = []
    for family in families.values():
        out.extend(line for line in (family.help, family.type) if line)
        out.extend(family.samples)
    return ("\n".join(out) + "\n").encode()


def _labelled(sample: str, label: str) -> str:
    """`name{a="x"} 1` -> `name{broker_id="7",a="x"} 1`; `name 1` -> `name{broker_id="7"} 1`."""
    brace, space = sample.find("{"), sample.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        rest = sample[brace + 1:]
        return f"{sample[:brace]}{{{label}{'' if rest.startswith('}') else ','}{rest}"
    if space == -1:
        return sample
    return f"{sample[:space]}{{{label}}}{sample[space:]}"


async def http_get(host: str, port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """(status, body) of one GET to a worker; OSError or asyncio.TimeoutError if it does not answer."""
    async with asyncio.timeout(WORKER_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
            head += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            chunks, size = [], 0
            while chunk := await reader.read(1 << 20):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise OSError(f"{host}:{port} answered more than {MAX_ANSWER_BYTES} bytes")
                chunks.append(chunk)
        finally:
            writer.close()
    answer = b"".join(chunks)
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    try:
        return int(status_line.split(b" ")[1]), body
    except (IndexError, ValueError):
        raise OSError(f"{host}:{port} answered something other than HTTP") from None


class HostEndpoints:
    """The host's address; `workers` are (broker id, host, port) of each worker's metrics.listener."""

    def __init__(self, host: str, port: int, workers: Sequence[tuple[int, str, int]]) -> None:
        self.workers = [(broker_id, _reachable(worker_host), worker_port) for broker_id, worker_host, worker_port in workers]
        self.server = HttpServer(host, port, self.application)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- running beside the supervisor's own loop ---------------------------------------------

    def start(self) -> None:
        """Listen (OSError if the port is taken), then serve from a thread of its own."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.server.start())
        except BaseException:
            loop.close()
            raise
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="odradek-host-view", daemon=True)
        self._thread.start()
        log.info("Serving the host's /metrics and /ready (%d workers merged) on http://%s:%d",
                 len(self.workers), self.server.host or "0.0.0.0", self.server.port)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    # --- answers --------------------------------------------------------------------------------

    async def application(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return await self.elsewhere(request)
        if request.path == "/metrics":
            return await self.metrics(request)
        if request.path == "/ready":
            return await self.ready()
        if request.path == "/health":
            return HttpResponse(200, body=b"ok\n")
        return await self.elsewhere(request)

    async def _ask_all(self, path: str, headers: dict[str, str]) -> list[tuple[int, int | None, bytes]]:
        async def one(broker_id: int, host: str, port: int) -> tuple[int, int | None, bytes]:
            try:
                status, body = await http_get(host, port, path, headers)
                return broker_id, status, body
            except (OSError, asyncio.TimeoutError) as error:
                return broker_id, None, str(error).encode()

        return await asyncio.gather(*(one(*worker) for worker in self.workers))

    async def metrics(self, request: HttpRequest) -> HttpResponse:
        forwarded = {"Authorization": request.headers["authorization"]} if "authorization" in request.headers else {}
        answers = await self._ask_all("/metrics", forwarded)
        refused = [(status, body) for _, status, body in answers if status in (401, 403)]
        if refused:  # the workers share one config: what one refuses, all do
            status, body = refused[0]
            headers = [("WWW-Authenticate", 'Basic realm="odradek"')] if status == 401 else []
            return HttpResponse(status, "application/json", body, headers)
        merged = merge_metrics([(broker_id, body if status == 200 else None) for broker_id, status, body in answers])
        return HttpResponse(200, METRICS_TYPE, merged)

    async def ready(self) -> HttpResponse:
        workers = {}
        for broker_id, status, body in await self._ask_all("/ready", {}):
            if status is None:
                workers[str(broker_id)] = {"ready": False, "waiting_for": [f"an answer ({body.decode(errors='replace')})"]}
                continue
            try:
                workers[str(broker_id)] = json.loads(body)
            except ValueError:
                workers[str(broker_id)] = {"ready": status == 200, "waiting_for": []}
        ready = all(worker.get("ready") for worker in workers.values())
        body = json.dumps({"ready": ready, "workers": workers}).encode() + b"\n"
        return HttpResponse(200 if ready else 503, "application/json", body)

    async def elsewhere(self, request: HttpRequest) -> HttpResponse:
        """To the same path on the first worker that answers /health."""
        for _, host, port in self.workers:
            try:
                status, _ = await http_get(host, port, "/health", {})
            except (OSError, asyncio.TimeoutError):
                continue
            if status == 200:
                asked = request.headers.get("host", "").rpartition(":")
                name = asked[0] if asked[1] else asked[2]
                target = f"http://{name or host}:{port}{request.path}"
                if request.query:
                    target += "?" + urlencode(request.query)
                return HttpResponse(307, body=f"see {target}\n".encode(), headers=[("Location", target)])
        return HttpResponse(503, "application/json", b'{"error_code":503,"message":"no worker answers"}\n')


def _reachable(host: str) -> str:
    """Where the supervisor reaches a worker that listens on `host`."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
