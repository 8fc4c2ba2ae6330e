"""A partition's log: the ordered segments of one `<topic>-<partition>` directory.

Owns appending (offset assignment, rolling, flushing), reading whole batches by offset,
recovery at open, and truncation. The only log class the rest of the broker uses.
Must not decode records on the produce or fetch path; must not know about sockets.
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import shutil
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from odradek.protocol.checksum import crc32c

from odradek.clock import Clock
from odradek.log.checkpoint import TEMP_SUFFIX
from odradek.log.leader_epoch_cache import LeaderEpochCache
from odradek.log.log_config import LogConfig
from odradek.log.producer_state import CompletedTxn, Marker, ProducerStateManager
from odradek.log.segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    LogSegment,
    segment_file_name,
)
from odradek.log.txn_index import AbortedTxn
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.file_region import FileRegion
from odradek.protocol.records import (
    ATTRIBUTES_OFFSET,
    BATCH_HEADER_SIZE,
    CRC_OFFSET,
    TIMESTAMP_TYPE_FLAG,
    BatchHeader,
    decode_marker,
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


class AppendResult(NamedTuple):
    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime


# A full disk or quota is transient: the write is cut back and refused, the dir stays online
# (the broker answers KAFKA_STORAGE_ERROR and serves again once space is freed; Kafka instead
# takes the whole dir offline until restart). Any other I/O error takes the dir offline.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


# Kafka fsyncs a segment up to the new active segment's base offset when it rolls, off the
# append path; so recovery after a crash only re-validates the active segments. One thread
# for the whole broker: those fsyncs are rare (one per segment.bytes) and serializing them
# keeps them from competing with each other.
_ROLL_FLUSHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odradek-flush-on-roll")


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
    LogSegment), exactly Kafka's layout, with the producer state's `<offset>.snapshot` files
    (ProducerStateManager) and `leader-epoch-checkpoint` (LeaderEpochCache). Transient files: `*.cleaned` (a cleaner's output in
    progress; deleted at open), `*.swap` (a finished cleaned segment replacing older ones;
    completed at open), `*.deleted` (removed segments awaiting file.delete.delay.ms; deleted at open).
    Invariants: segment base offsets strictly increase and each segment's batches lie in
    [base_offset, next segment's base_offset); log_start_offset <= log_end_offset;
    recovery_point <= log_end_offset and everything below it has been fsynced; a batch is
    either wholly in the `.log` or not at all (a failed write is cut back). Compaction may
    leave offset gaps and even whole segments missing between log_start_offset and the end.
    Concurrency:
    - The segment list is an immutable snapshot (`_view`), replaced whole under `_lock`,
      never mutated. Every change of the list or of the active segment's contents takes
      `_lock`: append (held for its one write), roll, truncate_to, advance_log_start_offset,
      delete_retention_segments, maybe_roll_by_time and replace_segments (the cleaner's swap).
      Each holds it only for metadata work and a few renames, never for a scan or an fsync
      of other segments, so the cleaner and retention (worker threads) never block produce.
    - read, iter_batch_headers, offset_for_timestamp take no lock: they read one snapshot.
      A segment dropped from the list is renamed `*.deleted` with its fds left open, and only
      closed and unlinked file.delete.delay.ms later (and never in the same call that dropped
      it), so a reader still holding the old snapshot reads valid data.
    - flush() may run in a worker thread while the loop appends (snapshot, no lock).
    - set_config, close and delete belong to the owner of the log (the event loop).
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
        self._lock = threading.Lock()
        self._view: tuple[tuple[LogSegment, ...], tuple[int, ...]] = ((), ())
        self._set_view(segments)
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset
        self.recovery_point = recovery_point
        self.producer_state = ProducerStateManager(directory)
        self.leader_epochs = LeaderEpochCache(directory)
        self.last_flush_ms = clock.now_ms()
        # (due ms, generation, segment) renamed *.deleted, closed and unlinked when due
        self._deleted: list[tuple[int, int, LogSegment]] = []
        self._generation = 0
        self.offline = False
        self.closed = False
        # fsync the rolled segment in the background at each roll (Kafka does); tests may turn it off
        self.flush_on_roll = True
        # Set by the LogManager: called with the OSError when a non-transient I/O error hits
        # this log, so the manager can take the whole log dir offline.
        self.on_storage_failure: Callable[[OSError], None] | None = None

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
            swapped = _complete_swaps_and_remove_leftovers(directory)
            base_offsets = sorted(
                int(name[: -len(LOG_SUFFIX)])
                for name in os.listdir(directory)  # names, not Paths: ~10,000 dirs are opened at start-up
                if name.endswith(LOG_SUFFIX) and name[: -len(LOG_SUFFIX)].isdigit()
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
                elif segment.base_offset in swapped or not segment.indexes_look_sane(
                    full=index == len(segments) - 1
                ):
                    segment.rebuild_indexes()
            log_end_offset = segments[-1].read_next_offset()
        except OSError as exc:
            raise storage_error(exc, "loading log", directory) from exc
        log_start_offset = max(log_start_offset, segments[0].base_offset)
        log_start_offset = min(log_start_offset, log_end_offset)
        log = cls(directory, config, clock, segments, log_start_offset, log_end_offset, log_end_offset)
        try:
            log._load_leader_epochs()
            log._load_producer_state()
        except OSError as exc:
            raise storage_error(exc, "loading the producer state and leader epochs of", directory) from exc
        return log

    def _load_producer_state(self) -> None:
        """From the latest snapshot plus a replay of the batches after it; aborted transactions the
        replay meets are put back in their segment's transaction index (a crash may have lost them)."""
        self.producer_state.load(
            self.log_start_offset, self.log_end_offset, self._batches_with_markers, self._index_aborted_txn
        )

    def _batches_with_markers(self, from_offset: int) -> Iterator[tuple[BatchHeader, Marker | None]]:
        """Headers from the batch holding `from_offset` on, each control batch with its marker."""
        segments, base_offsets = self._view
        index = self._segment_index(base_offsets, from_offset)
        for number, segment in enumerate(segments[index:]):
            position = 0
            if number == 0:
                header = segment.find_batch(from_offset)
                if header is None:
                    continue
                position = header.position
            for header in segment.iter_headers(position):
                yield header, (_read_marker(segment.read(header.position, header.size), header._replace(position=0))
                               if header.is_control else None)

    def _index_aborted_txn(self, txn: CompletedTxn, stable_offset: int) -> None:
        """Record an aborted transaction in the index of the segment holding its marker."""
        segments, base_offsets = self._view
        segment = segments[self._segment_index(base_offsets, txn.last_offset)]
        segment.txn_index.append(AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, stable_offset))

    def first_unstable_offset(self, high_watermark: int) -> int | None:
        return self.producer_state.first_unstable_offset(high_watermark)

    def aborted_transactions(self, fetch_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_offset), for a read_committed fetch:
        from the transaction indexes of the segment holding fetch_offset and the ones after it."""
        segments, base_offsets = self._view
        found: list[AbortedTxn] = []
        for segment in segments[self._segment_index(base_offsets, fetch_offset):]:
            entries, complete = segment.txn_index.collect(fetch_offset, upper_offset)
            found.extend(entries)
            if complete:
                break
        return found

    def _load_leader_epochs(self) -> None:
        """Read `leader-epoch-checkpoint` and cut it to the recovered log; rebuilt from the batch
        headers when it is missing or unreadable (a dir from before odradek wrote it)."""
        try:
            cache = LeaderEpochCache.load(self.directory)
        except ValueError as exc:
            logger.warning("rebuilding the leader epochs of %s: %s", self.topic_partition, exc)
            cache = None
        if cache is None:
            entries: list[tuple[int, int]] = []
            if self.log_end_offset > self.log_start_offset:
                for header in self.iter_batch_headers(self.log_start_offset):
                    epoch = header.partition_leader_epoch
                    if epoch >= 0 and (not entries or epoch > entries[-1][0]):
                        entries.append((epoch, header.base_offset))
            cache = LeaderEpochCache(self.directory)
            if entries:  # an empty cache needs no file until its first epoch
                cache.clear_and_write(entries)
        cache.truncate_from_end(self.log_end_offset)
        cache.truncate_from_start(self.log_start_offset)
        self.leader_epochs = cache

    # --- properties ---------------------------------------------------------------------------

    @property
    def segments(self) -> list[LogSegment]:
        return list(self._view[0])

    @property
    def active_segment(self) -> LogSegment:
        return self._view[0][-1]

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._view[0])

    def set_config(self, config: LogConfig) -> None:
        self.config = config
        for segment in self._view[0]:
            segment.config = config

    def _set_view(self, segments) -> None:
        segments = tuple(segments)
        self._view = (segments, tuple(segment.base_offset for segment in segments))

    def _check_online(self) -> None:
        if self.offline:
            raise KafkaError(
                ErrorCode.kafka_storage_error,
                f"the log dir {self.directory.parent} of {self.topic_partition} is offline after an I/O error",
            )

    def io_error(self, exc: OSError, action: str, path) -> KafkaError:
        """The KafkaError for a failed I/O call; a non-transient one takes the log dir offline."""
        if exc.errno not in TRANSIENT_ERRNOS and self.on_storage_failure is not None:
            try:
                self.on_storage_failure(exc)
            except Exception:  # noqa: BLE001 - the original error is what the caller must see
                logger.exception("marking the log dir of %s offline failed", self.topic_partition)
        return storage_error(exc, action, path)

    # --- append -------------------------------------------------------------------------------

    def append(self, buffer: bytearray, headers: list[BatchHeader], leader_epoch: int) -> AppendResult:
        """Assign offsets from log_end_offset to the validated batches in `buffer` and write them
        to the active segment (rolling first if needed) in one write.

        KAFKA_STORAGE_ERROR if the write fails; the log is then unchanged.
        """
        if not headers:
            raise ValueError("append needs at least one batch")
        self._check_online()
        with self._lock:
            return self._append_locked(buffer, headers, leader_epoch)

    def _append_locked(self, buffer: bytearray, headers: list[BatchHeader], leader_epoch: int) -> AppendResult:
        first_offset = self.log_end_offset
        next_offset = patch_base_offsets(buffer, headers, first_offset, leader_epoch)
        now = self.clock.now_ms()
        log_append_time = -1
        if self.config.message_timestamp_type == "LogAppendTime":
            log_append_time = now
            for header in headers:
                _set_log_append_time(buffer, header.position, header.size, now)
        headers = [read_batch_header(buffer, header.position) for header in headers]
        self._write_locked(buffer, headers, next_offset, now)
        return AppendResult(first_offset, next_offset - 1, log_append_time)

    def append_as_follower(self, buffer, headers: list[BatchHeader]) -> AppendResult:
        """Append batches copied from the leader, offsets and leader epochs as they are. The first
        must start at log_end_offset (the fetch asked for it); KAFKA_STORAGE_ERROR as append."""
        if not headers:
            raise ValueError("append needs at least one batch")
        self._check_online()
        with self._lock:
            if headers[0].base_offset != self.log_end_offset:
                raise KafkaError(
                    ErrorCode.offset_out_of_range,
                    f"{self.topic_partition}: batches from offset {headers[0].base_offset} do not follow "
                    f"the log end offset {self.log_end_offset}",
                )
            self._write_locked(buffer, headers, headers[-1].next_offset, self.clock.now_ms())
        return AppendResult(headers[0].base_offset, headers[-1].last_offset, -1)

    def _write_locked(self, buffer, headers: list[BatchHeader], next_offset: int, now: int) -> None:
        """One write of whole batches at the log end, then the producer state and leader epochs."""
        max_timestamp = max(header.max_timestamp for header in headers)
        try:
            segment = self._maybe_roll(len(buffer), max_timestamp, next_offset - 1, now)
            segment.append(buffer, headers)
        except OSError as exc:
            raise self.io_error(exc, "appending to", self.active_segment.log_path) from exc
        self.log_end_offset = next_offset
        producer_state = self.producer_state
        for header in headers:
            marker = _read_marker(buffer, header) if header.is_control else None
            completed = producer_state.update(header, header.base_offset, marker)
            if completed is not None and completed.aborted:
                try:
                    segment.txn_index.append(AbortedTxn(
                        completed.producer_id, completed.first_offset, completed.last_offset,
                        producer_state.stable_offset_after(completed),
                    ))
                except OSError as exc:
                    raise self.io_error(exc, "writing the transaction index of", self.directory) from exc
            if header.partition_leader_epoch > self.leader_epochs.latest_epoch:
                try:
                    self.leader_epochs.assign(header.partition_leader_epoch, header.base_offset)
                except OSError as exc:
                    raise self.io_error(exc, "writing the leader epochs of", self.directory) from exc

    @property
    def flush_due(self) -> bool:
        """flush.messages unflushed messages are waiting: the caller fsyncs (in a worker thread,
        `flush()`) before acknowledging them. Appends themselves never fsync."""
        return self.log_end_offset - self.recovery_point >= self.config.flush_messages

    def _maybe_roll(self, size: int, max_timestamp: int, last_offset: int, now: int) -> LogSegment:
        segment = self._view[0][-1]
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
            return self._roll_locked()
        return segment

    def roll(self) -> LogSegment:
        """Start a new active segment at log_end_offset (no-op if the active one is empty)."""
        with self._lock:
            try:
                return self._roll_locked()
            except OSError as exc:
                raise self.io_error(exc, "rolling", self.directory) from exc

    def _roll_locked(self) -> LogSegment:
        active = self._view[0][-1]
        if active.size == 0:
            return active
        active.on_become_inactive()
        segment = LogSegment.create(self.directory, self.log_end_offset, self.config, self.clock)
        self.producer_state.take_snapshot(durable=False)  # fsynced with the rolled segment
        self._set_view(self._view[0] + (segment,))
        if self.flush_on_roll:
            _ROLL_FLUSHER.submit(self._flush_after_roll, segment.base_offset)
        return segment

    def _flush_after_roll(self, up_to_offset: int) -> None:
        if self.closed or self.offline:
            return
        try:
            self.flush(up_to_offset)
        except KafkaError as exc:
            logger.error("flushing %s after a roll failed: %s", self.topic_partition, exc)

    def maybe_roll_by_time(self, now_ms: int) -> bool:
        """Roll the active segment if it holds data and was created more than segment.ms ago by
        the wall clock. Append rolls by message timestamps only, so without this an idle
        partition's last segment would never close (and never become deletable).
        Safe from a worker thread. Returns whether it rolled."""
        if self.offline or self.closed:
            return False
        with self._lock:
            active = self._view[0][-1]
            if active.size == 0 or now_ms - active.created_ms <= self.config.segment_ms:
                return False
            try:
                self._roll_locked()
            except OSError as exc:
                raise self.io_error(exc, "rolling", self.directory) from exc
        logger.info("rolled %s: its active segment is older than segment.ms %d", self.topic_partition, self.config.segment_ms)
        return True

    # --- reading ------------------------------------------------------------------------------

    def _check_offset(self, offset: int) -> None:
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"offset {offset} is outside {self.topic_partition}'s log "
                f"[{self.log_start_offset}, {self.log_end_offset}]",
            )

    @staticmethod
    def _segment_index(base_offsets, offset: int) -> int:
        return max(bisect.bisect_right(base_offsets, offset) - 1, 0)

    def read(self, offset: int, max_bytes: int, max_offset: int) -> bytes:
        """The bytes of read_region's region (b"" when it is None)."""
        found = self.read_region(offset, max_bytes, max_offset)
        if found is None:
            return b""
        try:
            return found[0].read()
        except OSError as exc:
            raise self.io_error(exc, "reading", self.directory) from exc

    def read_region(self, offset: int, max_bytes: int, max_offset: int,
                    min_one_batch: bool = True) -> tuple[FileRegion, int] | None:
        """Whole batches from the one holding `offset`, none with base_offset >= max_offset, at
        most max_bytes in total except that the first batch always comes whole (KIP-74) unless
        not `min_one_batch` (a later partition of a Fetch, which gets nothing rather than more than
        is left of the response's max_bytes); from one segment, as a region of its file
        (protocol/file_region.py); with it, the offset where the data after it begins (max_offset
        when not known: a bound for the aborted transactions a read_committed consumer is told
        of). None when there is nothing to read; OFFSET_OUT_OF_RANGE outside the log."""
        self._check_online()
        self._check_offset(offset)
        if offset >= max_offset or offset >= self.log_end_offset:
            return None
        segments, base_offsets = self._view
        index = self._segment_index(base_offsets, offset)
        try:
            for at in range(index, len(segments)):
                segment = segments[at]
                header = segment.find_batch(offset)
                if header is None:
                    continue
                if header.base_offset >= max_offset or (header.size > max_bytes and not min_one_batch):
                    return None
                last = at + 1 == len(segments)
                end_offset = self.log_end_offset if last else base_offsets[at + 1]  # above every batch here
                if max_offset >= end_offset:
                    bound, after = segment.size, end_offset if last else None
                else:  # the bound lies in this segment: a lagging high watermark, an open transaction
                    stop = segment.find_batch(max_offset)
                    if stop is None:
                        bound, after = segment.size, None
                    elif stop.base_offset >= max_offset:
                        bound, after = stop.position, stop.base_offset
                    else:  # max_offset inside a batch: the batch is read whole
                        bound, after = stop.position + stop.size, None
                region, after = segment.region(header, max_bytes, bound, after)
                return region, max_offset if after is None else after
        except OSError as exc:
            raise self.io_error(exc, "reading", self.directory) from exc
        return None

    def iter_batch_headers(self, from_offset: int = 0) -> Iterator[BatchHeader]:
        """Headers of every batch from the one holding `from_offset` to the end; positions are
        relative to their segment."""
        segments, base_offsets = self._view
        index = self._segment_index(base_offsets, from_offset)
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
        for segment in self._view[0]:
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
        for segment in self._view[0]:
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
        segments = self._view[0]
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
                try:
                    segment.flush()
                except OSError:
                    if segment.closed:  # deleted or replaced meanwhile: nothing left to make durable
                        continue
                    raise
        except OSError as exc:
            if self.closed:  # closed under a background flush: not a disk failure
                raise storage_error(exc, "flushing", self.directory) from exc
            raise self.io_error(exc, "flushing", self.directory) from exc
        if target > self.recovery_point:
            self.recovery_point = min(target, self.log_end_offset)  # a truncation may have raced us
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
        with self._lock:
            try:
                segments = self._view[0]
                keep = [segment for segment in segments if segment.base_offset < offset] or list(segments[:1])
                for segment in segments[len(keep) :]:
                    segment.delete()
                self._set_view(keep)
                active = keep[-1]
                active.truncate_to(offset)
                self.log_end_offset = active.read_next_offset()
                self.leader_epochs.truncate_from_end(self.log_end_offset)
                self._load_producer_state()
            except OSError as exc:
                raise self.io_error(exc, "truncating", self.directory) from exc
            self.recovery_point = min(self.recovery_point, self.log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every segment and start an empty log at `offset`."""
        with self._lock:
            try:
                for segment in self._view[0]:
                    segment.delete()
                self._set_view([LogSegment.create(self.directory, offset, self.config, self.clock)])
                self.producer_state.truncate_fully(offset)
                self.leader_epochs.clear_and_write([])
            except OSError as exc:
                raise self.io_error(exc, "truncating", self.directory) from exc
            self.log_start_offset = self.log_end_offset = self.recovery_point = offset

    # --- retention, DeleteRecords and the cleaner's swap ---------------------------------------

    def advance_log_start_offset(self, offset: int) -> int:
        """DeleteRecords: make `offset` the log start offset (never lower it) and drop the segments
        entirely below it. The caller checks offset <= high watermark. Reads below it then get
        OFFSET_OUT_OF_RANGE. Persisted by the LogManager's log-start-offset checkpoint.
        Returns the number of segments dropped (renamed; files removed later)."""
        self._check_online()
        if offset > self.log_end_offset:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"cannot move {self.topic_partition}'s log start offset to {offset}: "
                f"the log ends at {self.log_end_offset}",
            )
        if offset <= self.log_start_offset:
            return 0
        self.log_start_offset = offset
        with self._lock:
            segments = self._view[0]
            count = 0
            while count + 1 < len(segments) and segments[count + 1].base_offset <= offset:
                count += 1
            try:
                return self._drop_oldest_locked(count, "below the log start offset", self.clock.now_ms())
            except OSError as exc:
                raise self.io_error(exc, "deleting segments of", self.directory) from exc

    def delete_retention_segments(self, now_ms: int, high_watermark: int | None = None) -> int:
        """Drop whole closed segments, oldest first, while one of Kafka's rules holds:
        - the next segment starts at or below log_start_offset (after DeleteRecords);
        - cleanup.policy has "delete" and retention.ms >= 0 and the segment's largest
          timestamp (its file's mtime if it has none) is more than retention.ms before now_ms;
        - cleanup.policy has "delete" and retention.bytes >= 0 and the log would still hold at
          least retention.bytes without it (Kafka's rule: the log never shrinks below it).
        Never the active segment; never a segment reaching above `high_watermark` (when given).
        Files are renamed `*.deleted` now and removed file.delete.delay.ms later by a later call
        of this method (or at close). Advances log_start_offset to the new first segment.
        Safe from a worker thread while the loop appends and reads. Returns segments dropped."""
        if self.offline or self.closed:
            return 0
        self._remove_deleted_segments(now_ms)
        config = self.config
        with self._lock:
            segments = self._view[0]
            upper = self.log_end_offset if high_watermark is None else min(high_watermark, self.log_end_offset)
            excess = sum(segment.size for segment in segments) - config.retention_bytes
            count = 0
            reasons = []
            try:
                for index, segment in enumerate(segments[:-1]):
                    next_base = segments[index + 1].base_offset
                    if next_base > upper:
                        break
                    if next_base <= self.log_start_offset:
                        reasons.append("below the log start offset")
                    elif config.deletes and config.retention_ms >= 0 and (
                        now_ms - self._largest_timestamp(segment) > config.retention_ms
                    ):
                        reasons.append(f"older than retention.ms {config.retention_ms}")
                    elif config.deletes and config.retention_bytes >= 0 and excess - segment.size >= 0:
                        reasons.append(f"log size above retention.bytes {config.retention_bytes}")
                    else:
                        break
                    excess -= segment.size
                    count += 1
                if count:
                    logger.info(
                        "deleting %d segments of %s (%s)", count, self.topic_partition, "; ".join(sorted(set(reasons)))
                    )
                return self._drop_oldest_locked(count, reasons[0] if reasons else "", now_ms)
            except OSError as exc:
                raise self.io_error(exc, "deleting segments of", self.directory) from exc

    @staticmethod
    def _largest_timestamp(segment: LogSegment) -> int:
        max_timestamp = segment.max_timestamp()
        if max_timestamp is not None:
            return max_timestamp[0]
        return segment.last_modified_ms()

    def _drop_oldest_locked(self, count: int, reason: str, now_ms: int) -> int:
        """Drop the first `count` segments (never the active one); caller holds _lock."""
        segments = self._view[0]
        count = min(count, len(segments) - 1)
        if count <= 0:
            return 0
        for segment in segments[:count]:
            logger.debug("deleting segment %s of %s: %s", segment.log_path.name, self.topic_partition, reason)
            self._schedule_deletion(segment, now_ms)
        remaining = segments[count:]
        self._set_view(remaining)
        self.log_start_offset = max(self.log_start_offset, remaining[0].base_offset)
        self.leader_epochs.truncate_from_start(self.log_start_offset)
        self.producer_state.delete_snapshots_below(remaining[0].base_offset)
        return count

    def _schedule_deletion(self, segment: LogSegment, now_ms: int) -> None:
        """Rename to *.deleted now; close and unlink after file.delete.delay.ms (caller holds _lock)."""
        segment.rename_for_deletion()
        self._deleted.append((now_ms + self.config.file_delete_delay_ms, self._generation, segment))

    def _remove_deleted_segments(self, now_ms: int | None) -> int:
        """Close and unlink `*.deleted` segments that are due (all of them if now_ms is None).
        Segments dropped during the current call are left for the next one, so a reader that
        took its snapshot just before the drop finishes with valid fds."""
        with self._lock:
            generation = self._generation
            self._generation += 1
            due = [
                entry for entry in self._deleted
                if now_ms is None or (entry[0] <= now_ms and entry[1] < generation)
            ]
            self._deleted = [entry for entry in self._deleted if entry not in due]
        for _, _, segment in due:
            segment.delete()
        return len(due)

    def replace_segments(self, old: list[LogSegment], new: list[LogSegment]) -> bool:
        """The cleaner's swap: replace the consecutive closed segments `old` by `new`, which the
        cleaner built off-thread as complete `*.cleaned` files (fsynced and closed).

        Each new segment's base offset must be that of one of `old` (a segment may shrink or
        vanish, never move). Returns False, changing nothing, if the log changed under the
        cleaner (an old segment was deleted, truncated or became active); the caller then
        deletes its `.cleaned` files. Crash safety, Kafka's protocol: all new files are
        renamed `.cleaned` -> `.swap` first (the commit point), then the old segments are
        renamed `*.deleted`, then `.swap` -> final names; open() completes a swap it finds.
        Holds _lock for the renames only."""
        if not old:
            raise ValueError("replace_segments needs at least one old segment")
        old_bases = {segment.base_offset for segment in old}
        for segment in new:
            if segment.base_offset not in old_bases:
                raise ValueError(f"new segment {segment.log_path} does not start where an old one did ({sorted(old_bases)})")
        sizes = {id(segment): segment.size for segment in old}
        with self._lock:
            segments = self._view[0]
            try:
                start = segments.index(old[0])
            except ValueError:
                return False
            if (
                tuple(segments[start : start + len(old)]) != tuple(old)
                or start + len(old) >= len(segments)  # the active segment is never replaced
                or any(segment.size != sizes[id(segment)] for segment in old)
                or self.offline
                or self.closed
            ):
                return False
            now_ms = self.clock.now_ms()
            try:
                for segment in new:
                    segment.close()
                    _rename_files(segment.directory, segment.base_offset, CLEANED_SUFFIX, SWAP_SUFFIX)
                for segment in old:
                    self._schedule_deletion(segment, now_ms)
                installed = []
                for segment in new:
                    _rename_files(segment.directory, segment.base_offset, SWAP_SUFFIX, "")
                    installed.append(LogSegment(self.directory, segment.base_offset, self.config, self.clock))
            except OSError as exc:
                raise self.io_error(exc, "swapping cleaned segments of", self.directory) from exc
            self._set_view(segments[:start] + tuple(installed) + segments[start + len(old) :])
        return True

    def close(self) -> None:
        """Close every segment; the producer state is snapshotted at the log end, so the next
        open reads it instead of replaying the log."""
        self.closed = True
        segments = self._view[0]
        try:
            segments[-1].on_become_inactive()
            segments[-1].time_index.flush()
            if not self.offline:
                self.producer_state.take_snapshot(durable=True)
        except OSError:
            logger.exception("could not write the final time index entry or producer snapshot of %s", self.directory)
        for segment in segments:
            segment.close()
        try:
            self._remove_deleted_segments(None)
        except OSError:
            logger.exception("could not remove deleted segments of %s", self.directory)

    def delete(self) -> None:
        """Close and remove the whole partition directory."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _rename_files(directory: Path, base_offset: int, from_suffix: str, to_suffix: str) -> None:
    """Rename a segment's `.log`, `.index` and `.timeindex` from one suffix to another (the
    `.log` last, so a `.log` with `to_suffix` means the other two have been renamed too)."""
    for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX, LOG_SUFFIX):
        name = segment_file_name(base_offset, suffix)
        source = directory / (name + from_suffix)
        if source.exists():
            os.replace(source, directory / (name + to_suffix))


def _complete_swaps_and_remove_leftovers(directory: Path) -> set[int]:
    """At open: delete `*.cleaned`, `*.deleted` and `*.tmp` files, and complete any interrupted swap.

    A `<base>.log.swap` was fully written and fsynced before it was renamed from `.cleaned`,
    so it wins: every segment whose base offset lies in [base, the swap's next offset) is
    removed and the swap file takes the final name. Returns the base offsets of segments so
    installed (their indexes are rebuilt, not trusted)."""
    swapped: set[int] = set()
    names = os.listdir(directory)
    for name in names:
        if name.endswith(CLEANED_SUFFIX) or name.endswith(DELETED_SUFFIX) or name.endswith(TEMP_SUFFIX):
            path = directory / name
            logger.info("removing leftover %s", path)
            path.unlink(missing_ok=True)
    swaps = sorted(
        int(name.split(".")[0])
        for name in names
        if name.endswith(LOG_SUFFIX + SWAP_SUFFIX) and name.split(".")[0].isdigit()
    )
    for base in swaps:
        swap_path = directory / (segment_file_name(base, LOG_SUFFIX) + SWAP_SUFFIX)
        next_offset = _next_offset_of_file(swap_path, base)
        for path in list(directory.iterdir()):
            stem = path.name.split(".")[0]
            if path.name.endswith(SWAP_SUFFIX) or not stem.isdigit():
                continue
            if base <= int(stem) < max(next_offset, base + 1):
                logger.warning("removing %s: an interrupted compaction swap replaces it", path)
                path.unlink(missing_ok=True)
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
            (directory / (segment_file_name(base, suffix) + SWAP_SUFFIX)).unlink(missing_ok=True)
        os.replace(swap_path, directory / segment_file_name(base, LOG_SUFFIX))
        logger.warning("completed an interrupted compaction swap of %s", swap_path)
        swapped.add(base)
    if any(name.endswith(SWAP_SUFFIX) for name in names):
        for name in os.listdir(directory):
            if name.endswith(SWAP_SUFFIX):  # index files of a swap that never reached its commit point
                (directory / name).unlink(missing_ok=True)
    return swapped


def _next_offset_of_file(path: Path, base_offset: int) -> int:
    """The offset after the last whole batch of a `.log`-format file (header walk only)."""
    next_offset = base_offset
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        position = 0
        while size - position >= BATCH_HEADER_SIZE:
            header = read_batch_header(os.pread(f.fileno(), BATCH_HEADER_SIZE, position), 0)
            if header.batch_length <= 0 or position + header.size > size:
                break
            next_offset = header.next_offset
            position += header.size
    return next_offset


def _read_marker(buffer, header: BatchHeader) -> Marker | None:
    decoded = decode_marker(buffer, header)
    return Marker(*decoded) if decoded is not None else None


def _set_log_append_time(buffer: bytearray, position: int, size: int, now_ms: int) -> None:
    """Stamp a batch with LogAppendTime: maxTimestamp = now, timestamp-type bit, new CRC32C."""
    attributes = _INT16.unpack_from(buffer, position + ATTRIBUTES_OFFSET)[0] | TIMESTAMP_TYPE_FLAG
    _INT16.pack_into(buffer, position + ATTRIBUTES_OFFSET, attributes)
    _INT64.pack_into(buffer, position + _MAX_TIMESTAMP_OFFSET, now_ms)
    crc = crc32c(memoryview(buffer)[position + ATTRIBUTES_OFFSET : position + size])
    _UINT32.pack_into(buffer, position + CRC_OFFSET, crc)
