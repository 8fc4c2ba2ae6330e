"""How many requests of each API the broker answered, and how long they took:
Kafka's RequestMetrics (RequestsPerSec, TotalTimeMs, LocalTimeMs, RemoteTimeMs).

Per request: a counter per API and version, and the times in fixed histogram buckets (a bisect and
two additions). Local time is the event loop's work on the request (decoding, the handler's own
steps, encoding); remote time is what it spent waiting (a parked Fetch, an acks=all Produce for
its replicas); total is both. Read by the metrics endpoint. Event loop only.
"""

from __future__ import annotations

import bisect
from collections import Counter

# seconds: 0.1 ms .. 30 s, what Kafka's request latencies span
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0, 30.0)


class Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, how many at most that long), Prometheus's buckets, "+Inf" last."""
        total, buckets = 0, []
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.counts):
            total += count
            buckets.append((bound, total))
        return buckets

    def quantile(self, q: float) -> float:
        """An estimate from the buckets (linear within one), as Prometheus's histogram_quantile."""
        total = sum(self.counts)
        if total == 0:
            return 0.0
        rank, seen, lower = q * total, 0, 0.0
        for bound, count in zip((*BUCKETS, BUCKETS[-1]), self.counts):
            if count and seen + count >= rank:
                return lower + (bound - lower) * (rank - seen) / count
            seen += count
            lower = bound
        return BUCKETS[-1]


class ApiStats:
    __slots__ = ("name", "versions", "total", "local", "remote")

    def __init__(self, name: str) -> None:
        self.name = name
        self.versions: Counter = Counter()
        self.total, self.local, self.remote = Histogram(), Histogram(), Histogram()


class RequestStats:
    """Per request name: Kafka's API names (Produce, Fetch, ...), and for a Fetch also FetchConsumer
    or FetchFollower, as Kafka reports them."""

    def __init__(self) -> None:
        self.apis: dict[str, ApiStats] = {}

    def record(self, name: str, version: int, local_s: float, total_s: float) -> None:
        stats = self.apis.get(name)
        if stats is None:
            stats = self.apis[name] = ApiStats(name)
        stats.versions[version] += 1
        stats.total.observe(total_s)
        stats.local.observe(local_s)
        stats.remote.observe(max(total_s - local_s, 0.0))
