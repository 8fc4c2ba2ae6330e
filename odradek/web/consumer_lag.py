"""Consumer lag as Burrow judges it: not only how far behind a group is, but whether it is keeping up.

Each time the metrics are read, every committed offset of the groups this broker coordinates is
compared with its partition's high watermark. A partition keeps its last WINDOW commits (offset,
time, lag then); its status follows Burrow's rules:
  OK     some commit in the window had no lag, or the lag is coming down;
  WARN   the offsets move but the lag does not come down;
  STALL  the offset has not moved over the window while there is lag (commits keep coming);
  STOP   no commit for longer than the window spans, with lag.
A group's status is its worst partition's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 10
STATUSES = ("OK", "WARN", "STALL", "STOP")


@dataclass
class PartitionLag:
    offset: int
    lag: int
    commits: deque = field(default_factory=lambda: deque(maxlen=WINDOW))  # (commit time ms, offset, lag)

    def status(self, now_ms: float) -> str:
        if self.lag == 0 or any(lag == 0 for _, _, lag in self.commits):
            return "OK"
        if len(self.commits) < 2:
            return "OK"
        (first_ms, first_offset, _), (last_ms, last_offset, _) = self.commits[0], self.commits[-1]
        if now_ms - last_ms > last_ms - first_ms:
            return "STOP"
        if last_offset == first_offset:
            return "STALL"
        lags = [lag for _, _, lag in self.commits]
        if all(later >= earlier for earlier, later in zip(lags, lags[1:])):
            return "WARN"
        return "OK"


class LagTracker:
    def __init__(self) -> None:
        self.partitions: dict[tuple[str, str, int], PartitionLag] = {}

    def observe(self, group: str, topic: str, partition: int, offset: int, commit_ms: int, high_watermark: int) -> PartitionLag:
        lag = max(high_watermark - offset, 0)
        key = (group, topic, partition)
        entry = self.partitions.get(key)
        if entry is None:
            entry = self.partitions[key] = PartitionLag(offset, lag)
        entry.offset, entry.lag = offset, lag
        if not entry.commits or entry.commits[-1][0] != commit_ms:
            entry.commits.append((commit_ms, offset, lag))
        return entry

    def forget_except(self, seen: set[tuple[str, str, int]]) -> None:
        """Drop what no longer exists (a deleted group or offset, a moved coordinator)."""
        for key in [key for key in self.partitions if key not in seen]:
            del self.partitions[key]


def worst(statuses) -> str:
    return max(statuses, key=STATUSES.index, default="OK")
