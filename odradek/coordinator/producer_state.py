"""Idempotent-producer state of one partition: per producer id, its epoch and last batches.

Kafka's rules, checked before a batch is appended:
  - an epoch older than the one we know -> INVALID_PRODUCER_EPOCH;
  - a newer epoch must start at sequence 0, else OUT_OF_ORDER_SEQUENCE_NUMBER;
  - a producer we do not know must start at sequence 0, else UNKNOWN_PRODUCER_ID;
  - a batch equal to one of the last five (same first and last sequence) is a duplicate: it is
    not appended again and is answered with the offset it got the first time;
  - otherwise the first sequence must follow the last one (wrapping at 2**31), else
    OUT_OF_ORDER_SEQUENCE_NUMBER.
State is rebuilt from batch headers when a partition is opened, so it survives restarts.
Not thread-safe: used from the event loop under the partition's append.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import BatchHeader

RETAINED_BATCHES = 5
SEQUENCE_MODULUS = 1 << 31


@dataclass
class BatchMetadata:
    first_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=RETAINED_BATCHES))
    last_timestamp_ms: int = -1

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else -1


class ProducerStateManager:
    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Raise for a batch that must be refused; return the original metadata of a duplicate."""
        if header.producer_id < 0:
            return None
        entry = self._producers.get(header.producer_id)
        first = header.base_sequence
        if entry is None:
            if first != 0:
                raise KafkaError(
                    ErrorCode.unknown_producer_id,
                    f"producer {header.producer_id} is unknown here and its batch starts at sequence {first}, not 0",
                )
            return None
        if header.producer_epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.invalid_producer_epoch,
                f"producer {header.producer_id} epoch {header.producer_epoch} is older than the current epoch {entry.epoch}",
            )
        if header.producer_epoch > entry.epoch:
            if first != 0:
                raise KafkaError(
                    ErrorCode.out_of_order_sequence_number,
                    f"a new epoch {header.producer_epoch} must start at sequence 0, got {first}",
                )
            return None
        for batch in entry.batches:
            if batch.first_sequence == first and batch.last_sequence == header.last_sequence:
                return batch
        expected = (entry.last_sequence + 1) % SEQUENCE_MODULUS
        if first != expected:
            raise KafkaError(
                ErrorCode.out_of_order_sequence_number,
                f"producer {header.producer_id} sent sequence {first}, expected {expected}",
            )
        return None

    def update(self, header: BatchHeader, base_offset: int) -> None:
        """Record a batch that was appended at `base_offset`."""
        if header.producer_id < 0:
            return
        entry = self._producers.get(header.producer_id)
        if entry is None or header.producer_epoch != entry.epoch:
            entry = ProducerEntry(header.producer_epoch)
            self._producers[header.producer_id] = entry
        entry.batches.append(
            BatchMetadata(header.base_sequence, header.last_sequence, base_offset, base_offset + header.last_offset_delta)
        )
        entry.last_timestamp_ms = header.max_timestamp

    def active(self) -> dict[int, ProducerEntry]:
        """Producer id -> state, for DescribeProducers."""
        return dict(self._producers)

    def load(self, headers) -> None:
        """Rebuild from the batch headers of a log, oldest first."""
        for header in headers:
            self.update(header, header.base_offset)
