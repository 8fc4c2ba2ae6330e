"""A segment's transaction index (`.txnindex`, Kafka's format): the aborted transactions whose
ABORT marker lies in that segment.

A read_committed consumer needs, with each fetched range, the aborted transactions that overlap
it, so it can drop their records; this index answers that without reading the log. Entries are
appended in marker order, each 34 bytes, big-endian:
    version int16 (0) | producer_id int64 | first_offset int64 | last_offset int64 |
    last_stable_offset int64
`last_offset` is the marker's offset; `last_stable_offset` the partition's first unstable offset
once this transaction ended (every transaction starting below it had ended by then), which lets
a lookup stop early. The file is created with its first entry; most segments never have one.
A torn last entry (crash mid-write) is dropped when the file is read.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

from odradek.log.checkpoint import temp_path

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size
_VERSION = 0


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    """The aborted transactions of one segment, cached in memory once read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[AbortedTxn] | None = None

    @property
    def entries(self) -> list[AbortedTxn]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> list[AbortedTxn]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        entries = []
        for position in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
            version, *fields = _ENTRY.unpack_from(data, position)
            if version != _VERSION:
                break
            entries.append(AbortedTxn(*fields))
        return entries

    def append(self, txn: AbortedTxn) -> None:
        """Add an entry (a no-op for one already there: replay after a crash re-adds markers)."""
        entries = self.entries
        if any(entry.last_offset == txn.last_offset and entry.producer_id == txn.producer_id for entry in entries):
            return
        with open(self.path, "ab") as f:
            f.write(_ENTRY.pack(_VERSION, *txn))
        entries.append(txn)

    def collect(self, fetch_offset: int, upper_offset: int) -> tuple[list[AbortedTxn], bool]:
        """Entries overlapping [fetch_offset, upper_offset), and whether the search may stop here
        (an entry shows every transaction starting below upper_offset had ended)."""
        found = []
        for entry in self.entries:
            if entry.last_offset >= fetch_offset and entry.first_offset < upper_offset:
                found.append(entry)
            if entry.last_stable_offset >= upper_offset:
                return found, True
        return found, False

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose marker is at or above `offset` (the log was cut there)."""
        entries = self.entries
        keep = [entry for entry in entries if entry.last_offset < offset]
        if len(keep) == len(entries):
            return
        self._rewrite(keep)

    def reset(self) -> None:
        """Forget every entry (the segment is being recovered; replay adds them back)."""
        self._rewrite([])

    def _rewrite(self, entries: list[AbortedTxn]) -> None:
        if not entries:
            self.path.unlink(missing_ok=True)
        else:
            temporary = temp_path(self.path)
            temporary.write_bytes(b"".join(_ENTRY.pack(_VERSION, *entry) for entry in entries))
            os.replace(temporary, self.path)
        self._entries = entries

    def flush(self) -> None:
        if self._entries:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def rename(self, path: Path) -> None:
        if self.path.exists():
            os.replace(self.path, path)
        self.path = path

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self._entries = []
