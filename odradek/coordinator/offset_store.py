"""The group coordinator's durable state: records appended to `__consumer_offsets`, read back per
partition when this broker becomes that partition's leader.

Records go through the ordinary partition log (the same append path as user data), into the
partition Kafka would choose for the group. A write is two steps: `write` appends (and fails at
once if the log refuses), `committed` waits until the in-sync replicas have it (at once on a single
node); a coordinator answers, and changes its memory, only after both. The topic itself is created
on first use. How the records reach the log and how the topic is created are injected, so this
module needs nothing above the coordinator layer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator

from odradek.coordinator.group_records import partition_for_group
from odradek.protocol.records import Record, encode_batch
from odradek.protocol.topic_partition import TopicPartition

log = logging.getLogger(__name__)

TOPIC = "__consumer_offsets"


class OffsetStore:
    def __init__(
        self,
        num_partitions: int,
        clock,
        *,
        ensure_topic: Callable[[], int],
        append: Callable[[TopicPartition, bytes], object],
        read_records: Callable[[TopicPartition], Iterator[Record]],
        topic_exists: Callable[[], int | None],
        wait_committed: Callable[[TopicPartition, int], Awaitable[None]] | None = None,
    ) -> None:
        self._configured_partitions = num_partitions
        self._clock = clock
        self._ensure_topic = ensure_topic
        self._append = append
        self._read_records = read_records
        self._topic_exists = topic_exists
        self._wait_committed = wait_committed
        self._partitions: int | None = None

    @property
    def partitions(self) -> int:
        """Partition count of the topic: the existing topic's, else the configured one."""
        if self._partitions is None:
            self._partitions = self._topic_exists() or self._configured_partitions
        return self._partitions

    def partition_for(self, group_id: str) -> int:
        return partition_for_group(group_id, self.partitions)

    def ensure_topic(self) -> None:
        self._partitions = self._ensure_topic()

    def write(self, group_id: str, records: list[tuple[bytes, bytes | None]]) -> tuple[TopicPartition, int] | None:
        """Append key/value records (None value = tombstone) in one batch; KafkaError if the log
        refuses. Returns (partition, the offset after the batch) for `committed`, None if nothing
        was written."""
        if not records:
            return None
        self.ensure_topic()
        now = self._clock.now_ms()
        batch = encode_batch([Record(i, now, key, value) for i, (key, value) in enumerate(records)])
        tp = TopicPartition(TOPIC, self.partition_for(group_id))
        result = self._append(tp, batch)
        return tp, result.last_offset + 1

    async def committed(self, written: tuple[TopicPartition, int] | None) -> None:
        """Wait until a write is on every in-sync replica; KafkaError if it cannot be."""
        if written is not None and self._wait_committed is not None:
            await self._wait_committed(*written)

    async def write_committed(self, group_id: str, records: list[tuple[bytes, bytes | None]]) -> None:
        await self.committed(self.write(group_id, records))

    def read_partition(self, partition: int) -> list[tuple[bytes, bytes | None]]:
        """Every keyed record of one partition, in offset order (call in a worker thread)."""
        return [
            (record.key, record.value)
            for record in self._read_records(TopicPartition(TOPIC, partition))
            if record.key is not None
        ]

    def replay(self) -> Iterator[tuple[bytes, bytes | None]]:
        """Every record of the topic, partition by partition, in offset order."""
        count = self._topic_exists()
        for partition in range(count or 0):
            yield from self.read_partition(partition)
