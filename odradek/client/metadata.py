"""What the client knows about a cluster: brokers, topics, partitions, leaders (from Metadata).

Plain immutable values built from a Metadata response; nothing here talks to a broker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from odradek.client.errors import ErrorCode
from odradek.protocol.topic_partition import TopicPartition

__all__ = ["BrokerMetadata", "ClusterMetadata", "PartitionMetadata", "TopicMetadata"]

NO_LEADER = -1


@dataclass(frozen=True)
class BrokerMetadata:
    node_id: int
    host: str
    port: int
    rack: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PartitionMetadata:
    partition: int
    leader_id: int
    leader_epoch: int
    replica_nodes: tuple[int, ...]
    isr_nodes: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    error: ErrorCode = ErrorCode.none

    @property
    def under_replicated(self) -> bool:
        return len(self.isr_nodes) < len(self.replica_nodes)


@dataclass(frozen=True)
class TopicMetadata:
    name: str
    topic_id: uuid.UUID | None
    is_internal: bool
    partitions: tuple[PartitionMetadata, ...]
    error: ErrorCode = ErrorCode.none

    @property
    def replication_factor(self) -> int:
        return max((len(p.replica_nodes) for p in self.partitions), default=0)


@dataclass(frozen=True)
class ClusterMetadata:
    brokers: dict[int, BrokerMetadata]
    topics: dict[str, TopicMetadata]
    cluster_id: str | None = None
    controller_id: int = -1
    unknown_topics: tuple[str, ...] = field(default=())

    @classmethod
    def from_response(cls, response) -> "ClusterMetadata":
        brokers = {
            int(b.node_id): BrokerMetadata(int(b.node_id), b.host, int(b.port), getattr(b, "rack", None))
            for b in response.brokers
        }
        topics = {}
        for t in response.topics:
            partitions = tuple(
                sorted(
                    (
                        PartitionMetadata(
                            partition=int(p.partition_index),
                            leader_id=int(p.leader_id),
                            leader_epoch=int(getattr(p, "leader_epoch", -1)),
                            replica_nodes=tuple(int(n) for n in p.replica_nodes),
                            isr_nodes=tuple(int(n) for n in p.isr_nodes),
                            offline_replicas=tuple(int(n) for n in getattr(p, "offline_replicas", ())),
                            error=ErrorCode(int(p.error_code)),
                        )
                        for p in t.partitions
                    ),
                    key=lambda p: p.partition,
                )
            )
            topic_id = getattr(t, "topic_id", None)
            if topic_id is not None and topic_id.int == 0:
                topic_id = None
            topics[t.name] = TopicMetadata(
                name=t.name,
                topic_id=topic_id,
                is_internal=bool(getattr(t, "is_internal", False)),
                partitions=partitions,
                error=ErrorCode(int(t.error_code)),
            )
        return cls(
            brokers=brokers,
            topics=topics,
            cluster_id=getattr(response, "cluster_id", None),
            controller_id=int(getattr(response, "controller_id", -1)),
        )

    def partitions_of(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p.partition) for p in self.topics[topic].partitions]

    def leader_of(self, tp: TopicPartition) -> int:
        topic = self.topics.get(tp.topic)
        if topic is None:
            return NO_LEADER
        for p in topic.partitions:
            if p.partition == tp.partition:
                return p.leader_id
        return NO_LEADER
