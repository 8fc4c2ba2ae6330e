"""Incremental fetch sessions (KIP-227): a consumer or follower of many partitions names them once.

A full Fetch with epoch 0 asks for a session: the broker remembers its partitions (what each asked
for, and the high watermark and log start offset it was last told) under a new id. Later Fetches
of that session (epoch 1, 2, ...) list only the partitions whose fetch offset or settings changed,
and the topics it stops reading (forgotten topics); the answer lists only partitions with
something new: records, another high watermark or log start offset, an error, a diverging epoch
or a preferred replica. Partitions that got records move to the back, so the next answer starts
with the others (fairness under max_bytes). Epoch -1 ends a session.

The cache holds at most `max.incremental.fetch.session.cache.slots` sessions. When it is full, a
new session may evict one, as Kafka's cache does: one unused for EVICTION_MS, else a smaller one
(a consumer's before a follower's) that is older than EVICTION_MS or, for a follower's new session,
any consumer's. Otherwise the Fetch is answered without a session
(id 0) and the client keeps sending full Fetches. Used on the event loop; not thread-safe.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field

INITIAL_EPOCH, FINAL_EPOCH = 0, -1
EVICTION_MS = 120_000  # Kafka's minimum time a session is kept before a newer one may take its slot


def next_epoch(epoch: int) -> int:
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == 2**31 - 1 else epoch + 1


@dataclass(slots=True)
class CachedPartition:
    """A session's partition: what the fetcher last asked (its kio FetchPartition) and what it was
    last told."""

    request: object
    high_watermark: int = -1
    log_start_offset: int = -1


@dataclass
class FetchSession:
    id: int
    follower: bool
    uses_topic_ids: bool
    created_ms: float
    last_used_ms: float
    epoch: int = 1  # the epoch its next Fetch must carry
    # (topic id or name, partition) -> CachedPartition, in the order they are read
    partitions: OrderedDict = field(default_factory=OrderedDict)

    def update(self, changed: list[tuple[object, object]], forgotten: list[tuple[object, int]]) -> None:
        """Add or update the partitions an incremental Fetch names, drop the forgotten ones."""
        for key, request in changed:
            cached = self.partitions.get((key, request.partition))
            if cached is None:
                self.partitions[(key, request.partition)] = CachedPartition(request)
            else:
                cached.request = request
        for key in forgotten:
            self.partitions.pop(key, None)

    def must_answer(self, key: tuple[object, int], high_watermark: int, log_start_offset: int,
                    has_records: bool, other_news: bool) -> bool:
        """Whether an incremental answer includes this partition; remembers what it says."""
        cached = self.partitions.get(key)
        if cached is None:
            return True
        news = has_records or other_news
        if cached.high_watermark != high_watermark:
            cached.high_watermark, news = high_watermark, True
        if cached.log_start_offset != log_start_offset:
            cached.log_start_offset, news = log_start_offset, True
        if has_records:
            self.partitions.move_to_end(key)
        return news


class FetchSessionCache:
    def __init__(self, max_slots: int = 1000, now_ms=None) -> None:
        self.max_slots = max_slots
        self._now_ms = now_ms or (lambda: time.monotonic() * 1000)
        self._sessions: dict[int, FetchSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int) -> FetchSession | None:
        return self._sessions.get(session_id)

    def remove(self, session_id: int) -> FetchSession | None:
        return self._sessions.pop(session_id, None)

    def touch(self, session: FetchSession) -> None:
        session.last_used_ms = self._now_ms()

    def create(self, follower: bool, uses_topic_ids: bool, partitions: OrderedDict) -> int:
        """A new session's id, or 0 when the cache has no slot for it."""
        now = self._now_ms()
        if len(self._sessions) >= self.max_slots and not self._evict_for(follower, len(partitions), now):
            return 0
        session_id = 0
        while session_id == 0 or session_id in self._sessions:
            session_id = random.randint(1, 2**31 - 1)
        self._sessions[session_id] = FetchSession(session_id, follower, uses_topic_ids, now, now,
                                                  next_epoch(INITIAL_EPOCH), partitions)
        return session_id

    def _evict_for(self, follower: bool, size: int, now: float) -> bool:
        """Kafka's rule: a session unused for EVICTION_MS goes first; else the one ordered first by
        (follower, size, id) among those the newcomer may take the place of (a follower's may take
        any consumer's, and any session older than EVICTION_MS), if the newcomer orders after it."""
        if not self._sessions:
            return False
        stalest = min(self._sessions.values(), key=lambda s: (s.last_used_ms, s.id))
        if now - stalest.last_used_ms > EVICTION_MS:
            del self._sessions[stalest.id]
            return True
        evictable = [s for s in self._sessions.values()
                     if now - s.created_ms > EVICTION_MS or (follower and not s.follower)]
        if not evictable:
            return False
        weakest = min(evictable, key=lambda s: (s.follower, len(s.partitions), s.id))
        if (follower, size) <= (weakest.follower, len(weakest.partitions)):
            return False
        del self._sessions[weakest.id]
        return True
