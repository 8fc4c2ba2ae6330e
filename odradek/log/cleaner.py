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
from bisect import bisect_left
from dataclasses import dataclass
from itertools import compress, repeat
from operator import le
from pathlib import Path
from typing import Callable, Iterator

from odradek.clock import Clock
from odradek.log.checkpoint import OffsetCheckpointFile
from odradek.log.partition_log import PartitionLog
from odradek.log.segment import CLEANED_SUFFIX, LogSegment
from odradek.protocol.compression import decompress
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import (
    BATCH_HEADER_SIZE,
    COMPRESSION_MASK,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_FLAG,
    TRANSACTIONAL_FLAG,
    BatchHeader,
    Record,
    assemble_batch,
    decode_records,
    encode_batch,
    read_batch_header,
    read_varint,
    write_varint,
)
from odradek.protocol.topic_partition import TopicPartition

logger = logging.getLogger(__name__)

CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
_LONG_MAX = 9223372036854775807
_WRITE_BUFFER_BYTES = 1 << 20
_READ_CHUNK_BYTES = 8 << 20
_DIGEST_BYTES = 16
_UNCLEANABLE = "not cleaning it again until the broker restarts or the partition is created anew (marked uncleanable)"
_blake2b = hashlib.blake2b


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
    dirty_bytes: int


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
    removed and never shadow a key; transaction markers are kept. Offsets are kept (gaps appear).
    Records are never decoded into objects (DESIGN §4: this is the one per-record loop, so it
    works on bytes): the map is built from each batch's keys, read by a varint walk that stops
    at each value, under the key itself when shorter than 16 bytes, else its digest; the
    records of the dirty tail are then settled batch by batch from the map's offsets alone (a
    record there survives exactly when the map holds its offset), so a batch that loses all or
    none of its records is not read again; clean segments are walked for their keys. A batch left
    whole is copied byte for byte; a batch that lost records becomes runs of consecutive offsets
    (recordCount == lastOffsetDelta + 1, what every v2 validator, ours included, checks) built
    from the kept records' bytes, only their offset and timestamp deltas rewritten when the run
    does not start at the batch's first record, keeping producer id, epoch, sequence, codec,
    leader epoch and timestamps. Control batches are copied as they are.
    Memory: segments are read in 8 MiB chunks and written in 1 MiB buffers; the map holds at
    most `max_keys` entries (plus a sorted copy of its offsets, and the offsets of tombstones that
    are their key's latest).
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
        # Logs a pass could not clean (corrupt records, or a fault of the cleaner's own), with
        # their dirty bytes then: skipped until the broker restarts or the log is replaced (the
        # topic deleted and created again, the replica moved), as Kafka marks such a partition
        # uncleanable (KIP-346) instead of failing on it again every pass.
        self._uncleanable: dict[TopicPartition, tuple[PartitionLog, int]] = {}

    def uncleanable(self) -> dict[Path, tuple[int, int]]:
        """Per log directory, (partitions marked uncleanable, their dirty bytes when marked): Kafka's
        uncleanable-partitions-count and uncleanable-bytes."""
        by_dir: dict[Path, tuple[int, int]] = {}
        for log, dirty_bytes in list(self._uncleanable.values()):
            count, total = by_dir.get(log.directory.parent, (0, 0))
            by_dir[log.directory.parent] = (count + 1, total + dirty_bytes)
        return by_dir

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
        logs = dict(self.log_manager.logs)
        self._uncleanable = {tp: entry for tp, entry in self._uncleanable.items() if logs.get(tp) is entry[0]}
        for tp, log in logs.items():
            if not log.config.compacts or log.offline or log.closed or tp in self._uncleanable:
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
            tp = plan.topic_partition
            try:
                if self._clean(plan, now_ms):
                    cleaned += 1
            except Exception as exc:  # noqa: BLE001 - one bad log must not stop the cleaner
                self._remove_cleaned_files(plan.log.directory)
                if plan.log.closed:
                    logger.info("stopped cleaning %s: the log was closed", tp)
                elif isinstance(exc, OSError):
                    # Not taking the dir offline here: an OSError is usually a race with retention
                    # or topic deletion renaming the files; a real disk failure shows on the loop's I/O.
                    logger.warning("cleaning %s failed: %s; it is retried next pass", tp, exc)
                else:
                    if isinstance(exc, KafkaError):  # the log's own bytes: one line says it all
                        logger.error("cannot clean %s: %s; %s", tp, exc, _UNCLEANABLE)
                    else:
                        logger.exception("cleaning %s failed; %s", tp, _UNCLEANABLE)
                    self._uncleanable[tp] = (plan.log, plan.dirty_bytes)
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
        return _Plan(tp, log, cleanable, next_bases, clean_count, dirty_ratio, dirty_bytes)

    def _clean(self, plan: _Plan, now_ms: int) -> bool:
        started = time.monotonic()
        log = plan.log
        config = log.config
        aborted = _aborted_batches(log, plan.next_bases[-1])
        offset_map, dirty, end = self._build_offset_map(plan, aborted)
        deadline: int | None = None
        removed_before = self.stats.records_removed
        for index, segment in enumerate(plan.cleanable[:end]):
            was_clean = index < plan.clean_count
            cleaned_at = segment.last_modified_ms() if was_clean else now_ms
            drop_tombstones = was_clean and cleaned_at + config.delete_retention_ms <= now_ms
            replacement, changed, kept_tombstone = self._recopy(
                log, segment, offset_map, drop_tombstones, cleaned_at, aborted, None if was_clean else dirty
            )
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

    def _build_offset_map(
        self, plan: _Plan, aborted: Callable[[BatchHeader], bool]
    ) -> tuple[dict[bytes, int], _DirtyIndex, int]:
        """key digest -> latest offset over the dirty segments (from plan.clean_count on, up to and
        including the segment where the map reached max_keys), what _recopy needs to settle a dirty
        batch without looking at its records, and the index of the first segment not covered."""
        offset_map: dict = {}
        tombstones: list[tuple[bytes, int]] = []  # (key digest, offset), pruned to the live ones now and then
        irregular: set[int] = set()
        stats = self.stats
        end = plan.clean_count
        for segment in plan.cleanable[plan.clean_count :]:
            for chunk, _, headers in _read_chunks(segment):
                for header in headers:
                    stats.bytes_read += header.size
                    count = header.record_count
                    if header.is_control or count == 0 or aborted(header):
                        continue
                    base_offset = header.base_offset
                    body, start, stop = _records_section(chunk, header)
                    scanned = _scan_keys(body, start, stop, count) if header.last_offset_delta == count - 1 else None
                    if scanned is not None:
                        keys, tombstone_indexes, _ = scanned
                        offsets = range(base_offset, base_offset + count)
                    else:
                        irregular.add(base_offset)
                        keys, offsets, tombstone_indexes = _decoded_keys(chunk, header)
                    # A record without a key is added under None, removed below: it is never kept and
                    # shadows nothing.
                    offset_map.update(zip(keys, offsets))
                    if tombstone_indexes:
                        tombstones.extend((keys[i], offsets[i]) for i in tombstone_indexes)
                        if len(tombstones) > 2 * len(offset_map) + 1024:
                            tombstones = [(key, offset) for key, offset in tombstones if offset_map.get(key) == offset]
            offset_map.pop(None, None)
            end += 1
            if len(offset_map) >= self.max_keys:
                break
        live_tombstones = sorted(offset for key, offset in tombstones if offset_map.get(key) == offset)
        return offset_map, _DirtyIndex(sorted(offset_map.values()), live_tombstones, irregular), end

    def _recopy(
        self,
        log: PartitionLog,
        segment: LogSegment,
        offset_map: dict[bytes, int],
        drop_tombstones: bool,
        cleaned_at: int,
        aborted: Callable[[BatchHeader], bool] = lambda header: False,
        dirty: _DirtyIndex | None = None,
    ) -> tuple[LogSegment | None, bool, bool]:
        """Copy the survivors of `segment` into a `.cleaned` segment.

        `dirty` is given for a segment whose records all went into `offset_map`: its batches are
        then settled from the map's offsets alone, and only batches that keep some of their records
        are read record by record. Returns (the closed, fsynced `.cleaned` segment or None if
        nothing survives, whether anything was removed, whether a tombstone survived). Writes
        nothing at all until the first removal: a segment that loses nothing is not copied."""
        out: LogSegment | None = None
        buffer = bytearray()
        headers: list[BatchHeader] = []
        kept_tombstone = False
        unchanged_until = 0  # bytes of `segment` copied verbatim before the first change
        stats = self.stats

        def emit(batch, header: BatchHeader) -> None:
            headers.append(header._replace(position=len(buffer)))
            buffer.extend(batch)
            if len(buffer) >= _WRITE_BUFFER_BYTES:
                flush_buffer()

        def flush_buffer() -> None:
            if buffer:
                out.append(buffer, headers)
                stats.bytes_written += len(buffer)
                buffer.clear()
                headers.clear()

        for chunk, chunk_position, batch_headers in _read_chunks(segment):
            for header in batch_headers:
                count = header.record_count
                if header.is_control or count == 0:
                    replacement = None  # markers stay (Kafka keeps them until the transaction is cleaned)
                elif aborted(header):
                    replacement = []
                    stats.records_read += count
                    stats.records_removed += count
                else:
                    stats.records_read += count
                    if dirty is not None and header.base_offset not in dirty.irregular:
                        replacement, removed, tombstone = dirty.settle(chunk, header)
                    else:
                        replacement, removed, tombstone = _settle_by_keys(chunk, header, offset_map, drop_tombstones)
                    stats.records_removed += removed
                    kept_tombstone = kept_tombstone or tombstone
                if out is None:
                    if replacement is None:
                        unchanged_until = chunk_position + header.position + header.size
                        continue
                    # The first change: start the copy with the untouched prefix.
                    out = self._create_cleaned(log, segment.base_offset)
                    if unchanged_until:
                        for prefix_chunk, prefix_position, prefix_headers in _read_chunks(segment):
                            if prefix_position >= unchanged_until:
                                break
                            for prefix_header in prefix_headers:
                                if prefix_position + prefix_header.position >= unchanged_until:
                                    break
                                emit(_batch_bytes(prefix_chunk, prefix_header), prefix_header)
                if replacement is None:
                    emit(_batch_bytes(chunk, header), header)
                else:
                    for batch in replacement:
                        emit(batch, read_batch_header(batch, 0))
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


@dataclass
class _DirtyIndex:
    """What the offset map says about the segments it was built from, batch by batch.

    Every record of those segments (but control, aborted and key-less ones) went into the map in
    offset order, so such a record survives exactly when the map holds its own offset (it is its
    key's latest). The survivors of a batch are therefore the map's offsets within the batch's
    range: a batch with none goes, a batch with all of them stays as it is, and only the others
    are read record by record. Tombstones there are never dropped (they were not cleaned yet), but
    whether one survives decides the next deadline, hence `live_tombstones`."""

    latest_offsets: list[int]  # the map's values, sorted
    live_tombstones: list[int]  # offsets of the tombstones that are their key's latest, sorted
    irregular: set[int]  # base offsets of batches whose offset deltas are not 0..n-1 (settled by keys)

    def settle(self, chunk: bytes, header: BatchHeader) -> tuple[list[bytes] | None, int, bool]:
        """(replacement batches, or None if the batch stays whole; records removed; whether a
        tombstone survives) for a regular batch of the dirty segments."""
        base_offset = header.base_offset
        count = header.record_count
        next_offset = base_offset + count
        latest = self.latest_offsets
        low = bisect_left(latest, base_offset)
        high = bisect_left(latest, next_offset, low)
        if high == low:
            return [], count, False
        tombstones = self.live_tombstones
        tombstone = False
        if tombstones:
            index = bisect_left(tombstones, base_offset)
            tombstone = index < len(tombstones) and tombstones[index] < next_offset
        if high - low == count:
            return None, 0, tombstone
        body, start, _ = _records_section(chunk, header)
        kept = [offset - base_offset for offset in latest[low:high]]
        return _rebuild_runs(body, start, header, kept), count - len(kept), tombstone


def _read_chunks(segment: LogSegment) -> Iterator[tuple[bytes, int, list[BatchHeader]]]:
    """The whole batches of a closed segment, read about _READ_CHUNK_BYTES at a time (memory stays
    bounded whatever the segment's size): (chunk, the chunk's position in the segment, headers of
    the batches in the chunk, positioned within it). Stops where LogSegment.iter_batches does."""
    position = 0
    size = segment.size
    while position < size:
        chunk = segment.read(position, max(_READ_CHUNK_BYTES, BATCH_HEADER_SIZE))
        headers: list[BatchHeader] = []
        within = 0
        while len(chunk) - within >= BATCH_HEADER_SIZE:
            header = read_batch_header(chunk, within)
            if header.batch_length < BATCH_HEADER_SIZE - LOG_OVERHEAD:
                break
            if within + header.size > len(chunk):
                if within == 0 and len(chunk) < header.size <= size - position:
                    chunk = segment.read(position, header.size)  # one batch larger than a chunk
                    continue
                break
            headers.append(header)
            within += header.size
        if not headers:
            return
        yield chunk, position, headers
        position += within


def _batch_bytes(chunk: bytes, header: BatchHeader) -> memoryview:
    return memoryview(chunk)[header.position : header.position + header.size]


def _records_section(chunk: bytes, header: BatchHeader) -> tuple[bytes, int, int]:
    """(buffer, start, stop) of the batch's records, decompressed if the batch is compressed."""
    start = header.position + BATCH_HEADER_SIZE
    stop = header.position + header.size
    codec = header.attributes & COMPRESSION_MASK
    if codec == 0:
        return chunk, start, stop
    body = decompress(codec, memoryview(chunk)[start:stop])
    return body, 0, len(body)


def _corrupt(what: str) -> KafkaError:
    return KafkaError(ErrorCode.corrupt_message, what)


def _scan_keys(buf: bytes, position: int, stop: int, count: int) -> tuple[list, list[int] | None, list[int] | None] | None:
    """The key digest of each of the `count` records in buf[position:stop] (None for a record
    without a key), the indexes of tombstones (null values) and of key-less records (None when
    there are none); or None if the offset deltas are not 0, 1, ... count-1 (the caller then
    decodes the batch). Reads only what precedes each value: the record layout is in records.py.

    This loop runs once per record of the dirty log: it builds no Record, reads one-byte and
    two-byte varints inline and calls read_varint only for longer ones."""
    keys: list = []
    keys_append = keys.append
    tombstones: list[int] | None = None
    keyless: list[int] | None = None
    try:
        for expected in range(0, count << 1, 2):  # the zigzag encoding of the record's index
            z = buf[position]
            if z < 0x80:
                p = position + 1
                end = p + (z >> 1)
            else:
                z2 = buf[position + 1]
                if z2 < 0x80:
                    p = position + 2
                    end = p + (((z & 0x7F) | (z2 << 7)) >> 1)
                else:
                    length, p = read_varint(buf, position)
                    end = p + length
            # attributes, then the timestamp delta: skipped
            if buf[p + 1] < 0x80:
                p += 2
            else:
                p += 2
                while buf[p] >= 0x80:
                    p += 1
                p += 1
            # the offset delta: one byte for the first 64 records, two up to 8192
            z = buf[p]
            if z == expected:  # true for a one-byte delta, or the first byte of two for records 64..127
                if z < 0x80:
                    p += 1
                elif buf[p + 1] < 0x80 and (z & 0x7F) | (buf[p + 1] << 7) == expected:
                    p += 2
                else:
                    return None
            elif z >= 0x80 and buf[p + 1] < 0x80 and (z & 0x7F) | (buf[p + 1] << 7) == expected:
                p += 2
            else:
                delta, p = read_varint(buf, p)
                if delta << 1 != expected:
                    return None
            z = buf[p]
            if not z & 0xE1:  # a key of 0..15 bytes: the key is its own digest
                p += 1
                q = p + (z >> 1)
                keys_append(buf[p:q])
            else:
                key_length, p = read_varint(buf, p)
                if key_length < 0:
                    q = p
                    keys_append(None)
                    if keyless is None:
                        keyless = []
                    keyless.append(expected >> 1)
                else:
                    q = p + key_length
                    key = buf[p:q]
                    keys_append(key if key_length < _DIGEST_BYTES else _blake2b(key, digest_size=_DIGEST_BYTES).digest())
            if q >= end:
                raise _corrupt(f"record {expected >> 1} at byte {position}: its key runs past its {end - position} bytes")
            if buf[q] == 1:  # value length -1
                if tombstones is None:
                    tombstones = []
                tombstones.append(expected >> 1)
            position = end
    except IndexError as exc:
        raise _corrupt(f"records run past the end of the batch at byte {position}") from exc
    if position != stop:
        raise _corrupt(f"{count} records end at byte {position}, the batch at byte {stop}")
    return keys, tombstones, keyless


def _record_starts(buf: bytes, position: int, count: int) -> list[int]:
    """Where each of the first `count` records from `position` starts, and where the last one ends."""
    starts = [position]
    append = starts.append
    for _ in range(count):
        z = buf[position]
        if z < 0x80:
            position += 1 + (z >> 1)
        elif buf[position + 1] < 0x80:
            position += 2 + (((z & 0x7F) | (buf[position + 1] << 7)) >> 1)
        else:
            length, position = read_varint(buf, position)
            position += length
        append(position)
    return starts


def _decoded_keys(chunk: bytes, header: BatchHeader) -> tuple[list, list[int], list[int]]:
    """_scan_keys for a batch whose offset deltas are not 0..n-1: decoded, with each record's offset."""
    records = decode_records(chunk, header)
    keys = [None if record.key is None else key_digest(record.key) for record in records]
    tombstones = [index for index, record in enumerate(records) if record.value is None]
    return keys, [record.offset for record in records], tombstones


def _settle_by_keys(
    chunk: bytes, header: BatchHeader, offset_map: dict[bytes, int], drop_tombstones: bool
) -> tuple[list[bytes] | None, int, bool]:
    """_DirtyIndex.settle for any batch: a record survives if it has a key, no later offset has
    that key, and it is not a tombstone due to go."""
    count = header.record_count
    base_offset = header.base_offset
    body, start, stop = _records_section(chunk, header)
    scanned = _scan_keys(body, start, stop, count) if header.last_offset_delta == count - 1 else None
    if scanned is None:
        return _settle_decoded(chunk, header, offset_map, drop_tombstones)
    keys, tombstone_indexes, keyless_indexes = scanned
    keep = list(map(le, map(offset_map.get, keys, repeat(-1)), range(base_offset, base_offset + count)))
    for index in keyless_indexes or ():
        keep[index] = False
    tombstone = False
    for index in tombstone_indexes or ():
        if keep[index]:
            if drop_tombstones:
                keep[index] = False
            else:
                tombstone = True
    kept = list(compress(range(count), keep))
    if len(kept) == count:
        return None, 0, tombstone
    if not kept:
        return [], count, False
    return _rebuild_runs(body, start, header, kept), count - len(kept), tombstone


def _settle_decoded(
    chunk: bytes, header: BatchHeader, offset_map: dict[bytes, int], drop_tombstones: bool
) -> tuple[list[bytes] | None, int, bool]:
    """_settle_by_keys through decoded records, for batches whose offset deltas are not 0..n-1."""
    records = decode_records(chunk, header)
    kept = []
    tombstone = False
    for record in records:
        if record.key is None:
            continue
        latest = offset_map.get(key_digest(record.key))
        if latest is not None and latest > record.offset:
            continue
        if record.value is None:
            if drop_tombstones:
                continue
            tombstone = True
        kept.append(record)
    if len(kept) == len(records):
        return None, 0, tombstone
    return _encode_runs(header, kept), len(records) - len(kept), tombstone


# Zigzag varints of -64..8191, the deltas and lengths rebuilt records mostly need; made on first
# use (15 ms, not to be paid at every broker start-up).
_SMALL_VARINT_MIN = -64
_SMALL_VARINTS: list[bytes] = []


def _varint_bytes(value: int) -> bytes:
    if _SMALL_VARINT_MIN <= value < 8192:
        if not _SMALL_VARINTS:
            _SMALL_VARINTS.extend(_varint_encoding(v) for v in range(_SMALL_VARINT_MIN, 8192))
        return _SMALL_VARINTS[value - _SMALL_VARINT_MIN]
    return _varint_encoding(value)


def _varint_encoding(value: int) -> bytes:
    encoded = bytearray()
    write_varint(encoded, value)
    return bytes(encoded)


def _rebuild_runs(body: bytes, start: int, header: BatchHeader, kept: list[int]) -> list[bytes]:
    """The records at indexes `kept` (ascending) of the regular batch `header`, whose records are
    body[start:...], as batches of consecutive offsets (what every v2 validator expects:
    recordCount == lastOffsetDelta + 1). Records are copied as bytes; a run that does not start
    at the batch's first record gets its offset and timestamp deltas rewritten, relative to its
    own first record (which gives the run's base offset and base timestamp, as Kafka's builder
    does). Producer id, epoch, sequence (shifted by the run's start), leader epoch, codec,
    timestamp type and the transactional flag are the batch's."""
    starts = _record_starts(body, start, kept[-1] + 1)
    batches = []
    run_start = 0
    for index in range(1, len(kept) + 1):
        if index < len(kept) and kept[index] == kept[index - 1] + 1:
            continue
        batches.append(_run_batch(body, starts, header, kept[run_start], kept[index - 1]))
        run_start = index
    return batches


def _run_batch(body: bytes, starts: list[int], header: BatchHeader, first: int, last: int) -> bytes:
    """One batch of the records `first`..`last` (indexes into the regular batch `header`)."""
    fields = []  # per record: (where its attributes byte is, its timestamp delta, where its key length starts)
    for index in range(first, last + 1):
        p = starts[index]
        z = body[p]
        if z < 0x80:
            p += 1
        elif body[p + 1] < 0x80:
            p += 2
        else:
            p = read_varint(body, p)[1]
        z = body[p + 1]
        if z < 0x80:
            timestamp_delta, q = (z >> 1) ^ -(z & 1), p + 2
        else:
            timestamp_delta, q = read_varint(body, p + 1)
        z = body[q]  # the offset delta, skipped
        if z < 0x80:
            fields.append((p, timestamp_delta, q + 1))
        elif body[q + 1] < 0x80:
            fields.append((p, timestamp_delta, q + 2))
        else:
            fields.append((p, timestamp_delta, read_varint(body, q)[1]))
    if first == 0:
        shift = 0  # the batch's own first record: every record's bytes stay as they are
        records = body[starts[first] : starts[last + 1]]
    else:
        shift = fields[0][1]
        out = bytearray()
        view = memoryview(body)
        for offset_delta, (attributes_at, timestamp_delta, key_at) in enumerate(fields):
            timestamp_bytes = _varint_bytes(timestamp_delta - shift)
            offset_bytes = _varint_bytes(offset_delta)
            record_end = starts[first + offset_delta + 1]
            out += _varint_bytes(1 + len(timestamp_bytes) + len(offset_bytes) + record_end - key_at)
            out.append(body[attributes_at])
            out += timestamp_bytes
            out += offset_bytes
            out += view[key_at:record_end]
        records = bytes(out)
    base_timestamp = header.base_timestamp + shift
    if header.is_log_append_time:
        max_timestamp = header.max_timestamp
    else:
        max_timestamp = header.base_timestamp + max(field[1] for field in fields)
    base_sequence = header.base_sequence
    if base_sequence >= 0:
        base_sequence = (base_sequence + first) % (1 << 31)
    return assemble_batch(
        records,
        base_offset=header.base_offset + first,
        record_count=last - first + 1,
        attributes=header.attributes & (COMPRESSION_MASK | TIMESTAMP_TYPE_FLAG | TRANSACTIONAL_FLAG),
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=base_sequence,
        partition_leader_epoch=header.partition_leader_epoch,
    )


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
