"""How many client connections the broker takes, and how fast: Kafka's connection quotas.

- `max.connections.per.ip` (and `max.connections.per.ip.overrides`, "host:count,..."): a connection
  beyond an address's limit is closed at once, with Kafka's log line.
- `max.connections` (broker-wide, and per listener as listener.name.<l>.max.connections): beyond it a
  new connection waits, unread, until another closes, as Kafka's acceptor blocks. Connections on the
  inter-broker listener are never held back by the broker-wide limit (KIP-402), so brokers can always
  reach each other.
- `max.connection.creation.rate` (broker-wide and per listener, per second, KIP-612): a connection
  accepted faster than that waits until the rate allows it.
- `connection_creation_rate` quotas of IP addresses (and their default, set with AlterClientQuotas,
  KIP-612), measured over the client quota windows on every listener: a connection from an address
  over its rate is closed after the throttle time, as Kafka's acceptor closes a throttled socket.

One instance is shared by every listener of a broker. Runs on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field

from odradek.config import ConfigError

log = logging.getLogger(__name__)

UNLIMITED = 2**31 - 1
RATE_WINDOW_S = 1.0


def parse_ip_overrides(text: str) -> dict[str, int]:
    """max.connections.per.ip.overrides: "host:count,host:count"; ConfigError for a bad entry."""
    overrides = {}
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, _, count = entry.rpartition(":")
        if not host or not count.isdigit():
            raise ConfigError(f"invalid value '{text}' for config 'max.connections.per.ip.overrides': "
                              "expected host:count entries separated by commas")
        overrides[host.strip("[]")] = int(count)
    return overrides


@dataclass
class _Rate:
    """Accepted connections in the last RATE_WINDOW_S, to hold the next one back when too fast."""

    per_second: int
    accepted: collections.deque = field(default_factory=collections.deque)

    def delay(self, now: float) -> float:
        while self.accepted and now - self.accepted[0] >= RATE_WINDOW_S:
            self.accepted.popleft()
        if len(self.accepted) < self.per_second:
            return 0.0
        return self.accepted[0] + RATE_WINDOW_S - now


class ConnectionLimits:
    def __init__(self, config, listeners: list[str], inter_broker_listener: str) -> None:
        self.per_ip = int(config["max.connections.per.ip"])
        self.ip_overrides = parse_ip_overrides(str(config["max.connections.per.ip.overrides"] or ""))
        self.broker_max = int(config["max.connections"])
        self.inter_broker_listener = inter_broker_listener
        self.listener_max = {name: int(config.for_listener(name, "max.connections")) for name in listeners}
        rates = {name: int(config.for_listener(name, "max.connection.creation.rate")) for name in listeners}
        self._listener_rates = {name: _Rate(rate) for name, rate in rates.items() if rate < UNLIMITED}
        broker_rate = int(config["max.connection.creation.rate"])
        self._broker_rate = _Rate(broker_rate) if broker_rate < UNLIMITED else None
        self.by_ip: collections.Counter = collections.Counter()
        self.by_listener: collections.Counter = collections.Counter()
        self.total = 0
        self._freed = asyncio.Condition()
        self.ip_quotas = None  # the broker's ClientQuotas once loaded: connection_creation_rate per address

    def _ip_limit(self, ip: str) -> int:
        return self.ip_overrides.get(ip, self.per_ip)

    async def admit(self, listener: str, ip: str) -> bool:
        """Wait until the connection may be served (count and rate); False if it must be closed."""
        limit = self._ip_limit(ip)
        if self.by_ip[ip] >= limit:
            log.info("Rejected connection from %s, address already has the configured maximum of %d connections.", ip, limit)
            return False
        throttle_ms = self.ip_quotas.connection_throttle(ip) if self.ip_quotas is not None else 0
        if throttle_ms > 0:
            log.debug("Closing connection from %s after %d ms: over its connection_creation_rate quota", ip, throttle_ms)
            await asyncio.sleep(throttle_ms / 1000)
            return False
        self.by_ip[ip] += 1  # counted while it waits, so a burst from one address cannot slip past its limit
        try:
            async with self._freed:
                await self._freed.wait_for(lambda: self._has_room(listener))
            await self._pace(listener)
        except BaseException:
            self._forget_ip(ip)
            raise
        self.by_listener[listener] += 1
        self.total += 1
        return True

    def _has_room(self, listener: str) -> bool:
        if self.by_listener[listener] >= self.listener_max.get(listener, UNLIMITED):
            return False
        return listener == self.inter_broker_listener or self.total < self.broker_max

    async def _pace(self, listener: str) -> None:
        rates = [rate for rate in (self._listener_rates.get(listener), self._broker_rate) if rate is not None]
        while rates:
            now = time.monotonic()
            wait = max(rate.delay(now) for rate in rates)
            if wait <= 0:
                for rate in rates:
                    rate.accepted.append(now)
                return
            await asyncio.sleep(wait)

    def _forget_ip(self, ip: str) -> None:
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]

    async def release(self, listener: str, ip: str) -> None:
        self._forget_ip(ip)
        self.by_listener[listener] -= 1
        self.total -= 1
        async with self._freed:
            self._freed.notify_all()
