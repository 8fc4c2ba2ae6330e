"""One partition as this broker leads it: its log, high watermark, leader epoch, producer state.

Single-node: this broker is leader and the only in-sync replica, so the high watermark is the
log end offset. Appends run on the event loop and complete synchronously (validate, patch,
one write), which serializes them per partition without a lock.
"""

from __future__ import annotations

from typing import NamedTuple

from odradek.log.producer_state import ProducerStateManager
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import decode_records, validate_batches
from odradek.protocol.topic_partition import TopicPartition


class AppendResult(NamedTuple):
    base_offset: int
    log_append_time_ms: int
    log_start_offset: int


class Partition:
    def __init__(self, tp: TopicPartition, log, *, leader_epoch: int = 0) -> None:
        self.topic_partition = tp
        self.log = log
        self.leader_epoch = leader_epoch
        self.max_message_bytes = 1048588

    @property
    def high_watermark(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def producers(self) -> ProducerStateManager:
        """The log's idempotent-producer state (loaded from its snapshot when the log opened)."""
        return self.log.producer_state

    def append_records(self, records) -> AppendResult:
        """Validate and append a produce request's records for this partition."""
        if records is None or len(records) == 0:
            raise KafkaError(ErrorCode.corrupt_message, "produce request carried no records for this partition")
        headers = validate_batches(records)
        for header in headers:
            if header.size > self.max_message_bytes:
                raise KafkaError(
                    ErrorCode.message_too_large,
                    f"batch of {header.size} bytes exceeds max.message.bytes {self.max_message_bytes}",
                )
        if len(records) > self.log.config.segment_bytes:
            raise KafkaError(
                ErrorCode.record_list_too_large,
                f"{len(records)} bytes of records exceed segment.bytes {self.log.config.segment_bytes}",
            )
        if self.log.config.compacts:
            self._check_keys(records, headers)
        if headers[0].producer_id >= 0:
            duplicate = self._check_producers(headers)
            if duplicate is not None:
                return AppendResult(duplicate, -1, self.log.log_start_offset)
        buffer = bytearray(records)
        result = self.log.append(buffer, headers, self.leader_epoch)
        return AppendResult(result.base_offset, result.log_append_time_ms, self.log.log_start_offset)

    @staticmethod
    def _check_keys(records, headers) -> None:
        """A compacted topic keeps the latest value per key, so every record needs one (Kafka's rule).

        The only produce path that decodes records: compacted topics are rare and small-volume.
        """
        for header in headers:
            if header.is_control:
                continue
            if any(record.key is None for record in decode_records(records, header)):
                raise KafkaError(ErrorCode.invalid_record, "compacted topic cannot accept a message without a key")

    def _check_producers(self, headers) -> int | None:
        """Base offset of the original append if every batch is a duplicate; raise if refused."""
        duplicates = [self.producers.check(header) for header in headers]
        if all(duplicate is not None for duplicate in duplicates):
            return duplicates[0].base_offset
        return None

    def delete_records(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to `offset` (-1: the high watermark); returns it."""
        if offset == -1:
            offset = self.high_watermark
        if offset < 0 or offset > self.high_watermark:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"cannot delete records before offset {offset}: it must be between 0 and the high watermark {self.high_watermark}",
            )
        if offset > self.log.log_start_offset:
            self.log.advance_log_start_offset(offset)
        return self.log.log_start_offset

    def read(self, offset: int, max_bytes: int) -> bytes:
        return self.log.read(offset, max_bytes, self.high_watermark)
