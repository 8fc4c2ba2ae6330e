"""A coordinator's durable state: records appended to its internal topic (`__consumer_offsets` for
groups, `__transaction_state` for transactions), read back per partition when this broker
becomes that partition's leader.

Records go through the ordinary partition log (the same append path as user data), into the
partition Kafka would choose for the key (group id or transactional id). A write is two steps:
`write` appends (and fails at once if the log refuses), `committed` waits until the in-sync
replicas have it (at once on a single node); a coordinator answers, and changes its memory, only
after both. The topic itself is created on first use. How the records reach the log and how the
topic is created are injected, so this module needs nothing above the coordinator layer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import NamedTuple

from odradek.coordinator.group_records import partition_for_group
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import BatchHeader, Record, encode_batch, marker_of_record
from odradek.protocol.topic_partition import TopicPartition

log = logging.getLogger(__name__)


# Errors from the log as both coordinators answer them (Kafka's normalizeException): the client
# looks for the coordinator again, or retries.
STORE_ERRORS = {
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas_after_append: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
    ErrorCode.kafka_storage_error: ErrorCode.not_coordinator,
}


def store_error(failure: KafkaError, own: dict[ErrorCode, ErrorCode] | None = None) -> ErrorCode:
    """The client's error for a write the log refused: a coordinator's `own` mapping first, then
    the shared one, else UNKNOWN_SERVER_ERROR."""
    if own and failure.code in own:
        return own[failure.code]
    return STORE_ERRORS.get(failure.code, ErrorCode.unknown_server_error)


class LogEntry(NamedTuple):
    """One record read back: its key and value, and the batch it came in (a transactional offset
    commit is pending until its producer's marker, which comes as an entry with `marker` set)."""

    key: bytes | None
    value: bytes | None
    producer_id: int = -1
    transactional: bool = False
    marker: bool | None = None  # a transaction marker: True committed, False aborted


class CoordinatorLog:
    def __init__(
        self,
        topic: str,
        num_partitions: int,
        clock,
        *,
        ensure_topic: Callable[[], int],
        append: Callable[[TopicPartition, bytes], object],
        read_batches: Callable[[TopicPartition], Iterator[tuple[BatchHeader, list[Record]]]],
        topic_exists: Callable[[], int | None],
        wait_committed: Callable[[TopicPartition, int], Awaitable[None]] | None = None,
    ) -> None:
        self.topic = topic
        self._configured_partitions = num_partitions
        self._clock = clock
        self._ensure_topic = ensure_topic
        self._append = append
        self._read_batches = read_batches
        self._topic_exists = topic_exists
        self._wait_committed = wait_committed
        self._partitions: int | None = None

    @property
    def partitions(self) -> int:
        """Partition count of the topic: the existing topic's, else the configured one."""
        if self._partitions is None:
            self._partitions = self._topic_exists() or self._configured_partitions
        return self._partitions

    def partition_for(self, key: str) -> int:
        """Kafka's placement: the Java hash of the group or transactional id, modulo the partitions."""
        return partition_for_group(key, self.partitions)

    def ensure_topic(self) -> None:
        self._partitions = self._ensure_topic()

    def write(
        self, key: str, records: list[tuple[bytes, bytes | None]], *, producer_id: int = -1, producer_epoch: int = -1,
    ) -> tuple[TopicPartition, int] | None:
        """Append key/value records (None value = tombstone) in one batch to `key`'s partition;
        KafkaError if the log refuses. With a producer id the batch is transactional (a
        TxnOffsetCommit), pending until that producer's marker. Returns (partition, the offset
        after the batch) for `committed`, None if nothing was written."""
        if not records:
            return None
        self.ensure_topic()
        now = self._clock.now_ms()
        batch = encode_batch(
            [Record(i, now, k, v) for i, (k, v) in enumerate(records)],
            producer_id=producer_id, producer_epoch=producer_epoch, transactional=producer_id >= 0,
        )
        tp = TopicPartition(self.topic, self.partition_for(key))
        result = self._append(tp, batch)
        return tp, result.last_offset + 1

    async def committed(self, written: tuple[TopicPartition, int] | None) -> None:
        """Wait until a write is on every in-sync replica; KafkaError if it cannot be."""
        if written is not None and self._wait_committed is not None:
            await self._wait_committed(*written)

    async def write_committed(self, key: str, records: list[tuple[bytes, bytes | None]], **producer) -> None:
        await self.committed(self.write(key, records, **producer))

    def read_partition(self, partition: int) -> list[LogEntry]:
        """Every keyed record and transaction marker of one partition, in offset order (call in a
        worker thread)."""
        entries = []
        for header, records in self._read_batches(TopicPartition(self.topic, partition)):
            if header.is_control:
                marker = marker_of_record(records[0]) if records else None
                if marker is not None:
                    entries.append(LogEntry(None, None, header.producer_id, True, marker[0]))
                continue
            for record in records:
                if record.key is not None:
                    entries.append(LogEntry(record.key, record.value, header.producer_id, header.is_transactional))
        return entries

    def replay(self) -> Iterator[LogEntry]:
        """Every entry of the topic, partition by partition, in offset order."""
        count = self._topic_exists()
        for partition in range(count or 0):
            yield from self.read_partition(partition)

