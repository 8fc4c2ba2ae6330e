"""A segment's sparse offset index (`.index`): which file position holds a given offset.

Owns the `.index` file only. Never reads the `.log`; rebuilding is the segment's job.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

from odradek.log.file_handles import FileHandle

_ENTRY = struct.Struct(">ii")
_WINDOW_ENTRIES = 512  # what a search reads in one pread once the range has narrowed to it
_PENDING_BYTES = 512  # appended entries held before one pwrite writes them


class _IndexFile:
    """Fixed-size big-endian entries, appended in order, searched with os.pread.

    Nothing but the entry count, the last entry and the entries not yet written is held in
    memory, and the file is open only while it is among the broker's recently used files
    (file_handles.py), so an index costs nothing while unused, whatever its size.

    A search keeps the window of entries it read last (at most _WINDOW_ENTRIES, in the file
    handle's memo, so only while the file is open): a consumer or a follower reading on searches
    just past its previous search, and finds it there or in the next window, in at most one
    pread instead of one per halving.

    Appended entries are written a few hundred bytes at a time, not one pwrite per batch (a Java
    producer's 16 KiB batches each add an entry to both indexes): any read, flush, truncation or
    close writes them first. What a crash loses is rebuilt with the rest of the unflushed
    segments' indexes on recovery, as Kafka rebuilds its memory-mapped ones.
    """

    ENTRY: struct.Struct

    def __init__(self, path: Path, base_offset: int) -> None:
        self._file = FileHandle(path)
        self.base_offset = base_offset
        self._dirty = False  # written since the last fsync
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        self.entries = size // self.ENTRY.size
        self._size_ok = size % self.ENTRY.size == 0
        self._last: tuple | None = None
        self._pending = bytearray()  # entries after the file's, not written yet
        self._pending_lock = threading.Lock()  # a flush may run in a worker thread

    @property
    def path(self) -> Path:
        return self._file.path

    def touch(self) -> None:
        """Create the file now (a new segment's files all exist at once, as Kafka's do)."""
        with self._file:
            pass

    def entry(self, n: int) -> tuple:
        if self._pending:
            self._write_pending()
        memo = self._file.memo
        if memo is not None and 0 <= n - memo[0] < len(memo[1]) // self.ENTRY.size:
            return self.ENTRY.unpack_from(memo[1], (n - memo[0]) * self.ENTRY.size)
        with self._file as fd:
            data = os.pread(fd, self.ENTRY.size, n * self.ENTRY.size)
        return self.ENTRY.unpack(data)

    def last_entry(self) -> tuple | None:
        if self.entries == 0:
            return None
        if self._last is None:
            self._last = self.entry(self.entries - 1)
        return self._last

    def _append(self, entry: tuple) -> None:
        with self._pending_lock:
            self._pending += self.ENTRY.pack(*entry)
            self.entries += 1
            self._last = entry
            full = len(self._pending) >= _PENDING_BYTES
        if full:
            self._write_pending()

    def _write_pending(self, create: bool = True) -> None:
        with self._pending_lock:
            pending = self._pending
            if not pending:
                return
            written = self.entries - len(pending) // self.ENTRY.size
            fd = self._file.pin(create)
            try:
                os.pwrite(fd, pending, written * self.ENTRY.size)
            finally:
                self._file.unpin()
            self._pending = bytearray()
            self._dirty = True

    def _search(self, target: int, field: int) -> int:
        """Index of the last entry whose `field` <= target, or -1.

        In the window the last search read, or the one after it, when it is there; else one
        pread per halving until the range left fits in a window, then that window in one pread:
        a consumer's every Fetch searches the index, and each pread is a system call.
        """
        if self._pending:
            self._write_pending()
        found = self._search_near_last(target, field)
        if found is not None:
            return found
        size = self.ENTRY.size
        low, high = 0, self.entries - 1
        found = -1
        while high - low >= _WINDOW_ENTRIES:
            middle = (low + high) // 2
            if self.entry(middle)[field] <= target:
                found = middle
                low = middle + 1
            else:
                high = middle - 1
        if low > high:
            return found
        window = self._read_window(low, high - low + 1)
        in_window = self._search_window(window, target, field)
        return low + in_window if in_window >= 0 else found

    def _search_near_last(self, target: int, field: int) -> int | None:
        """The search's answer from the last window searched or the one after it; None when
        the answer is elsewhere (or no window is kept)."""
        memo = self._file.memo
        if memo is None:
            return None
        low, window = memo
        size = self.ENTRY.size
        count = len(window) // size
        if count == 0 or self.ENTRY.unpack_from(window, 0)[field] > target:
            return None
        if self.ENTRY.unpack_from(window, (count - 1) * size)[field] > target or low + count >= self.entries:
            return low + self._search_window(window, target, field)
        after = low + count
        following = self._read_window(after, min(_WINDOW_ENTRIES, self.entries - after))
        if len(following) < size:
            return None
        in_following = self._search_window(following, target, field)
        if in_following < 0:
            return after - 1  # the last entry of the window before
        if in_following + 1 < len(following) // size or after + len(following) // size >= self.entries:
            return after + in_following
        return None  # beyond this window too: a reader that jumped ahead

    def _read_window(self, low: int, count: int) -> bytes:
        """Entries low .. low + count - 1 in one pread, kept as the window the next search looks in first."""
        with self._file as fd:
            window = os.pread(fd, count * self.ENTRY.size, low * self.ENTRY.size)
            self._file.memo = (low, window)
        return window

    def _search_window(self, window: bytes, target: int, field: int) -> int:
        """Index within `window` (whole entries) of its last entry whose `field` <= target, or -1."""
        size = self.ENTRY.size
        unpack_from = self.ENTRY.unpack_from
        found = -1
        first, last = 0, len(window) // size - 1
        while first <= last:
            middle = (first + last) // 2
            if unpack_from(window, middle * size)[field] <= target:
                found = middle
                first = middle + 1
            else:
                last = middle - 1
        return found

    def _truncate_entries(self, count: int) -> None:
        self._write_pending()
        self._file.memo = None
        with self._file as fd:
            os.ftruncate(fd, count * self.ENTRY.size)
        self._dirty = True
        self.entries = count
        self._last = None

    def all_entries(self) -> list[tuple]:
        self._write_pending()
        with self._file as fd:
            data = os.pread(fd, self.entries * self.ENTRY.size, 0)
        return [self.ENTRY.unpack_from(data, i * self.ENTRY.size) for i in range(self.entries)]

    def replace(self, entries: list[tuple]) -> None:
        """Overwrite the file with `entries` (used when the segment rebuilds its indexes)."""
        data = b"".join(self.ENTRY.pack(*e) for e in entries)
        with self._pending_lock:
            self._pending = bytearray()
        self._file.memo = None
        with self._file as fd:
            os.ftruncate(fd, 0)
            if data:
                os.pwrite(fd, data, 0)
        self._dirty = True
        self.entries = len(entries)
        self._size_ok = True
        self._last = entries[-1] if entries else None

    def flush(self) -> None:
        """fsync what was written since the last flush (through any descriptor of the file)."""
        self._write_pending()
        if self._dirty:
            self._dirty = False
            with self._file as fd:
                os.fsync(fd)

    def close(self) -> None:
        try:
            self._write_pending(create=False)
        except FileNotFoundError:
            pass  # deleted: its entries go with it
        self._file.close()

    def rename(self, path: Path) -> None:
        self._file.rename(path)


class OffsetIndex(_IndexFile):
    """The `.index` file: 8-byte entries (int32 offset - base_offset, int32 position in `.log`).

    Format: Kafka's, big-endian, no header, no preallocation: the file is exactly
    `entries * 8` bytes. An entry (o, p) says the batch starting at position p has last
    offset base_offset + o.
    Invariants: relative offsets and positions strictly increase; entries are sparse (one
    per `index.interval.bytes` of log), so a lookup lands at or before the wanted batch and the
    segment scans batch headers forward from there.
    Not thread-safe: the owning LogSegment serializes appends; lookups use os.pread and may
    race only with appends of later entries.
    """

    ENTRY = _ENTRY

    def append(self, offset: int, position: int) -> None:
        self._append((offset - self.base_offset, position))

    def lookup(self, offset: int) -> tuple[int, int]:
        """(absolute offset, position) of the greatest entry <= offset, else (base_offset, 0)."""
        found = self._search(offset - self.base_offset, 0)
        if found < 0:
            return self.base_offset, 0
        relative, position = self.entry(found)
        return self.base_offset + relative, position

    def position_at_or_before(self, position: int) -> int:
        """The greatest indexed batch position <= `position` (0 when none is): a batch boundary."""
        found = self._search(position, 1)
        return self.entry(found)[1] if found >= 0 else 0

    def truncate_to_position(self, position: int) -> None:
        """Drop every entry pointing at `position` or beyond."""
        keep = self._search(position - 1, 1) + 1
        if keep < self.entries:
            self._truncate_entries(keep)

    def sanity_check(self, log_size: int, full: bool = False) -> str | None:
        """Why this index cannot be trusted for a `.log` of log_size bytes, or None."""
        if not self._size_ok:
            return f"{self.path} is not a multiple of {self.ENTRY.size} bytes"
        if not self.path.exists() and log_size > 0:
            return f"{self.path} is missing"
        last = self.last_entry()
        if last is not None and (last[0] < 0 or last[1] >= max(log_size, 1)):
            return f"{self.path} last entry {last} points past the {log_size}-byte log"
        if full and self.entries > 1:
            previous = (-1, -1)
            for entry in self.all_entries():
                if entry[0] <= previous[0] or entry[1] <= previous[1]:
                    return f"{self.path} entries do not increase: {previous} then {entry}"
                previous = entry
        return None
