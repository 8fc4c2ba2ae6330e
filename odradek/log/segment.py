"""One log segment: a `.log` file of record batches plus its `.index` and `.timeindex`.

Owns reading and writing those three files, and rebuilding the indexes from the `.log`.
Must not decode records: it reads batch headers only (61 bytes each).
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Iterator

from odradek.clock import Clock
from odradek.log.file_handles import FileHandle
from odradek.log.log_config import LogConfig
from odradek.log.offset_index import OffsetIndex
from odradek.log.time_index import TimeIndex
from odradek.log.txn_index import TXN_INDEX_SUFFIX, TransactionIndex
from odradek.protocol.file_region import FileRegion
from odradek.protocol.records import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    check_batch,
    read_batch_header,
)

logger = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
CLEANED_SUFFIX = ".cleaned"  # a segment the cleaner is writing; deleted at start-up
SWAP_SUFFIX = ".swap"  # a finished cleaned segment about to replace old ones; completed at start-up
DELETED_SUFFIX = ".deleted"  # a segment removed from the log, awaiting file.delete.delay.ms
SEGMENT_FILE_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)
_RECOVERY_CHUNK_BYTES = 8 * 1024 * 1024
_READ_ENDS_KEPT = 16  # sequential readers of one segment remembered (consumers, groups, followers)
_INT32_MAX = 2**31 - 1
_HEADER_WINDOW_BYTES = 16 * 1024  # read at once when looking for the last batch that fits a read
_WALK_BYTES = 64 * 1024  # further than this, the offset index gets the walk closer first
_BASE_OFFSET_AND_LENGTH = struct.Struct(">qi")


def segment_file_name(base_offset: int, suffix: str) -> str:
    """Kafka's name: the base offset as 20 zero-padded digits, then the suffix."""
    return f"{base_offset:020d}{suffix}"


