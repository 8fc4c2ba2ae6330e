"""A segment's sparse time index (`.timeindex`): where to start looking for a timestamp.

Owns the `.timeindex` file only. Never reads the `.log`.
"""

from __future__ import annotations

import struct

from odradek.log.offset_index import _IndexFile

_ENTRY = struct.Struct(">qi")


class TimeIndex(_IndexFile):
    """The `.timeindex` file: 12-byte entries (int64 timestamp ms, int32 offset - base_offset).

    Format: Kafka's, big-endian, no header, no preallocation. An entry (t, o) says the
    largest timestamp in the segment up to and including offset base_offset + o is t.
    Invariants: timestamps strictly increase, offsets never decrease: an entry is added only
    when the segment's max timestamp has grown, on the offset index's interval, and once more
    when the segment stops being active (so the last entry is the segment's max timestamp).
    Not thread-safe, same contract as OffsetIndex.
    """

    ENTRY = _ENTRY

    def maybe_append(self, timestamp: int, offset: int) -> None:
        last = self.last_entry()
        if last is None or timestamp > last[0]:
            self._append((timestamp, offset - self.base_offset))

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """(timestamp, absolute offset) of the greatest entry with timestamp <= target, else (-1, base_offset)."""
        found = self._search(timestamp, 0)
        if found < 0:
            return -1, self.base_offset
        entry_timestamp, relative = self.entry(found)
        return entry_timestamp, self.base_offset + relative

    def max_timestamp(self) -> tuple[int, int] | None:
        """(timestamp, absolute offset) of the last entry."""
        last = self.last_entry()
        if last is None:
            return None
        return last[0], self.base_offset + last[1]

    def truncate_to_offset(self, offset: int) -> None:
        """Drop every entry for offset `offset` or beyond."""
        relative = offset - self.base_offset
        low, high, keep = 0, self.entries - 1, 0
        while low <= high:
            middle = (low + high) // 2
            if self.entry(middle)[1] < relative:
                keep = middle + 1
                low = middle + 1
            else:
                high = middle - 1
        if keep < self.entries:
            self._truncate_entries(keep)

    def sanity_check(self, log_size: int, full: bool = False) -> str | None:
        if not self._size_ok:
            return f"{self.path} is not a multiple of {self.ENTRY.size} bytes"
        if not self.path.exists() and log_size > 0:
            return f"{self.path} is missing"
        last = self.last_entry()
        if last is not None and last[1] < 0:
            return f"{self.path} last entry {last} has a negative offset"
        if full and self.entries > 1:
            previous = (-(2**63), -1)
            for entry in self.all_entries():
                if entry[0] <= previous[0] or entry[1] < previous[1]:
                    return f"{self.path} entries do not increase: {previous} then {entry}"
                previous = entry
        return None
