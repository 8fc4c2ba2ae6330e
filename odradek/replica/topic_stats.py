"""What went in and out of this broker, per topic and in total: Kafka's BrokerTopicMetrics.

Plain counters, bumped on the produce and fetch paths (a dict lookup and a few additions per
partition, nothing per record) and read by the metrics endpoint. Replication traffic is counted
apart, as Kafka counts it. The ISR's shrinks and expands are counted here too. Event loop only.
"""

from __future__ import annotations


class TopicCounters:
    __slots__ = ("messages_in", "bytes_in", "bytes_out", "replication_bytes_in", "replication_bytes_out",
                 "failed_produce_requests", "failed_fetch_requests")

    def __init__(self) -> None:
        self.messages_in = self.bytes_in = self.bytes_out = 0
        self.replication_bytes_in = self.replication_bytes_out = 0
        self.failed_produce_requests = self.failed_fetch_requests = 0


class BrokerTopicStats:
    def __init__(self) -> None:
        self.topics: dict[str, TopicCounters] = {}
        self.total = TopicCounters()
        self.isr_shrinks = 0
        self.isr_expands = 0

    def of(self, topic: str) -> TopicCounters:
        counters = self.topics.get(topic)
        if counters is None:
            counters = self.topics[topic] = TopicCounters()
        return counters

    def appended(self, topic: str, messages: int, size: int) -> None:
        counters, total = self.of(topic), self.total
        counters.messages_in += messages
        counters.bytes_in += size
        total.messages_in += messages
        total.bytes_in += size

    def produce_failed(self, topic: str | None) -> None:
        """A partition's append failed; `topic` None when this broker does not host it (a name a
        client made up gets no counters of its own, so it cannot grow them without bound)."""
        if topic is not None:
            self.of(topic).failed_produce_requests += 1
        self.total.failed_produce_requests += 1

    def fetched(self, topic: str, size: int, *, follower: bool) -> None:
        counters, total = self.of(topic), self.total
        if follower:
            counters.replication_bytes_out += size
            total.replication_bytes_out += size
        else:
            counters.bytes_out += size
            total.bytes_out += size

    def fetch_failed(self, topic: str | None) -> None:
        """As produce_failed, for a partition's read."""
        if topic is not None:
            self.of(topic).failed_fetch_requests += 1
        self.total.failed_fetch_requests += 1

    def replicated_in(self, topic: str, size: int) -> None:
        self.of(topic).replication_bytes_in += size
        self.total.replication_bytes_in += size

    def forget(self, topic: str) -> None:
        """A deleted topic's counters go (Kafka removes its metrics too)."""
        self.topics.pop(topic, None)
