"""Which leader epoch wrote which offsets: `leader-epoch-checkpoint` in the partition dir.

Format (Kafka's): "0\\n<count>\\n" then one "<epoch> <start offset>" line per epoch, ascending in
both. Epoch e covers [its start offset, the next entry's start offset); the last one reaches the
log end. A follower asks the leader where its last epoch ends (OffsetForLeaderEpoch) and truncates
there, so that no divergent tail survives a leader change.

Invariants: epochs and start offsets strictly increase; every change is written at once
(atomically, fsynced) so the file never lags the log it describes by more than a crash window,
and recovery truncates it to the recovered log end.
Not thread-safe: changed under the owning PartitionLog's append lock.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from odradek.log.checkpoint import write_atomically

FILE_NAME = "leader-epoch-checkpoint"
_VERSION = 0
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, directory: Path, entries: list[tuple[int, int]] | None = None) -> None:
        self.path = directory / FILE_NAME  # not Path(directory): parsing it again costs at start-up
        self._entries: list[tuple[int, int]] = list(entries or [])

    @classmethod
    def load(cls, directory: Path) -> "LeaderEpochCache | None":
        """The cache in `directory`, or None when it has no checkpoint file (to be rebuilt).
        ValueError for a malformed file."""
        cache = cls(directory)
        path = cache.path
        try:
            with open(path, encoding="utf-8") as file:
                lines = file.read().split()
        except FileNotFoundError:
            return None
        if len(lines) < 2 or lines[0] != str(_VERSION):
            raise ValueError(f"{path}: expected version {_VERSION} and a count")
        count = int(lines[1])
        numbers = [int(value) for value in lines[2:]]
        if len(numbers) != 2 * count:
            raise ValueError(f"{path}: {count} entries announced, {len(numbers) // 2} found")
        cache._entries = [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)]
        return cache

    @property
    def entries(self) -> list[tuple[int, int]]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1][0] if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` wrote from `start_offset` on, if it is newer than the latest epoch.
        Returns whether the cache changed (and was written)."""
        if epoch < 0 or epoch <= self.latest_epoch:
            return False
        if self._entries and start_offset < self._entries[-1][1]:
            # A new epoch cannot start below the last one's start: the log was truncated below
            # it without telling us; drop what it no longer holds.
            self._entries = [(e, o) for e, o in self._entries if o < start_offset]
        self._entries.append((epoch, start_offset))
        self._write()
        return True

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (the largest epoch <= `epoch` we know, the offset where it ends:
        the next epoch's start, or the log end for the latest). An epoch below every one we
        know ends where our first one starts (Kafka's answer: a follower whose whole log was
        written in an epoch this log never had must truncate it all). (-1, -1) when we know none."""
        if not self._entries or epoch < 0:
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        epochs = [e for e, _ in self._entries]
        index = bisect.bisect_right(epochs, epoch)
        if index == 0:
            return (epoch, self._entries[0][1])
        found_epoch = epochs[index - 1]
        if index == len(self._entries):
            return (found_epoch, log_end_offset)
        return (found_epoch, self._entries[index][1])

    def truncate_from_end(self, end_offset: int) -> None:
        """The log now ends at `end_offset`: forget epochs that started at or after it."""
        kept = [(e, o) for e, o in self._entries if o < end_offset]
        if kept != self._entries:
            self._entries = kept
            self._write()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at `start_offset`: the epoch covering it starts there."""
        earlier = [i for i, (_, o) in enumerate(self._entries) if o <= start_offset]
        if not earlier:
            return
        last = earlier[-1]
        kept = [(self._entries[last][0], start_offset)] + self._entries[last + 1 :]
        if kept != self._entries:
            self._entries = kept
            self._write()

    def clear_and_write(self, entries: list[tuple[int, int]]) -> None:
        self._entries = list(entries)
        self._write()

    def _write(self) -> None:
        lines = [str(_VERSION), str(len(self._entries))] + [f"{e} {o}" for e, o in self._entries]
        write_atomically(self.path, "\n".join(lines) + "\n")
