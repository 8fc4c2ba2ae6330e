"""Log compaction (`cleanup.policy=compact`): keep the latest record per key, drop the rest.

Owns choosing which compacted logs to clean, building the key -> latest offset map, copying
segments into `*.cleaned` files, and the `cleaner-offset-checkpoint` file of each log dir.
Must not block produce or fetch: everything here runs in one worker thread; the only step
that touches a live log is PartitionLog.replace_segments (renames under the log's lock).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from odradek.clock import Clock
from odradek.log.checkpoint import OffsetCheckpointFile
from odradek.log.partition_log import PartitionLog
from odradek.log.segment import CLEANED_SUFFIX, LogSegment
from odradek.protocol.errors import KafkaError
from odradek.protocol.records import BatchHeader, Record, decode_records, encode_batch, read_batch_header
from odradek.protocol.topic_partition import TopicPartition

logger = logging.getLogger(__name__)

CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
_LONG_MAX = 9223372036854775807
_WRITE_BUFFER_BYTES = 1 << 20
_DIGEST_BYTES = 16


def key_digest(key: bytes) -> bytes:
    """The offset map's key: the key itself when shorter than 16 bytes, else a 16-byte
    BLAKE2b digest (Kafka hashes every key with MD5; short keys need no hashing, and a raw
    key can never equal a digest because their lengths differ)."""
    if len(key) < _DIGEST_BYTES:
        return key
    return hashlib.blake2b(key, digest_size=_DIGEST_BYTES).digest()


@dataclass
class CleanerStats:
    """Totals since the cleaner was created (for metrics and bench/recovery.py)."""

    logs_cleaned: int = 0
    segments_replaced: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_removed: int = 0
    seconds: float = 0.0


@dataclass
class _Plan:
    topic_partition: TopicPartition
    log: PartitionLog
    cleanable: list[LogSegment]  # closed segments the cleaner may rewrite, oldest first
    next_bases: list[int]  # base offset of the segment after each cleanable one
    clean_count: int  # cleanable[:clean_count] were cleaned before (below the first dirty offset)
    dirty_ratio: float


class LogCleaner:
    """Compacts every log whose cleanup.policy contains "compact", Kafka's way.

    One pass over a log (clean_once): the cleanable part is the closed segments below the
    active segment, below `uncleanable_offset_of(tp)` (the broker passes the high watermark /
    last stable offset) and below the first segment younger than min.compaction.lag.ms.
    It splits at the first dirty offset (from `cleaner-offset-checkpoint`) into a clean head
    and a dirty tail. A log is cleaned when dirty bytes / cleanable bytes >=
    min.cleanable.dirty.ratio, or when its first dirty segment is older than
    max.compaction.lag.ms, or when tombstones it kept have reached their delete.retention.ms.
    Then: build key -> latest offset over the dirty tail (at most `max_keys` keys; the tail
    ends at the segment where the map filled), and recopy every cleanable segment up to there:
    a record survives if no later offset has its key; a tombstone (null value) survives
    until delete.retention.ms after its segment was first cleaned (the segment's mtime is set to
    that time and carried over on later recopies); records without a key are dropped (Kafka
    does the same). Records of aborted transactions (known from the transaction indexes) are
    removed and never shadow a key; transaction markers are kept. Offsets are kept (gaps appear). A batch left whole is copied byte for byte;
    a batch that lost records is re-encoded with encode_batch keeping producer id, epoch,
    sequence, codec, leader epoch and timestamps, split into runs of consecutive offsets so
    every batch keeps recordCount == lastOffsetDelta + 1 (what every v2 validator, ours
    included, checks). Control batches are copied as they are.
    Each old segment is replaced by at most one new segment with the same base offset (an empty
    one is dropped), so segments shrink but are never merged.
    Files: `<base>.log.cleaned` (+ indexes) written and fsynced here, then handed to
    PartitionLog.replace_segments, which renames `.cleaned` -> `.swap` -> final.
    Concurrency: clean_once must not run twice at once (one cleaner thread); it runs while the
    event loop appends to and reads the same logs: it reads only closed segments (pread) and
    swaps them in under the log's lock; if the log changed meanwhile (truncation, retention,
    deletion) the swap is refused and the pass for that log stops, losing nothing.
    """

    def __init__(
        self,
        log_manager,
        clock: Clock,
        *,
        max_keys: int = 1_000_000,
        uncleanable_offset_of: Callable[[TopicPartition], int | None] | None = None,
    ) -> None:
        self.log_manager = log_manager
        self.clock = clock
        self.max_keys = max_keys
        self.uncleanable_offset_of = uncleanable_offset_of
        self.stats = CleanerStats()
        self._first_dirty: dict[TopicPartition, int] | None = None
        self._tombstone_deadline: dict[TopicPartition, int] = {}
        # The log object each checkpoint entry was made for: a topic deleted and created again
        # under the same name is a new log whose first dirty offset starts over.
        self._cleaned_log: dict[TopicPartition, PartitionLog] = {}

    # --- checkpoint ---------------------------------------------------------------------------

    def _load_checkpoints(self) -> dict[TopicPartition, int]:
        first_dirty: dict[TopicPartition, int] = {}
        for log_dir in self.log_manager.log_dirs:
            if log_dir in self.log_manager.offline_dirs:
                continue
            try:
                first_dirty.update(OffsetCheckpointFile(log_dir / CLEANER_OFFSET_CHECKPOINT).read())
            except (OSError, ValueError) as exc:
                logger.warning("ignoring %s: %s (those logs are cleaned from the start)", log_dir / CLEANER_OFFSET_CHECKPOINT, exc)
        return first_dirty

    def _write_checkpoints(self) -> None:
        assert self._first_dirty is not None
        by_dir: dict[Path, dict[TopicPartition, int]] = {d: {} for d in self.log_manager.log_dirs}
        for tp, offset in list(self._first_dirty.items()):
            log_dir = self.log_manager.log_dir_of(tp)
            if log_dir is None:
                del self._first_dirty[tp]  # the log was deleted
                self._cleaned_log.pop(tp, None)
                continue
            by_dir.setdefault(log_dir, {})[tp] = offset
        for log_dir, offsets in by_dir.items():
            if log_dir in self.log_manager.offline_dirs:
                continue
            try:
                OffsetCheckpointFile(log_dir / CLEANER_OFFSET_CHECKPOINT).write(offsets)
            except OSError as exc:
                logger.error("could not write %s: %s", log_dir / CLEANER_OFFSET_CHECKPOINT, exc)

    def first_dirty_offset(self, tp: TopicPartition) -> int | None:
        """Where the uncleaned part of `tp`'s log starts, as far as the cleaner knows."""
        if self._first_dirty is None:
            self._first_dirty = self._load_checkpoints()
        return self._first_dirty.get(tp)

    # --- passes -------------------------------------------------------------------------------

    def clean_once(self, now_ms: int) -> int:
        """Clean every compacted log that needs it (dirtiest first). Call in a worker thread every
        log.cleaner.backoff.ms. Returns the number of logs cleaned."""
        if self._first_dirty is None:
            self._first_dirty = self._load_checkpoints()
        plans = []
        for tp, log in list(self.log_manager.logs.items()):
            if not log.config.compacts or log.offline or log.closed:
                continue
            try:
                plan = self._plan(tp, log, now_ms)
            except (OSError, KafkaError) as exc:
                logger.error("cannot plan cleaning of %s: %s", tp, exc)
                continue
            if plan is not None:
                plans.append(plan)
        plans.sort(key=lambda plan: plan.dirty_ratio, reverse=True)
        cleaned = 0
        for plan in plans:
            try:
                if self._clean(plan, now_ms):
                    cleaned += 1
            except Exception:  # noqa: BLE001 - one bad log must not stop the cleaner
                # Not taking the dir offline here: an OSError is usually a race with retention or
                # topic deletion renaming the files; a real disk failure shows on the loop's I/O.
                if plan.log.closed:
                    logger.info("stopped cleaning %s: the log was closed", plan.topic_partition)
                else:
                    logger.exception("cleaning %s failed; it is retried next pass", plan.topic_partition)
                self._remove_cleaned_files(plan.log.directory)
        if plans:
            self._write_checkpoints()
        return cleaned

    def _plan(self, tp: TopicPartition, log: PartitionLog, now_ms: int) -> _Plan | None:
        config = log.config
        segments = log.segments
        limit = segments[-1].base_offset
        if self.uncleanable_offset_of is not None:
            bound = self.uncleanable_offset_of(tp)
            if bound is not None:
                limit = min(limit, bound)
        cleanable: list[LogSegment] = []
        next_bases: list[int] = []
        for index, segment in enumerate(segments[:-1]):
            next_base = segments[index + 1].base_offset
            if next_base > limit:
                break
            if config.min_compaction_lag_ms > 0:
                max_timestamp = segment.max_timestamp()
                if max_timestamp is not None and now_ms - max_timestamp[0] < config.min_compaction_lag_ms:
                    break
            cleanable.append(segment)
            next_bases.append(next_base)
        if not cleanable:
            return None
        first_dirty = self.first_dirty_offset(tp)
        if self._cleaned_log.get(tp, log) is not log:
            first_dirty = None
            self._tombstone_deadline.pop(tp, None)
        if first_dirty is None or first_dirty < log.log_start_offset or first_dirty > log.log_end_offset:
            first_dirty = log.log_start_offset
        clean_count = sum(1 for next_base in next_bases if next_base <= first_dirty)
        clean_bytes = sum(segment.size for segment in cleanable[:clean_count])
        dirty_bytes = sum(segment.size for segment in cleanable[clean_count:])
        dirty_ratio = dirty_bytes / max(clean_bytes + dirty_bytes, 1)
        overdue = False
        if clean_count < len(cleanable) and config.max_compaction_lag_ms < _LONG_MAX:
            overdue = now_ms - cleanable[clean_count].rolling_timestamp() > config.max_compaction_lag_ms
        deadline = self._tombstone_deadline.get(tp)
        tombstones_due = deadline is not None and deadline <= now_ms
        if dirty_bytes == 0 and not tombstones_due:
            return None
        if dirty_ratio < config.min_cleanable_dirty_ratio and not overdue and not tombstones_due:
            return None
        return _Plan(tp, log, cleanable, next_bases, clean_count, dirty_ratio)

    def _clean(self, plan: _Plan, now_ms: int) -> bool:
        started = time.monotonic()
        log = plan.log
        config = log.config
        offset_map: dict[bytes, int] = {}
        aborted = _aborted_batches(log, plan.next_bases[-1])
        end = plan.clean_count
        for segment in plan.cleanable[plan.clean_count :]:
            for header, data in segment.iter_batches():
                self.stats.bytes_read += header.size
                if header.is_control or aborted(header):
                    continue
                for record in decode_records(data, header._replace(position=0)):
                    if record.key is not None:
                        offset_map[key_digest(record.key)] = record.offset
            end += 1
            if len(offset_map) >= self.max_keys:
                break
        deadline: int | None = None
        removed_before = self.stats.records_removed
        for index, segment in enumerate(plan.cleanable[:end]):
            was_clean = index < plan.clean_count
            cleaned_at = segment.last_modified_ms() if was_clean else now_ms
            drop_tombstones = was_clean and cleaned_at + config.delete_retention_ms <= now_ms
            replacement, changed, kept_tombstone = self._recopy(log, segment, offset_map, drop_tombstones, cleaned_at, aborted)
            if kept_tombstone:
                due = cleaned_at + config.delete_retention_ms
                deadline = due if deadline is None else min(deadline, due)
            if not changed:
                if not was_clean:
                    try:
                        segment.set_last_modified_ms(cleaned_at)
                    except FileNotFoundError:  # retention dropped it meanwhile
                        pass
                continue
            new = [] if replacement is None else [replacement]
            if not log.replace_segments([segment], new):
                logger.info("%s changed while it was being cleaned; trying again next pass", plan.topic_partition)
                self._remove_cleaned_files(log.directory)
                return False
            self.stats.segments_replaced += 1
        assert self._first_dirty is not None
        self._first_dirty[plan.topic_partition] = plan.next_bases[end - 1]
        self._cleaned_log[plan.topic_partition] = log
        if deadline is None:
            self._tombstone_deadline.pop(plan.topic_partition, None)
        else:
            self._tombstone_deadline[plan.topic_partition] = deadline
        elapsed = time.monotonic() - started
        self.stats.seconds += elapsed
        self.stats.logs_cleaned += 1
        logger.info(
            "cleaned %s up to offset %d: %d segments, %d keys in the offset map, %d records removed in %.3f s",
            plan.topic_partition, plan.next_bases[end - 1], end, len(offset_map),
            self.stats.records_removed - removed_before, elapsed,
        )
        return True

    def _recopy(
        self,
        log: PartitionLog,
        segment: LogSegment,
        offset_map: dict[bytes, int],
        drop_tombstones: bool,
        cleaned_at: int,
        aborted: Callable[[BatchHeader], bool] = lambda header: False,
    ) -> tuple[LogSegment | None, bool, bool]:
        """Copy the survivors of `segment` into a `.cleaned` segment.

        Returns (the closed, fsynced `.cleaned` segment or None if nothing survives, whether
        anything was removed, whether a tombstone survived). Writes nothing at all until the
        first removal: a segment that loses nothing is not copied."""
        out: LogSegment | None = None
        buffer = bytearray()
        headers: list[BatchHeader] = []
        kept_tombstone = False
        unchanged_until = 0  # bytes of `segment` copied verbatim before the first change

        def emit(batch) -> None:
            headers.append(read_batch_header(batch, 0)._replace(position=len(buffer)))
            buffer.extend(batch)
            if len(buffer) >= _WRITE_BUFFER_BYTES:
                flush_buffer()

        def flush_buffer() -> None:
            if buffer:
                out.append(buffer, headers)
                self.stats.bytes_written += len(buffer)
                buffer.clear()
                headers.clear()

        for header, data in segment.iter_batches():
            if header.is_control:
                kept = None
            elif aborted(header):
                kept = []
                self.stats.records_read += header.record_count
                self.stats.records_removed += header.record_count
            else:
                records = decode_records(data, header._replace(position=0))
                self.stats.records_read += len(records)
                kept = []
                for record in records:
                    if record.key is None:
                        continue
                    latest = offset_map.get(key_digest(record.key))
                    if latest is not None and latest > record.offset:
                        continue
                    if record.value is None:
                        if drop_tombstones:
                            continue
                        kept_tombstone = True
                    kept.append(record)
                if len(kept) == len(records):
                    kept = None
                else:
                    self.stats.records_removed += len(records) - len(kept)
            if out is None:
                if kept is None:
                    unchanged_until = header.position + header.size
                    continue
                # The first change: start the copy with the untouched prefix.
                out = self._create_cleaned(log, segment.base_offset)
                for prefix_header, prefix in segment.iter_batches():
                    if prefix_header.position >= unchanged_until:
                        break
                    emit(prefix)
            if kept is None:
                emit(data)
            else:
                for batch in _encode_runs(header, kept):
                    emit(batch)
        if out is None:
            return None, False, kept_tombstone
        flush_buffer()
        if out.size == 0:
            out.delete()
            return None, True, kept_tombstone
        out.on_become_inactive()
        out.flush()
        out.close()
        out.set_last_modified_ms(cleaned_at)
        return out, True, kept_tombstone

    @staticmethod
    def _create_cleaned(log: PartitionLog, base_offset: int) -> LogSegment:
        stale = LogSegment(log.directory, base_offset, log.config, log.clock, CLEANED_SUFFIX)
        stale.delete()
        return LogSegment.create(log.directory, base_offset, log.config, log.clock, CLEANED_SUFFIX)

    @staticmethod
    def _remove_cleaned_files(directory: Path) -> None:
        try:
            for path in directory.glob(f"*{CLEANED_SUFFIX}"):
                path.unlink(missing_ok=True)
        except OSError:
            pass