class LogSegment:
    """One `.log` file of RecordBatches plus its offset and time indexes.

    Format: the `.log` holds v2 batches exactly as they arrived on the wire, base_offset and
    partitionLeaderEpoch patched, back to back with no framing of our own (what
    kafka-dump-log reads). The file is named after `base_offset`, the first offset it may hold.
    Invariants: batches are whole and their offsets increase; `size` is the byte length of
    valid data; every batch's last offset - base_offset fits an int32. Indexes are sparse and
    derived: `recover()` rebuilds them from the `.log`, never trusting them.
    Files are opened on use and kept open while among the broker's recently used files
    (file_handles.py): an idle segment costs no descriptor. All I/O is positional (os.pread,
    os.pwrite), so any thread may read.
    `suffix` (e.g. ".cleaned") is appended to all three file names: the cleaner builds a
    replacement segment that way, and rename_for_deletion moves a segment to ".deleted".
    Not thread-safe for mutation: the owning PartitionLog serializes append, truncate_to,
    recover and close. `flush()` may run in a worker thread concurrently with appends.
    """

    def __init__(
        self, directory: Path, base_offset: int, config: LogConfig, clock: Clock, suffix: str = ""
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.config = config
        self.clock = clock
        self._log = FileHandle(directory / (segment_file_name(base_offset, LOG_SUFFIX) + suffix))
        self._dirty = False  # written since the last fsync
        self.offset_index = OffsetIndex(directory / (segment_file_name(base_offset, INDEX_SUFFIX) + suffix), base_offset)
        self.time_index = TimeIndex(
            directory / (segment_file_name(base_offset, TIME_INDEX_SUFFIX) + suffix), base_offset
        )
        self.txn_index = TransactionIndex(directory / (segment_file_name(base_offset, TXN_INDEX_SUFFIX) + suffix))
        try:
            self.size = os.stat(self.log_path).st_size
        except FileNotFoundError:
            self.size = 0
        self.created_ms = clock.now_ms()
        self._rolling_timestamp: int | None = None
        self._bytes_since_index_entry = 0
        self._max_timestamp: tuple[int, int] | None = None  # (timestamp, offset), lazily from the time index
        # next offset -> where recent reads ended: the position, or once read, the header of the batch there
        self._read_ends: dict[int, int | BatchHeader] = {}
        self.closed = False

    @classmethod
    def create(
        cls, directory: Path, base_offset: int, config: LogConfig, clock: Clock, suffix: str = ""
    ) -> "LogSegment":
        segment = cls(directory, base_offset, config, clock, suffix)
        with segment._log:  # creates the files now, so a listing sees the segment
            pass
        segment.offset_index.touch()
        segment.time_index.touch()
        return segment

    @property
    def log_path(self) -> Path:
        return self._log.path

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path}, size={self.size})"

    # --- append -------------------------------------------------------------------------------

    def append(self, buffer, headers: list[BatchHeader]) -> None:
        """Write `buffer` (whole batches; `headers` give their final offsets and positions
        within `buffer`) at the end of the `.log` in one write, then add index entries.

        On OSError the `.log` is cut back to its previous size and the error re-raised.
        """
        start = self.size
        view = memoryview(buffer)
        try:
            with self._log as fd:
                written = os.pwrite(fd, view, start)
                while written < len(view):  # short writes happen only on a full disk; finish or fail
                    step = os.pwrite(fd, view[written:], start + written)
                    if step == 0:
                        raise OSError(28, "short write", str(self.log_path))
                    written += step
        except OSError:
            self._cut_back(start)
            raise
        self._dirty = True
        self.size = start + len(view)
        if self._rolling_timestamp is None and headers:
            self._rolling_timestamp = headers[0].max_timestamp
        interval = self.config.index_interval_bytes
        max_timestamp = self.max_timestamp()
        for header in headers:
            if max_timestamp is None or header.max_timestamp > max_timestamp[0]:
                max_timestamp = (header.max_timestamp, header.last_offset)
            if self._bytes_since_index_entry > interval:
                self.offset_index.append(header.last_offset, start + header.position)
                self.time_index.maybe_append(*max_timestamp)
                self._bytes_since_index_entry = 0
            self._bytes_since_index_entry += header.size
        self._max_timestamp = max_timestamp

    def _cut_back(self, size: int) -> None:
        try:
            with self._log as fd:
                os.ftruncate(fd, size)
        except OSError:
            logger.exception("could not cut %s back to %d bytes after a failed write", self.log_path, size)

    def on_become_inactive(self) -> None:
        """The segment was rolled: record its max timestamp as the time index's last entry."""
        max_timestamp = self.max_timestamp()
        if max_timestamp is not None:
            self.time_index.maybe_append(*max_timestamp)

    # --- reading ------------------------------------------------------------------------------

    def read(self, position: int, max_bytes: int) -> bytes:
        """Up to `max_bytes` of the `.log` from `position` (never past `size`)."""
        length = min(max_bytes, self.size - position)
        if length <= 0:
            return b""
        with self._log as fd:
            return os.pread(fd, length, position)

    def region(self, first: BatchHeader, max_bytes: int, bound: int, after: int | None) -> tuple[FileRegion, int | None]:
        """Whole batches from `first` that end by `bound` (a batch boundary): `first` always, then
        as many as fit in `max_bytes`, as a region of the `.log` sent without being read here.
        Returns it with the base offset of the batch that follows it (`after` when it ends at
        `bound`; None when not known), which is remembered as where this reader asks next. Reads
        only the headers it must, not the records."""
        start = first.position
        limit = start + max(max_bytes, first.size)
        next_header = None
        if limit < bound:
            bound, after, next_header = self._last_batch_end(start + first.size, limit)
        if after is not None:
            self.remember_read_end(after, bound if next_header is None else next_header)
        # the file the headers above were read from (a handle's identity changes only if it is
        # reopened, and then only if the file under its name was replaced)
        return FileRegion(self._log, start, bound - start, self._log.identity), after

    def _last_batch_end(self, position: int, limit: int) -> tuple[int, int | None, BatchHeader | None]:
        """Where the last whole batch ending by `limit` ends, walking from the batch boundary
        `position` (the offset index first gets the walk within an index interval of `limit`),
        the base offset of the batch there and, when the walk read it whole, that batch's header
        (the reader's next Fetch starts there: kept, it is found without a read). The log holds
        whole batches past `limit`."""
        if limit - position > _WALK_BYTES:
            position = max(position, self.offset_index.position_at_or_before(limit))
        while True:
            # never past the header of a batch starting by `limit`: a log of large batches needs one
            # header where the index points, not a window of record bytes after it
            wanted = min(_HEADER_WINDOW_BYTES, limit + BATCH_HEADER_SIZE - position, self.size - position)
            with self._log as fd:
                window = os.pread(fd, wanted, position)
            within = 0
            while within + _BASE_OFFSET_AND_LENGTH.size <= len(window):
                base_offset, length = _BASE_OFFSET_AND_LENGTH.unpack_from(window, within)
                end = position + within
                if end + LOG_OVERHEAD + length > limit:
                    header = read_batch_header(window, within, end) if within + BATCH_HEADER_SIZE <= len(window) else None
                    return end, base_offset, header if header is not None and self._is_whole(header) else None
                within += LOG_OVERHEAD + length
            if within == 0:  # no header here: the data ends (never expected), so the region does
                return position, None, None
            position += within

    def header_at(self, position: int) -> BatchHeader | None:
        """The batch header at `position`, or None at the end of the data."""
        if self.size - position < BATCH_HEADER_SIZE:
            return None
        with self._log as fd:
            data = os.pread(fd, BATCH_HEADER_SIZE, position)
        if len(data) < BATCH_HEADER_SIZE:
            return None
        header = read_batch_header(data, 0, position)
        return header if self._is_whole(header) else None

    def _is_whole(self, header: BatchHeader) -> bool:
        """The header is a batch's (its length is sane) and the batch ends within the data."""
        return header.batch_length >= BATCH_HEADER_SIZE - LOG_OVERHEAD and header.position + header.size <= self.size

    def iter_headers(self, position: int = 0) -> Iterator[BatchHeader]:
        """Batch headers from `position` to the end, positions relative to this segment."""
        while True:
            header = self.header_at(position)
            if header is None:
                return
            yield header
            position += header.size

    def iter_batches(self, chunk_bytes: int = _RECOVERY_CHUNK_BYTES) -> Iterator[tuple[BatchHeader, memoryview]]:
        """Every whole batch as (header positioned within the segment, the batch's bytes), read in
        chunks of about `chunk_bytes` (for the cleaner: one pread per chunk, not per batch).
        The memoryview is only valid until the next item."""
        position = 0
        size = self.size
        while position < size:
            with self._log as fd:
                chunk = os.pread(fd, min(max(chunk_bytes, BATCH_HEADER_SIZE), size - position), position)
            view = memoryview(chunk)
            within = 0
            while len(chunk) - within >= BATCH_HEADER_SIZE:
                header = read_batch_header(chunk, within)
                if header.batch_length < BATCH_HEADER_SIZE - LOG_OVERHEAD:
                    return
                if within + header.size > len(chunk):
                    if within == 0:  # one batch larger than the chunk: read it whole
                        with self._log as fd:
                            chunk = os.pread(fd, header.size, position)
                        if len(chunk) < header.size:
                            return
                        view = memoryview(chunk)
                        continue
                    break
                yield header._replace(position=position + within), view[within : within + header.size]
                within += header.size
            if within == 0:
                return
            position += within

    def remember_read_end(self, next_offset: int, where: int | BatchHeader) -> None:
        """A read ended before `next_offset`, at position `where` (or at the batch whose header
        that is): where a sequential reader (a consumer, a follower) asks next, found then without
        the index search and the walk over headers."""
        ends = self._read_ends
        ends.pop(next_offset, None)
        ends[next_offset] = where
        if len(ends) > _READ_ENDS_KEPT:
            del ends[next(iter(ends))]

    def find_batch(self, offset: int, start_position: int | None = None) -> BatchHeader | None:
        """The first batch whose last offset >= `offset`, or None if the segment ends before it.

        Where a recent read ended, one header read, kept for the next reader asking there (a batch
        once written does not change until a truncation, which forgets the read ends): a consumer
        that asks again where it could not fit gets the header without a read. Otherwise an index
        lookup, then a forward walk over batch headers (preads of 61 bytes). A read from the
        segment's start (a consumer from the beginning) is one where the first batch is.
        """
        if start_position is None:
            ends = self._read_ends
            key = max(offset, self.base_offset)
            start_position = ends.get(key, 0 if key == self.base_offset else None)
            if start_position is not None:
                if type(start_position) is BatchHeader:
                    return start_position
                header = self.header_at(start_position)
                if header is not None and header.last_offset >= offset:
                    ends[key] = header
                    return header
                if header is None and start_position >= self.size:
                    return None  # nothing after that read yet
            start_position = 0 if offset <= self.base_offset else self.offset_index.lookup(offset)[1]
        position = start_position
        for header in self.iter_headers(position):
            if header.last_offset >= offset:
                return header
        return None

    def find_position(self, offset: int) -> int | None:
        header = self.find_batch(offset)
        return None if header is None else header.position

    def read_next_offset(self) -> int:
        """The offset after the last batch (base_offset if empty), found from the last index entry."""
        last = self.offset_index.last_entry()
        position = last[1] if last is not None else 0
        next_offset = self.base_offset
        for header in self.iter_headers(position):
            next_offset = header.next_offset
        return next_offset

    def max_timestamp(self) -> tuple[int, int] | None:
        """(largest batch max timestamp, last offset of that batch) as far as known."""
        if self._max_timestamp is None:
            self._max_timestamp = self.time_index.max_timestamp()
        return self._max_timestamp

    def rolling_timestamp(self) -> int:
        """What segment.ms is measured from: the first batch's max timestamp, else creation time."""
        if self._rolling_timestamp is None:
            header = self.header_at(0)
            if header is None:
                return self.created_ms
            self._rolling_timestamp = header.max_timestamp
        return self._rolling_timestamp

    def index_is_full(self) -> bool:
        return self.offset_index.entries >= self.config.segment_index_bytes // 8 - 1 or (
            self.time_index.entries >= self.config.segment_index_bytes // 12 - 1
        )

    def can_hold(self, last_offset: int) -> bool:
        return last_offset - self.base_offset <= _INT32_MAX

    # --- integrity ----------------------------------------------------------------------------

    def indexes_look_sane(self, full: bool = False) -> bool:
        problem = self.offset_index.sanity_check(self.size, full) or self.time_index.sanity_check(self.size, full)
        if problem is not None:
            logger.warning("rebuilding indexes of %s: %s", self.log_path, problem)
            return False
        return True

    def recover(self) -> int:
        """Validate every batch (including CRC32C), cut the `.log` at the first invalid or partial
        byte, and rebuild both indexes. Returns the number of bytes cut off."""
        with self._log as fd:
            return self._recover(fd)

    def _recover(self, fd: int) -> int:
        size = os.fstat(fd).st_size
        offset_entries: list[tuple[int, int]] = []
        time_entries: list[tuple[int, int]] = []
        interval = self.config.index_interval_bytes
        position = 0
        last_entry_position = 0
        expected_offset = self.base_offset
        max_timestamp: tuple[int, int] | None = None
        chunk = b""
        chunk_start = 0
        problem = None
        while position < size:
            within = position - chunk_start
            available = len(chunk) - within
            needed = BATCH_HEADER_SIZE
            if available >= LOG_OVERHEAD:
                needed = max(needed, int.from_bytes(chunk[within + 8 : within + 12], "big", signed=True) + LOG_OVERHEAD)
            if available < needed:
                chunk = os.pread(fd, min(max(_RECOVERY_CHUNK_BYTES, needed), size - position), position)
                chunk_start = position
                within = 0
                available = len(chunk)
            if available < BATCH_HEADER_SIZE:
                problem = f"{available} trailing bytes are too few for a batch header"
                break
            header = read_batch_header(chunk, within)
            problem = check_batch(chunk, header, available)
            if problem is None and header.base_offset < expected_offset:
                problem = f"base offset {header.base_offset} is below the expected {expected_offset}"
            if problem is None and not self.can_hold(header.last_offset):
                problem = f"last offset {header.last_offset} is too far from base offset {self.base_offset}"
            if problem is not None:
                break
            if max_timestamp is None or header.max_timestamp > max_timestamp[0]:
                max_timestamp = (header.max_timestamp, header.last_offset)
            if position - last_entry_position > interval:
                offset_entries.append((header.last_offset - self.base_offset, position))
                if not time_entries or max_timestamp[0] > time_entries[-1][0]:
                    time_entries.append((max_timestamp[0], max_timestamp[1] - self.base_offset))
                last_entry_position = position
            if self._rolling_timestamp is None:
                self._rolling_timestamp = header.max_timestamp
            expected_offset = header.next_offset
            position += header.size
        truncated = size - position
        if truncated:
            logger.warning(
                "truncating %s at byte %d (offset %d), cutting %d bytes: %s",
                self.log_path, position, expected_offset, truncated, problem,
            )
            os.ftruncate(fd, position)
            self._dirty = True
        self.size = position
        if max_timestamp is not None and (not time_entries or max_timestamp[0] > time_entries[-1][0]):
            time_entries.append((max_timestamp[0], max_timestamp[1] - self.base_offset))
        self.offset_index.replace(offset_entries)
        self.time_index.replace(time_entries)
        self.txn_index.truncate_to(expected_offset)
        self._max_timestamp = max_timestamp
        self._bytes_since_index_entry = position - last_entry_position
        self._read_ends.clear()
        return truncated

    def rebuild_indexes(self) -> None:
        """Rebuild both indexes from the `.log` (also validates it, as recovery does)."""
        self.recover()

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset >= `offset`. Returns bytes removed."""
        header = self.find_batch(offset)
        if header is None:
            return 0
        removed = self.size - header.position
        with self._log as fd:
            os.ftruncate(fd, header.position)
        self._dirty = True
        self.size = header.position
        self.offset_index.truncate_to_position(header.position)
        self.time_index.truncate_to_offset(header.base_offset)
        self.txn_index.truncate_to(header.base_offset)
        self._max_timestamp = self.time_index.max_timestamp()
        self._bytes_since_index_entry = 0
        self._read_ends.clear()
        if self.size == 0:
            self._rolling_timestamp = None
            self.created_ms = self.clock.now_ms()
        return removed

    # --- lifecycle ----------------------------------------------------------------------------

    def flush(self) -> None:
        """fsync what was written to the `.log` and the indexes since the last flush (safe from a
        worker thread; a file closed meanwhile is fsynced through a new descriptor)."""
        if self._dirty and not self.closed:
            self._dirty = False
            with self._log as fd:
                os.fsync(fd)
        self.offset_index.flush()
        self.time_index.flush()
        self.txn_index.flush()

    def close(self) -> None:
        self.closed = True
        self._log.close()
        self.offset_index.close()
        self.time_index.close()

    def last_modified_ms(self) -> int:
        """The `.log` file's mtime in ms (Kafka's lastModified; the cleaner sets it to the cleaning time)."""
        return os.stat(self.log_path).st_mtime_ns // 1_000_000

    def set_last_modified_ms(self, ms: int) -> None:
        os.utime(self.log_path, ns=(ms * 1_000_000, ms * 1_000_000))

    def rename(self, suffix: str) -> None:
        """Give the segment's files the plain segment name plus `suffix`; reads through this
        object go on (an open descriptor stays valid, a closed one is reopened by the new name)."""
        self._log.rename(self.directory / (segment_file_name(self.base_offset, LOG_SUFFIX) + suffix))
        self.offset_index.rename(self.directory / (segment_file_name(self.base_offset, INDEX_SUFFIX) + suffix))
        self.time_index.rename(self.directory / (segment_file_name(self.base_offset, TIME_INDEX_SUFFIX) + suffix))
        self.txn_index.rename(self.directory / (segment_file_name(self.base_offset, TXN_INDEX_SUFFIX) + suffix))

    def rename_for_deletion(self) -> None:
        """Kafka's first step of deleting a segment: rename its files to `*.deleted`. Reads through
        this object keep working until delete() after file.delete.delay.ms."""
        self.rename(DELETED_SUFFIX)

    def delete(self) -> None:
        self.close()
        self.txn_index.delete()
        for path in (self.log_path, self.offset_index.path, self.time_index.path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
