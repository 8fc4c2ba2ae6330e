"""The metadata image: what this broker believes about the cluster, as one immutable value.

Brokers (id, rack, an endpoint per listener), topics (id, name, config overrides) and their
partitions (replicas, ISR, leader, leader epoch, partition epoch). Handlers read cluster facts
only from an image, taken once per request so one answer never mixes two versions; the
controller (single node) or the ZooKeeper watcher (cluster mode) builds a new image for each
change and publishes it through MetadataCache, replacing the old one whole.
Must not do I/O; an image is never mutated after it is built.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from odradek.protocol.topic_partition import INTERNAL_TOPICS, TopicPartition

NO_LEADER = -1


@dataclass(frozen=True)
class Endpoint:
    listener: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(frozen=True)
class BrokerRegistration:
    node_id: int
    endpoints: tuple[Endpoint, ...]
    rack: str | None = None
    fenced: bool = False

    def endpoint(self, listener: str) -> Endpoint | None:
        for endpoint in self.endpoints:
            if endpoint.listener == listener:
                return endpoint
        return None


@dataclass(frozen=True)
class PartitionRegistration:
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0

    def offline_replicas(self, live_brokers: Iterable[int]) -> tuple[int, ...]:
        live = set(live_brokers)
        return tuple(replica for replica in self.replicas if replica not in live)


@dataclass(frozen=True)
class TopicImage:
    name: str
    topic_id: uuid.UUID
    partitions: tuple[PartitionRegistration, ...]
    configs: Mapping[str, str] = field(default_factory=dict)  # overrides only

    @property
    def partition_count(self) -> int:
        return len(self.partitions)

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0

    @property
    def is_internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


@dataclass(frozen=True)
class MetadataImage:
    cluster_id: str
    controller_id: int
    brokers: Mapping[int, BrokerRegistration]
    topics: Mapping[str, TopicImage]
    topics_by_id: Mapping[uuid.UUID, TopicImage]

    @classmethod
    def build(cls, cluster_id: str, controller_id: int, brokers: Iterable[BrokerRegistration],
              topics: Iterable[TopicImage]) -> "MetadataImage":
        topics = list(topics)
        return cls(
            cluster_id,
            controller_id,
            MappingProxyType({broker.node_id: broker for broker in brokers}),
            MappingProxyType({topic.name: topic for topic in topics}),
            MappingProxyType({topic.topic_id: topic for topic in topics}),
        )

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicImage | None:
        return self.topics_by_id.get(topic_id)

    def partition(self, tp: TopicPartition) -> PartitionRegistration | None:
        topic = self.topics.get(tp.topic)
        if topic is None or not 0 <= tp.partition < len(topic.partitions):
            return None
        return topic.partitions[tp.partition]

    def live_broker_ids(self) -> list[int]:
        return sorted(node_id for node_id, broker in self.brokers.items() if not broker.fenced)

    # --- new images ---------------------------------------------------------------------------

    def with_topic(self, topic: TopicImage) -> "MetadataImage":
        topics = dict(self.topics)
        old = topics.get(topic.name)
        topics[topic.name] = topic
        by_id = dict(self.topics_by_id)
        if old is not None:
            by_id.pop(old.topic_id, None)
        by_id[topic.topic_id] = topic
        return replace(self, topics=MappingProxyType(topics), topics_by_id=MappingProxyType(by_id))

    def without_topic(self, name: str) -> "MetadataImage":
        old = self.topics.get(name)
        if old is None:
            return self
        topics = {n: t for n, t in self.topics.items() if n != name}
        by_id = {i: t for i, t in self.topics_by_id.items() if i != old.topic_id}
        return replace(self, topics=MappingProxyType(topics), topics_by_id=MappingProxyType(by_id))

    def with_broker(self, broker: BrokerRegistration) -> "MetadataImage":
        brokers = dict(self.brokers)
        brokers[broker.node_id] = broker
        return replace(self, brokers=MappingProxyType(brokers))

    def without_broker(self, node_id: int) -> "MetadataImage":
        brokers = {n: b for n, b in self.brokers.items() if n != node_id}
        return replace(self, brokers=MappingProxyType(brokers))

    def with_controller(self, controller_id: int) -> "MetadataImage":
        return replace(self, controller_id=controller_id)


EMPTY_IMAGE = MetadataImage.build("", NO_LEADER, (), ())


class MetadataCache:
    """The current image, and who to tell when it changes. Lives on the event loop."""

    def __init__(self, image: MetadataImage = EMPTY_IMAGE) -> None:
        self.image = image
        self._listeners: list[Callable[[MetadataImage, MetadataImage], None]] = []

    def subscribe(self, listener: Callable[[MetadataImage, MetadataImage], None]) -> None:
        """`listener(old, new)` is called after every publish."""
        self._listeners.append(listener)

    def publish(self, image: MetadataImage) -> None:
        old, self.image = self.image, image
        for listener in list(self._listeners):
            listener(old, image)
