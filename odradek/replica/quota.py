"""Replication throttles, as Kafka's ReplicationQuotaManager: a byte rate measured over a sliding
window, one for what this broker sends as leader (`leader.replication.throttled.rate`) and one
for what it fetches as follower (`follower.replication.throttled.rate`).

A replica is throttled when its topic names it in `leader.replication.throttled.replicas` or
`follower.replication.throttled.replicas` (`partition:broker` entries, or `*`) and it is out of
the ISR: a reassignment's new replicas copy at the configured rate (kafka-reassign-partitions
--throttle), while in-sync replication never waits. Bytes of every throttled partition count
towards the rate, in sync or not, as in Kafka. Used on the event loop; not thread-safe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

UNLIMITED = (1 << 63) - 1  # Kafka's Long.MAX_VALUE default: no throttle


class ReplicationQuota:
    """Bytes per second over the last `samples` windows of `sample_s` seconds each."""

    def __init__(self, rate: float = UNLIMITED, samples: int = 11, sample_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[int, int] = {}  # window index -> bytes
        self._first_record: float | None = None
        self.configure(rate, samples, sample_s)

    def configure(self, rate: float, samples: int, sample_s: float) -> None:
        self.rate = math.inf if rate >= UNLIMITED else float(rate)
        self.samples = max(samples, 1)
        self.sample_s = max(sample_s, 0.001)

    @property
    def unlimited(self) -> bool:
        return self.rate == math.inf

    def record(self, size: int) -> None:
        if size <= 0 or self.unlimited:
            return
        now = self._clock()
        if self._first_record is None:
            self._first_record = now
        index = int(now // self.sample_s)
        self._buckets[index] = self._buckets.get(index, 0) + size
        for old in [i for i in self._buckets if i <= index - self.samples]:
            del self._buckets[old]

    def measured_rate(self) -> float:
        """Bytes per second over the window (the part of it since the first record, at least
        one sample long, so a burst at start-up is not divided by almost nothing)."""
        if self._first_record is None:
            return 0.0
        now = self._clock()
        index = int(now // self.sample_s)
        total = sum(size for i, size in self._buckets.items() if i > index - self.samples)
        elapsed = min(now - self._first_record, self.samples * self.sample_s)
        return total / max(elapsed, self.sample_s)

    def is_exceeded(self) -> bool:
        return not self.unlimited and self.measured_rate() > self.rate


def throttled_partitions(entries: list[str] | None, node_id: int) -> frozenset[int] | None:
    """The partitions a `*.replication.throttled.replicas` value throttles on broker `node_id`:
    None for all (`*`), else those listed as `partition:node_id`."""
    if not entries:
        return frozenset()
    if [entry.strip() for entry in entries] == ["*"]:
        return None
    partitions = set()
    for entry in entries:
        partition, _, broker = entry.strip().partition(":")
        if broker.strip() == str(node_id):
            partitions.add(int(partition))
    return frozenset(partitions)
