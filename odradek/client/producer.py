"""Producing: records are gathered into one v2 batch per partition and sent to the leaders.

`Producer.send()` adds a record to its partition's open batch; a batch is sent when it reaches
`batch_size_bytes` (estimated uncompressed) or on `flush()`. Each send is one Produce request to
the partition's leader; up to `max_in_flight` requests run at once (per client), answered in order
per connection. A failure is raised by the next `send()` or by `flush()`. No retries: a console
tool reports and stops.

Partitioning as Kafka's default partitioner: murmur2 of the key modulo the partition count when
there is a key, otherwise one partition is filled until its batch is sent, then the next
(sticky, round robin).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from odradek.client.client import KafkaClient
from odradek.client.errors import ErrorCode, KafkaError
from odradek.protocol.compression import CODEC_NAMES
from odradek.protocol.records import encode_batch
from odradek.protocol.topic_partition import TopicPartition

__all__ = ["CODECS_BY_NAME", "Producer", "ProduceResult", "murmur2"]

PRODUCE = 0
DEFAULT_BATCH_SIZE_BYTES = 512 * 1024
RECORD_OVERHEAD_BYTES = 24
CODECS_BY_NAME = {name: codec for codec, name in CODEC_NAMES.items()}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length & ~3
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partition_count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


@dataclass
class ProduceResult:
    """What the broker said about one sent batch."""

    partition: TopicPartition
    base_offset: int
    record_count: int


@dataclass
class _OpenBatch:
    records: list = field(default_factory=list)
    size_bytes: int = 0


class Producer:
    """Send records to topics through `client`; `await flush()` (or `close()`) before exiting."""

    def __init__(
        self,
        client: KafkaClient,
        *,
        acks: int = -1,
        compression: int | str = 0,
        batch_size_bytes: int = DEFAULT_BATCH_SIZE_BYTES,
        max_in_flight: int = 5,
        timeout_ms: int | None = None,
    ) -> None:
        if isinstance(compression, str):
            if compression not in CODECS_BY_NAME:
                raise ValueError(f"unknown compression '{compression}': expected one of {', '.join(CODECS_BY_NAME)}")
            compression = CODECS_BY_NAME[compression]
        if acks not in (-1, 0, 1):
            raise ValueError(f"acks must be -1 (all), 0 or 1, not {acks}")
        self.client = client
        self.acks = acks
        self.codec = compression
        self.batch_size_bytes = batch_size_bytes
        self.timeout_ms = timeout_ms if timeout_ms is not None else client.request_timeout_ms
        self.results: list[ProduceResult] = []
        self.records_sent = 0
        self._open: dict[TopicPartition, _OpenBatch] = {}
        self._partition_counts: dict[str, int] = {}
        self._sticky: dict[str, int] = {}
        self._in_flight: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._failure: BaseException | None = None
        self._leaders: dict[TopicPartition, int] = {}

    async def partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            # Kafka's producers ask with allowAutoTopicCreation: the broker creates the topic if
            # auto.create.topics.enable is on (Produce itself never creates one).
            cluster = await self.client.topic_metadata([topic], allow_auto_topic_creation=True)
            count = len(cluster.topics[topic].partitions)
            if count == 0:
                raise KafkaError(ErrorCode.leader_not_available, f"topic '{topic}' has no partitions yet")
            self._partition_counts[topic] = count
        return count

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        self._raise_failure()
        count = await self.partition_count(topic)
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, count)
            else:
                partition = self._sticky.setdefault(topic, 0) % count
        elif not 0 <= partition < count:
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition, f"topic '{topic}' has no partition {partition} (partitions 0..{count - 1})"
            )
        tp = TopicPartition(topic, partition)
        batch = self._open.setdefault(tp, _OpenBatch())
        timestamp = timestamp_ms if timestamp_ms is not None else self.client.clock.now_ms()
        batch.records.append((timestamp, key, value, tuple(headers)))
        batch.size_bytes += (
            RECORD_OVERHEAD_BYTES
            + len(key or b"")
            + len(value or b"")
            + sum(len(k) + len(v or b"") + 4 for k, v in headers)
        )
        if batch.size_bytes >= self.batch_size_bytes:
            await self._send_batch(tp)

    async def _send_batch(self, tp: TopicPartition) -> None:
        batch = self._open.pop(tp, None)
        if batch is None or not batch.records:
            return
        if tp.topic in self._sticky and self._partition_counts.get(tp.topic):
            self._sticky[tp.topic] = (tp.partition + 1) % self._partition_counts[tp.topic]
        node_id = self._leaders.get(tp)
        if node_id is None:
            (node_id,) = await self.client.leaders([tp])
            self._leaders[tp] = node_id
        await self._slots.acquire()
        # Encoded and written in call order, so batches of one partition stay in order.
        data = encode_batch(batch.records, codec=self.codec)
        task = asyncio.create_task(self._produce(tp, node_id, data, len(batch.records)))
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def _produce(self, tp: TopicPartition, node_id: int, data: bytes, record_count: int) -> None:
        values = {
            "transactional_id": None,
            "acks": self.acks,
            "timeout": self.timeout_ms,
            "timeout_ms": self.timeout_ms,
            "topic_data": [{"name": tp.topic, "partition_data": [{"index": tp.partition, "records": data}]}],
        }
        response = await self.client.request(PRODUCE, values, node_id=node_id, expect_response=self.acks != 0)
        self.records_sent += record_count
        if response is None:
            return
        for topic in response.responses:
            for p in topic.partition_responses:
                code = ErrorCode(int(p.error_code))
                if code != ErrorCode.none:
                    message = getattr(p, "error_message", None) or code.name.upper()
                    raise KafkaError(code, f"producing to {tp}: {message}")
                self.results.append(ProduceResult(tp, int(p.base_offset), record_count))

    async def send_open_batches(self) -> None:
        """Send every open batch now, without waiting for the answers."""
        self._raise_failure()
        for tp in list(self._open):
            await self._send_batch(tp)

    async def flush(self) -> None:
        """Send every open batch and wait for all answers; raises the first failure."""
        for tp in list(self._open):
            await self._send_batch(tp)
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))
        self._raise_failure()

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            for task in list(self._in_flight):
                task.cancel()

