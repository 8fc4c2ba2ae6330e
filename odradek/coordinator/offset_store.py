"""The group coordinator's durable state: records appended to `__consumer_offsets`, replayed on start.

Records go through the ordinary partition log (the same append path as user data), into the
partition Kafka would choose for the group. The topic itself is created on first use. How the
records reach the log and how the topic is created are injected, so this module needs nothing
above the coordinator layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

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
    ) -> None:
        self._configured_partitions = num_partitions
        self._clock = clock
        self._ensure_topic = ensure_topic
        self._append = append
        self._read_records = read_records
        self._topic_exists = topic_exists
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

    def write(self, group_id: str, records: list[tuple[bytes, bytes | None]]) -> None:
        """Append key/value records (None value = tombstone) in one batch; KafkaError on failure."""
        if not records:
            return
        self.ensure_topic()
        now = self._clock.now_ms()
        batch = encode_batch([Record(i, now, key, value) for i, (key, value) in enumerate(records)])
        self._append(TopicPartition(TOPIC, self.partition_for(group_id)), batch)

    def replay(self) -> Iterator[tuple[bytes, bytes | None]]:
        """Every record of the topic, partition by partition, in offset order."""
        count = self._topic_exists()
        if not count:
            return
        for partition in range(count):
            for record in self._read_records(TopicPartition(TOPIC, partition)):
                if record.key is not None:
                    yield record.key, record.value
