"""The records of `__transaction_state`, in Kafka's own binary layout (so Kafka's tools read them).

Key: version int16 (0) | transactional id string.
Value, version 0: version int16 | producer id int64 | producer epoch int16 | timeout ms int32 |
status int8 | partitions nullable array of (topic string, array of int32) | last update ms
int64 | start ms int64. Version 1 (flexible, written by Kafka 3.8+) is read too; its tagged fields
are skipped. A null value is a tombstone (an expired transactional id).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field, replace

from odradek.protocol.topic_partition import TopicPartition

KEY_VERSION = 0
VALUE_VERSION = 0


class TxnState(enum.IntEnum):
    """Kafka's transaction states and their status bytes in the log."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def label(self) -> str:
        """The name DescribeTransactions, ListTransactions and kafka-transactions use."""
        return _LABELS[self]


_LABELS = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
STATE_BY_LABEL = {label: state for state, label in _LABELS.items()}


@dataclass(frozen=True)
class TransactionMetadata:
    """What the coordinator knows of one transactional id; replaced whole at each change."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition] = field(default_factory=frozenset)
    last_update_ms: int = -1
    start_ms: int = -1
    last_producer_epoch: int = -1  # the epoch before the last bump (an InitProducerId retry may name it)

    def evolve(self, **changes) -> "TransactionMetadata":
        return replace(self, **changes)


class RecordFormatError(ValueError):
    pass


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">hqhib")  # version, producer id, epoch, timeout, status
_TIMES = struct.Struct(">qq")


def _string(value: str) -> bytes:
    data = value.encode()
    return _I16.pack(len(data)) + data


def transaction_key(transactional_id: str) -> bytes:
    return _I16.pack(KEY_VERSION) + _string(transactional_id)


def transaction_value(meta: TransactionMetadata) -> bytes:
    out = bytearray(_HEAD.pack(VALUE_VERSION, meta.producer_id, meta.producer_epoch, meta.timeout_ms, int(meta.state)))
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(meta.partitions):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    if meta.state in (TxnState.EMPTY, TxnState.DEAD) and not by_topic:
        out += _I32.pack(-1)
    else:
        out += _I32.pack(len(by_topic))
        for topic, partitions in by_topic.items():
            out += _string(topic) + _I32.pack(len(partitions)) + b"".join(_I32.pack(p) for p in partitions)
    out += _TIMES.pack(meta.last_update_ms, meta.start_ms)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, flexible: bool = False) -> None:
        self.data = data
        self.position = 0
        self.flexible = flexible

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise RecordFormatError(f"record of {len(self.data)} bytes ends inside a field at byte {self.position}")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def unpack(self, fmt: struct.Struct):
        return fmt.unpack(self.take(fmt.size))

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def string(self) -> str:
        size = self.uvarint() - 1 if self.flexible else self.unpack(_I16)[0]
        return self.take(max(size, 0)).decode()

    def array_length(self) -> int:
        return self.uvarint() - 1 if self.flexible else self.unpack(_I32)[0]

    def skip_tags(self) -> None:
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(self.uvarint())


def decode_transaction_key(data: bytes) -> str:
    reader = _Reader(data)
    (version,) = reader.unpack(_I16)
    if version != KEY_VERSION:
        raise RecordFormatError(f"unknown __transaction_state key version {version}")
    return reader.string()


def decode_transaction_value(transactional_id: str, data: bytes) -> TransactionMetadata:
    (version,) = _Reader(data).unpack(_I16)
    if version not in (0, 1):
        raise RecordFormatError(f"unknown __transaction_state value version {version}")
    reader = _Reader(data, flexible=version >= 1)
    _version, producer_id, epoch, timeout_ms, status = reader.unpack(_HEAD)
    try:
        state = TxnState(status)
    except ValueError:
        raise RecordFormatError(f"unknown transaction status {status}") from None
    partitions = set()
    count = reader.array_length()
    for _ in range(max(count, 0)):
        topic = reader.string()
        for _ in range(max(reader.array_length(), 0)):
            partitions.add(TopicPartition(topic, reader.unpack(_I32)[0]))
        reader.skip_tags()
    last_update_ms, start_ms = reader.unpack(_TIMES)
    return TransactionMetadata(
        transactional_id, producer_id, epoch, timeout_ms, state, frozenset(partitions), last_update_ms, start_ms,
    )