def _aborted_batches(log: PartitionLog, upper_offset: int) -> Callable[[BatchHeader], bool]:
    """Whether a batch belongs to an aborted transaction (its producer's transaction that ended
    with an ABORT marker, from the transaction indexes below `upper_offset`)."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for txn in log.aborted_transactions(log.log_start_offset, upper_offset):
        ranges.setdefault(txn.producer_id, []).append((txn.first_offset, txn.last_offset))
    if not ranges:
        return lambda header: False

    def aborted(header: BatchHeader) -> bool:
        spans = ranges.get(header.producer_id) if header.is_transactional else None
        return spans is not None and any(first <= header.base_offset <= last for first, last in spans)

    return aborted


def _encode_runs(header: BatchHeader, kept: list[Record]) -> list[bytes]:
    """`kept` records of the batch `header` as batches of consecutive offsets, keeping the
    original batch's producer fields (sequence shifted by the offset), codec, timestamp type,
    leader epoch and transactional flag."""
    batches = []
    start = 0
    for end in range(1, len(kept) + 1):
        if end < len(kept) and kept[end].offset == kept[end - 1].offset + 1:
            continue
        run = kept[start:end]
        base_sequence = header.base_sequence
        if base_sequence >= 0:
            base_sequence = (base_sequence + run[0].offset - header.base_offset) % (1 << 31)
        batches.append(
            encode_batch(
                run,
                base_offset=run[0].offset,
                codec=header.compression,
                timestamp_type=1 if header.is_log_append_time else 0,
                producer_id=header.producer_id,
                producer_epoch=header.producer_epoch,
                base_sequence=base_sequence,
                partition_leader_epoch=header.partition_leader_epoch,
                transactional=header.is_transactional,
            )
        )
        start = end
    return batches
