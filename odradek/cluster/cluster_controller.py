"""Topic administration on any broker of a ZooKeeper-mode cluster (Kafka's AdminZkClient).

CreateTopics, CreatePartitions, DeleteTopics and topic configs arrive at whichever broker the
client asked. That broker places the replicas over the live brokers (rack-aware with
`broker.rack`, Kafka's round-robin with a shifting second replica otherwise) and writes the
assignment and configs to ZooKeeper; deletion writes Kafka's /admin/delete_topics marker. The
elected controller (zk_controller.py) then gives the new partitions their leaders, every broker's
watches turn the change into a new metadata image, and each replica manager creates, leads,
follows or deletes its partitions from that image. Nothing here changes partitions directly.
"""

from __future__ import annotations

import asyncio
import random
import time

from kazoo.exceptions import KazooException

from odradek.cluster.controller import Controller
from odradek.cluster.store import MetadataStoreUnavailableError, TopicRecord
from odradek.protocol.errors import ErrorCode, KafkaError


class ClusterController(Controller):
    async def run(self, change, *args, **kwargs):
        """In a worker thread, once ZooKeeper is reachable; REQUEST_TIMED_OUT (retriable) when it
        has not been for zookeeper.connection.timeout.ms or the connection drops meanwhile."""
        def call():
            self.store.wait_until_connected()
            return change(*args, **kwargs)

        try:
            return await asyncio.to_thread(call)
        except (MetadataStoreUnavailableError, KazooException) as error:
            raise KafkaError(ErrorCode.request_timed_out, str(error) or f"ZooKeeper: {type(error).__name__}") from None

    def _publish_stored_topics(self) -> None:
        """The ZooKeeper watches publish the image; nothing to publish from here."""

    def register_broker(self, registration) -> None:
        """Registration is the broker's own ephemeral node in ZooKeeper (see broker.py)."""

    def _stored(self, record: TopicRecord, *, created: bool) -> None:
        self.store.put_topic(record, expected_version=-1 if created else self.store.topic_version(record.name))

    def _configs_stored(self, record: TopicRecord) -> None:
        self.store.set_topic_configs(record.name, dict(record.configs))

    def _removed(self, record: TopicRecord) -> None:
        self.store.remove_topic(record.name)

    def _internal_replication(self, configured: int) -> int:
        live = len(self.metadata.image.live_broker_ids())
        if live < configured:
            raise KafkaError(
                ErrorCode.coordinator_not_available,
                f"the internal topic needs {configured} replicas (offsets.topic.replication.factor or "
                f"transaction.state.log.replication.factor) "
                f"and only {live} brokers are alive",
            )
        return configured

    def _place(self, num_partitions: int, replication_factor: int, first_partition: int = 0) -> tuple[tuple[int, ...], ...]:
        brokers = [self.metadata.image.brokers[b] for b in self.metadata.image.live_broker_ids()]
        if replication_factor > len(brokers):
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"Replication factor: {replication_factor} larger than available brokers: {len(brokers)}.",
            )
        return place_replicas([(b.node_id, b.rack) for b in brokers], num_partitions, replication_factor,
                              first_partition=first_partition)

    async def wait_for_leaders(self, name: str, timeout_s: float) -> None:
        """Kafka answers CreateTopics once the new partitions have leaders (or the timeout passed)."""
        deadline = time.monotonic() + max(timeout_s, 0)
        while time.monotonic() < deadline:
            topic = self.metadata.image.topic(name)
            if topic is not None and all(p.leader >= 0 for p in topic.partitions):
                return
            await asyncio.sleep(0.01)


def place_replicas(brokers: list[tuple[int, str | None]], num_partitions: int, replication_factor: int, *,
                   first_partition: int = 0, rng: random.Random | None = None) -> tuple[tuple[int, ...], ...]:
    """Kafka's replica placement: partition p's first replica is broker (start + p), the others
    follow at a shift that grows every len(brokers) partitions, so leaders and followers spread
    evenly. With racks, brokers are interleaved rack by rack first and a partition takes a broker
    of an unused rack while one is left (one replica per rack where racks allow)."""
    rng = rng or random.Random()
    ordered = _rack_alternated(brokers) if any(rack for _, rack in brokers) else [b for b, _ in sorted(brokers)]
    racks = dict(brokers)
    count = len(ordered)
    start = rng.randrange(count)
    shift = rng.randrange(count)
    assignment = []
    for index in range(num_partitions):
        partition = first_partition + index
        if partition > 0 and partition % count == 0:
            shift += 1
        first = (partition + start) % count
        replicas = [ordered[first]]
        candidates = [ordered[(first + 1 + (shift + j) % max(count - 1, 1)) % count] for j in range(count - 1)]
        used_racks = {racks.get(replicas[0])}
        for candidate in candidates:
            if len(replicas) == replication_factor:
                break
            if racks.get(candidate) in used_racks and len(used_racks) < len(set(racks.values())):
                continue
            replicas.append(candidate)
            used_racks.add(racks.get(candidate))
        for candidate in candidates:  # racks exhausted: fill with the rest, in order
            if len(replicas) == replication_factor:
                break
            if candidate not in replicas:
                replicas.append(candidate)
        assignment.append(tuple(replicas))
    return tuple(assignment)


def _rack_alternated(brokers: list[tuple[int, str | None]]) -> list[int]:
    by_rack: dict[str | None, list[int]] = {}
    for node_id, rack in sorted(brokers):
        by_rack.setdefault(rack, []).append(node_id)
    ordered = []
    queues = [list(ids) for _, ids in sorted(by_rack.items(), key=lambda item: str(item[0]))]
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered

