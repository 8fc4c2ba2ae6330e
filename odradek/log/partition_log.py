"""A partition's log: the ordered segments of one `<topic>-<partition>` directory.

Owns appending (offset assignment, rolling, flushing), reading whole batches by offset,
recovery at open, and truncation. The only log class the rest of the broker uses.
Must not decode records on the produce or fetch path; must not know about sockets.
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import struct
from pathlib import Path
from typing import Iterator, NamedTuple

from crc32c import crc32c

from odradek.clock import Clock
from odradek.log.log_config import LogConfig
from odradek.log.segment import LOG_SUFFIX, LogSegment
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_FLAG,
    BatchHeader,
    decode_records,
    patch_base_offsets,
    read_batch_header,
)
from odradek.protocol.topic_partition import TopicPartition

logger = logging.getLogger(__name__)

_MAX_TIMESTAMP_OFFSET = 35
_INT64 = struct.Struct(">q")
_INT16 = struct.Struct(">h")
_UINT32 = struct.Struct(">I")
_BASE_OFFSET_AND_LENGTH = struct.Struct(">qi")


class AppendResult(NamedTuple):
    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime


def storage_error(exc: OSError, action: str, path) -> KafkaError:
    """KAFKA_STORAGE_ERROR naming the file and errno of a failed I/O call."""
    where = exc.filename or path
    return KafkaError(
        ErrorCode.kafka_storage_error,
        f"{action} {where} failed: errno {exc.errno} ({exc.strerror or exc})",
    )


class PartitionLog:
    """The segments of one partition, oldest first; appends go to the last (active) one.

    Format: a directory `<topic>-<partition>` of LogSegments named by base offset (see
    LogSegment), exactly Kafka's layout.
    Invariants: segment base offsets strictly increase and each segment's batches lie in
    [base_offset, next segment's base_offset); log_start_offset <= log_end_offset;
    recovery_point <= log_end_offset and everything below it has been fsynced; a batch is
    either wholly in the `.log` or not at all (a failed write is cut back).
    Concurrency: not thread-safe for mutation. append, truncate_to, set_config, close and
    delete run on one thread (the event loop), serialized per partition by the caller.
    read, offset_for_timestamp and iter_batch_headers only pread and may run anywhere.
    flush() may run in a worker thread while the loop appends: it snapshots the segment
    list and log_end_offset first, and segment lists are replaced, never mutated.
    """

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        clock: Clock,
        segments: list[LogSegment],
        log_start_offset: int,
        log_end_offset: int,
        recovery_point: int,
    ) -> None:
        self.directory = directory
        self.topic_partition = TopicPartition.from_dir_name(directory.name)
        self.config = config
        self.clock = clock
        self._segments = segments
        self._base_offsets = [segment.base_offset for segment in segments]
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset
        self.recovery_point = recovery_point
        self.last_flush_ms = clock.now_ms()

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        clock: Clock,
        *,
        recovery_point: int = 0,
        clean_shutdown: bool = False,
        log_start_offset: int = 0,
    ) -> "PartitionLog":
        """Load (or create) the log in `directory`.

        After an unclean shutdown every segment from the one holding `recovery_point` on is
        validated and cut at its first bad byte (later segments are then deleted). Segments
        below it, and all segments after a clean shutdown, are trusted: only their index files
        get a cheap sanity check (rebuilt if missing or corrupt); their data is not read.
        """
        try:
            directory.mkdir(parents=True, exist_ok=True)
            base_offsets = sorted(
                int(path.name[: -len(LOG_SUFFIX)])
                for path in directory.iterdir()
                if path.name.endswith(LOG_SUFFIX) and path.name[: -len(LOG_SUFFIX)].isdigit()
            )
            segments = [LogSegment(directory, base, config, clock) for base in base_offsets]
            if not segments:
                segments = [LogSegment.create(directory, max(log_start_offset, 0), config, clock)]
            first_to_recover = len(segments)
            if not clean_shutdown:
                first_to_recover = max(bisect.bisect_right(base_offsets, recovery_point) - 1, 0)
            for index, segment in enumerate(segments):
                if index >= first_to_recover:
                    if segment.recover():
                        for later in segments[index + 1 :]:
                            logger.warning("deleting %s: it follows a truncated segment", later.log_path)
                            later.delete()
                        segments = segments[: index + 1]
                        break
                elif not segment.indexes_look_sane(full=index == len(segments) - 1):
                    segment.rebuild_indexes()
            log_end_offset = segments[-1].read_next_offset()
        except OSError as exc:
            raise storage_error(exc, "loading log", directory) from exc
        log_start_offset = max(log_start_offset, segments[0].base_offset)
        log_start_offset = min(log_start_offset, log_end_offset)
        return cls(directory, config, clock, segments, log_start_offset, log_end_offset, log_end_offset)

    # --- properties ---------------------------------------------------------------------------

    @property
    def segments(self) -> list[LogSegment]:
        return list(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    def set_config(self, config: LogConfig) -> None:
        self.config = config
        for segment in self._segments:
            segment.config = config

    # --- append -------------------------------------------------------------------------------

    def append(self, buffer: bytearray, headers: list[BatchHeader], leader_epoch: int) -> AppendResult:
        """Assign offsets from log_end_offset to the validated batches in `buffer` and write them
        to the active segment (rolling first if needed) in one write.

        KAFKA_STORAGE_ERROR if the write fails; the log is then unchanged.
        """
        if not headers:
            raise ValueError("append needs at least one batch")
        first_offset = self.log_end_offset
        next_offset = patch_base_offsets(buffer, headers, first_offset, leader_epoch)
        now = self.clock.now_ms()
        log_append_time = -1
        if self.config.message_timestamp_type == "LogAppendTime":
            log_append_time = now
            for header in headers:
                _set_log_append_time(buffer, header.position, header.size, now)
        headers = [read_batch_header(buffer, header.position) for header in headers]
        max_timestamp = max(header.max_timestamp for header in headers)
        try:
            segment = self._maybe_roll(len(buffer), max_timestamp, next_offset - 1, now)
            segment.append(buffer, headers)
        except OSError as exc:
            raise storage_error(exc, "appending to", self.active_segment.log_path) from exc
        self.log_end_offset = next_offset
        if next_offset - self.recovery_point >= self.config.flush_messages:
            self.flush()
        return AppendResult(first_offset, next_offset - 1, log_append_time)

    def _maybe_roll(self, size: int, max_timestamp: int, last_offset: int, now: int) -> LogSegment:
        segment = self._segments[-1]
        if segment.size == 0:
            return segment
        rolling_timestamp = segment.rolling_timestamp()
        # Kafka measures segment.ms by message timestamps once the segment has a first batch.
        waited = max_timestamp - rolling_timestamp if rolling_timestamp >= 0 else now - segment.created_ms
        if (
            segment.size + size > self.config.segment_bytes
            or waited > self.config.segment_ms
            or segment.index_is_full()
            or not segment.can_hold(last_offset)
        ):
            return self.roll()
        return segment

    def roll(self) -> LogSegment:
        """Start a new active segment at log_end_offset (no-op if the active one is empty)."""
        active = self._segments[-1]
        if active.size == 0:
            return active
        active.on_become_inactive()
        segment = LogSegment.create(self.directory, self.log_end_offset, self.config, self.clock)
        self._replace_segments(self._segments + [segment])
        return segment

    def _replace_segments(self, segments: list[LogSegment]) -> None:
        self._base_offsets = [segment.base_offset for segment in segments]
        self._segments = segments

    # --- reading ------------------------------------------------------------------------------

    def _check_offset(self, offset: int) -> None:
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"offset {offset} is outside {self.topic_partition}'s log "
                f"[{self.log_start_offset}, {self.log_end_offset}]",
            )

    def _segment_index(self, offset: int) -> int:
        return max(bisect.bisect_right(self._base_offsets, offset) - 1, 0)

    def read(self, offset: int, max_bytes: int, max_offset: int) -> bytes:
        """Whole batches from the one holding `offset`, none with base_offset >= max_offset,
        at most max_bytes in total except that the first batch always comes whole (KIP-74).
        Returns data from one segment only. OFFSET_OUT_OF_RANGE outside the log."""
        self._check_offset(offset)
        if offset >= max_offset or offset >= self.log_end_offset:
            return b""
        segments = self._segments
        index = self._segment_index(offset)
        try:
            for segment in segments[index:]:
                header = segment.find_batch(offset)
                if header is None:
                    continue
                if header.base_offset >= max_offset:
                    return b""
                data = segment.read(header.position, max(max_bytes, header.size))
                end = header.size
                limit = max(max_bytes, header.size)
                while len(data) - end >= LOG_OVERHEAD:
                    base_offset, length = _BASE_OFFSET_AND_LENGTH.unpack_from(data, end)
                    batch_end = end + length + LOG_OVERHEAD
                    if base_offset >= max_offset or batch_end > len(data) or batch_end > limit:
                        break
                    end = batch_end
                return data if end == len(data) else data[:end]
        except OSError as exc:
            raise storage_error(exc, "reading", self.directory) from exc
        return b""

    def iter_batch_headers(self, from_offset: int = 0) -> Iterator[BatchHeader]:
        """Headers of every batch from the one holding `from_offset` to the end; positions are
        relative to their segment."""
        segments = self._segments
        index = self._segment_index(from_offset)
        first = True
        for segment in segments[index:]:
            position = 0
            if first:
                first = False
                header = segment.find_batch(from_offset)
                if header is None:
                    continue
                position = header.position
            yield from segment.iter_headers(position)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= timestamp_ms, or None."""
        for segment in self._segments:
            max_timestamp = segment.max_timestamp()
            if max_timestamp is None or max_timestamp[0] < timestamp_ms:
                continue
            _, entry_offset = segment.time_index.lookup(timestamp_ms)
            position = segment.offset_index.lookup(entry_offset)[1]
            for header in segment.iter_headers(position):
                if header.max_timestamp < timestamp_ms or header.last_offset < self.log_start_offset:
                    continue
                for record in self._records(segment, header):
                    if record.timestamp >= timestamp_ms and record.offset >= self.log_start_offset:
                        return record.offset, record.timestamp
        return None

    def max_timestamp_offset(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record carrying the log's largest timestamp."""
        best: tuple[tuple[int, int], LogSegment] | None = None
        for segment in self._segments:
            max_timestamp = segment.max_timestamp()
            if max_timestamp is not None and (best is None or max_timestamp[0] > best[0][0]):
                best = (max_timestamp, segment)
        if best is None:
            return None
        (timestamp, last_offset), segment = best
        header = segment.find_batch(last_offset)
        if header is None:
            return last_offset, timestamp
        for record in self._records(segment, header):
            if record.timestamp == timestamp:
                return record.offset, timestamp
        return header.last_offset, timestamp

    @staticmethod
    def _records(segment: LogSegment, header: BatchHeader):
        data = segment.read(header.position, header.size)
        return decode_records(data, header._replace(position=0))

    # --- durability ---------------------------------------------------------------------------

    def flush(self, up_to_offset: int | None = None) -> None:
        """fsync segments holding offsets below `up_to_offset` (default: everything) and advance
        recovery_point. Safe in a worker thread while the loop appends."""
        segments = self._segments
        log_end_offset = self.log_end_offset
        target = log_end_offset if up_to_offset is None else min(up_to_offset, log_end_offset)
        recovery_point = self.recovery_point
        try:
            for index, segment in enumerate(segments):
                next_base = segments[index + 1].base_offset if index + 1 < len(segments) else None
                if next_base is not None and next_base <= recovery_point:
                    continue
                if segment.base_offset > target:
                    break
                if segment.closed:
                    continue
                segment.flush()
        except OSError as exc:
            raise storage_error(exc, "flushing", self.directory) from exc
        if target > self.recovery_point:
            self.recovery_point = target
        self.last_flush_ms = self.clock.now_ms()

    # --- truncation and lifecycle -------------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Remove every batch whose last offset >= `offset` (a follower's truncation).

        If `offset` is below log_start_offset the log is emptied and restarts at `offset`.
        log_end_offset becomes the end of the last batch kept (== offset at a batch boundary).
        """
        if offset >= self.log_end_offset:
            return
        if offset < self.log_start_offset:
            self.truncate_fully_and_start_at(offset)
            return
        try:
            segments = self._segments
            keep = [segment for segment in segments if segment.base_offset < offset] or segments[:1]
            for segment in segments[len(keep) :]:
                segment.delete()
            self._replace_segments(keep)
            active = keep[-1]
            active.truncate_to(offset)
            self.log_end_offset = active.read_next_offset()
        except OSError as exc:
            raise storage_error(exc, "truncating", self.directory) from exc
        self.recovery_point = min(self.recovery_point, self.log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every segment and start an empty log at `offset`."""
        try:
            for segment in self._segments:
                segment.delete()
            self._replace_segments([LogSegment.create(self.directory, offset, self.config, self.clock)])
        except OSError as exc:
            raise storage_error(exc, "truncating", self.directory) from exc
        self.log_start_offset = self.log_end_offset = self.recovery_point = offset

    def close(self) -> None:
        try:
            self._segments[-1].on_become_inactive()
            self._segments[-1].time_index.flush()
        except OSError:
            logger.exception("could not write the final time index entry of %s", self.directory)
        for segment in self._segments:
            segment.close()

    def delete(self) -> None:
        """Close and remove the whole partition directory."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _set_log_append_time(buffer: bytearray, position: int, size: int, now_ms: int) -> None:
    """Stamp a batch with LogAppendTime: maxTimestamp = now, timestamp-type bit, new CRC32C."""
    attributes = _INT16.unpack_from(buffer, position + ATTRIBUTES_OFFSET)[0] | TIMESTAMP_TYPE_FLAG
    _INT16.pack_into(buffer, position + ATTRIBUTES_OFFSET, attributes)
    _INT64.pack_into(buffer, position + _MAX_TIMESTAMP_OFFSET, now_ms)
    crc = crc32c(memoryview(buffer)[position + ATTRIBUTES_OFFSET : position + size])
    _UINT32.pack_into(buffer, position + CRC_OFFSET, crc)
