"""A segment's sparse offset index (`.index`): which file position holds a given offset.

Owns the `.index` file only. Never reads the `.log`; rebuilding is the segment's job.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_ENTRY = struct.Struct(">ii")


class _IndexFile:
    """Fixed-size big-endian entries, appended in order, searched with os.pread.

    Nothing but the entry count and the last entry is held in memory, so a closed
    segment's index costs one (lazily opened) fd, whatever its size.
    """

    ENTRY: struct.Struct

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._fd: int | None = None
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        self.entries = size // self.ENTRY.size
        self._size_ok = size % self.ENTRY.size == 0
        self._last: tuple | None = None

    @property
    def fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def entry(self, n: int) -> tuple:
        data = os.pread(self.fd, self.ENTRY.size, n * self.ENTRY.size)
        return self.ENTRY.unpack(data)

    def last_entry(self) -> tuple | None:
        if self.entries == 0:
            return None
        if self._last is None:
            self._last = self.entry(self.entries - 1)
        return self._last

    def _append(self, entry: tuple) -> None:
        os.pwrite(self.fd, self.ENTRY.pack(*entry), self.entries * self.ENTRY.size)
        self.entries += 1
        self._last = entry

    def _search(self, target: int, field: int) -> int:
        """Index of the last entry whose `field` <= target, or -1."""
        low, high = 0, self.entries - 1
        found = -1
        while low <= high:
            middle = (low + high) // 2
            if self.entry(middle)[field] <= target:
                found = middle
                low = middle + 1
            else:
                high = middle - 1
        return found

    def _truncate_entries(self, count: int) -> None:
        os.ftruncate(self.fd, count * self.ENTRY.size)
        self.entries = count
        self._last = None

    def all_entries(self) -> list[tuple]:
        data = os.pread(self.fd, self.entries * self.ENTRY.size, 0)
        return [self.ENTRY.unpack_from(data, i * self.ENTRY.size) for i in range(self.entries)]

    def replace(self, entries: list[tuple]) -> None:
        """Overwrite the file with `entries` (used when the segment rebuilds its indexes)."""
        data = b"".join(self.ENTRY.pack(*e) for e in entries)
        os.ftruncate(self.fd, 0)
        if data:
            os.pwrite(self.fd, data, 0)
        self.entries = len(entries)
        self._size_ok = True
        self._last = entries[-1] if entries else None

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rename(self, path: Path) -> None:
        if self.path.exists():
            os.rename(self.path, path)
        self.path = path


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
