"""Reading: ListOffsets and Fetch, routed to partition leaders, records decoded.

`list_offsets` answers "which offset" for earliest (-2), latest (-1), max timestamp (-3) or a
timestamp. `fetch` reads from given offsets and decodes the records of whole batches (control
batches skipped, records of aborted transactions dropped under read_committed, records below the
requested offset dropped). `Consumer` keeps a position per assigned partition and fetches from
there. The group protocol is in `group`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from odradek.client.client import KafkaClient
from odradek.client.errors import ErrorCode, KafkaError
from odradek.protocol.records import (
    BATCH_HEADER_SIZE,
    Record,
    decode_records,
    read_batch_header,
    read_batch_size,
)
from odradek.protocol.topic_partition import TopicPartition

__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_TIMESTAMP",
    "Consumer",
    "FetchedPartition",
    "decode_fetched_records",
    "fetch",
    "list_offsets",
]

FETCH = 1
LIST_OFFSETS = 2
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
READ_UNCOMMITTED = 0
READ_COMMITTED = 1
DEFAULT_PARTITION_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


@dataclass
class FetchedPartition:
    partition: TopicPartition
    error: KafkaError | None
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: list[Record] = field(default_factory=list)
    next_offset: int | None = None  # where the next fetch should start, when records were read


async def list_offsets(
    client: KafkaClient, requests: Mapping[TopicPartition, int], *, isolation_level: int = READ_UNCOMMITTED
) -> dict[TopicPartition, tuple[int, int]]:
    """(offset, timestamp) per partition for a timestamp spec (EARLIEST, LATEST, MAX_TIMESTAMP or ms).

    For a timestamp later than every record the offset is -1. Raises the first partition error.
    """
    results: dict[TopicPartition, tuple[int, int]] = {}
    by_leader = await client.leaders(requests)

    async def one(node_id: int, partitions: list[TopicPartition]) -> None:
        topics: dict[str, list[dict]] = {}
        for tp in partitions:
            topics.setdefault(tp.topic, []).append({"partition_index": tp.partition, "timestamp": requests[tp]})
        values = {
            "replica_id": -1,
            "isolation_level": isolation_level,
            "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()],
        }
        min_version = 7 if any(ts == MAX_TIMESTAMP for ts in requests.values()) else None
        response = await client.request(LIST_OFFSETS, values, node_id=node_id, min_version=min_version)
        for t in response.topics:
            for p in t.partitions:
                tp = TopicPartition(t.name, int(p.partition_index))
                code = ErrorCode(int(p.error_code))
                if code != ErrorCode.none:
                    raise KafkaError(code, f"offsets of {tp}: {code.name.upper()}")
                results[tp] = (int(p.offset), int(p.timestamp))

    await asyncio.gather(*(one(node, parts) for node, parts in by_leader.items()))
    return results


def decode_fetched_records(data, fetch_offset: int, aborted: Iterable[tuple[int, int]] = ()) -> tuple[list[Record], int | None]:
    """Records at or above `fetch_offset` in the whole batches of `data`, and the next offset.

    A trailing partial batch (the broker may cut one at max_bytes) is ignored. `aborted` holds
    (producer_id, first_offset) of aborted transactions, as a read_committed Fetch returns them.
    """
    if not data:
        return [], None
    view = memoryview(data)
    # Kafka's consumer rule: an aborted transaction starts skipping its producer's batches at its
    # first offset and stops at that producer's next control batch (the ABORT marker).
    upcoming = sorted(aborted, key=lambda txn: txn[1])
    skipping: set[int] = set()
    records: list[Record] = []
    next_offset = None
    position = 0
    total = len(view)
    while position < total:
        size = read_batch_size(view, position)
        if size is None or total - position < BATCH_HEADER_SIZE or position + size > total:
            break
        header = read_batch_header(view, position)
        next_offset = header.next_offset
        position += size
        while upcoming and upcoming[0][1] <= header.last_offset:
            skipping.add(upcoming.pop(0)[0])
        if header.is_control:
            skipping.discard(header.producer_id)
            continue
        if header.is_transactional and header.producer_id in skipping:
            continue
        if header.next_offset <= fetch_offset:
            continue
        records.extend(r for r in decode_records(view, header) if r.offset >= fetch_offset)
    return records, next_offset


async def fetch(
    client: KafkaClient,
    positions: Mapping[TopicPartition, int],
    *,
    max_wait_ms: int = 500,
    min_bytes: int = 1,
    max_bytes: int = DEFAULT_MAX_BYTES,
    partition_max_bytes: int = DEFAULT_PARTITION_MAX_BYTES,
    isolation_level: int = READ_UNCOMMITTED,
) -> dict[TopicPartition, FetchedPartition]:
    """One Fetch per leader from `positions`; every partition gets an entry (records or error)."""
    results: dict[TopicPartition, FetchedPartition] = {}
    by_leader = await client.leaders(positions)

    async def one(node_id: int, partitions: list[TopicPartition]) -> None:
        topics: dict[str, list[dict]] = {}
        for tp in partitions:
            topics.setdefault(tp.topic, []).append(
                {"partition": tp.partition, "fetch_offset": positions[tp], "partition_max_bytes": partition_max_bytes}
            )
        values = {
            "replica_id": -1,
            "max_wait": max_wait_ms,
            "min_bytes": min_bytes,
            "max_bytes": max_bytes,
            "isolation_level": isolation_level,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()],
            "forgotten_topics_data": [],
        }
        response = await client.request(
            FETCH, values, node_id=node_id, timeout_s=client.request_timeout_s + max_wait_ms / 1000
        )
        top = ErrorCode(int(response.error_code))
        if top != ErrorCode.none:
            raise KafkaError(top, f"fetch from broker {node_id}: {top.name.upper()}")
        for t in response.responses:
            for p in t.partitions:
                tp = TopicPartition(t.topic, int(p.partition_index))
                code = ErrorCode(int(p.error_code))
                fetched = FetchedPartition(
                    tp,
                    None if code == ErrorCode.none else KafkaError(code, f"fetch {tp} at offset {positions.get(tp)}: {code.name.upper()}"),
                    int(p.high_watermark),
                    int(getattr(p, "last_stable_offset", -1)),
                    int(getattr(p, "log_start_offset", -1)),
                )
                if code == ErrorCode.none and p.records:
                    aborted = [(int(a.producer_id), int(a.first_offset)) for a in (p.aborted_transactions or ())]
                    fetched.records, fetched.next_offset = decode_fetched_records(p.records, positions[tp], aborted)
                results[tp] = fetched

    await asyncio.gather(*(one(node, parts) for node, parts in by_leader.items()))
    return results


class Consumer:
    """Reads assigned partitions from a position each; `poll()` returns the next records.

    OFFSET_OUT_OF_RANGE moves the position per `reset` ("earliest" or "latest"), as Kafka's
    auto.offset.reset does. Not thread-safe.
    """

    def __init__(self, client: KafkaClient, *, isolation_level: int = READ_UNCOMMITTED, reset: str = "latest", max_wait_ms: int = 500) -> None:
        self.client = client
        self.isolation_level = isolation_level
        self.reset = reset
        self.max_wait_ms = max_wait_ms
        self.positions: dict[TopicPartition, int] = {}

    async def assign(self, positions: Mapping[TopicPartition, int]) -> None:
        """Start reading at the given offsets; EARLIEST/LATEST (negative) are resolved now."""
        specs = {tp: offset for tp, offset in positions.items() if offset < 0}
        resolved = await list_offsets(self.client, specs, isolation_level=self.isolation_level) if specs else {}
        self.positions = {tp: (resolved[tp][0] if tp in resolved else offset) for tp, offset in positions.items()}

    async def poll(self, max_wait_ms: int | None = None) -> list[tuple[TopicPartition, Record]]:
        if not self.positions:
            await asyncio.sleep((max_wait_ms if max_wait_ms is not None else self.max_wait_ms) / 1000)
            return []
        fetched = await fetch(
            self.client,
            self.positions,
            max_wait_ms=max_wait_ms if max_wait_ms is not None else self.max_wait_ms,
            isolation_level=self.isolation_level,
        )
        out: list[tuple[TopicPartition, Record]] = []
        for tp, result in sorted(fetched.items()):
            if result.error is not None:
                if result.error.code == ErrorCode.offset_out_of_range:
                    spec = EARLIEST if self.reset == "earliest" else LATEST
                    self.positions[tp] = (await list_offsets(self.client, {tp: spec}, isolation_level=self.isolation_level))[tp][0]
                    continue
                if result.error.code in (ErrorCode.not_leader_or_follower, ErrorCode.leader_not_available, ErrorCode.unknown_leader_epoch):
                    continue
                raise result.error
            out.extend((tp, record) for record in result.records)
            if result.records:
                self.positions[tp] = result.records[-1].offset + 1
            elif result.next_offset is not None and result.next_offset > self.positions[tp]:
                self.positions[tp] = result.next_offset
        return out
