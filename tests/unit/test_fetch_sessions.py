"""The fetch session cache keeps and evicts sessions as Kafka's does (KIP-227)."""

from __future__ import annotations

from collections import OrderedDict

from odradek.replica.fetch_sessions import EVICTION_MS, CachedPartition, FetchSessionCache, next_epoch


class Clock:
    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


def partitions(count: int) -> OrderedDict:
    return OrderedDict((("t", p), CachedPartition(None)) for p in range(count))


def test_a_full_cache_refuses_a_consumer_while_its_sessions_are_young():
    clock = Clock()
    cache = FetchSessionCache(max_slots=2, now_ms=clock)
    first, second = cache.create(False, False, partitions(5)), cache.create(False, False, partitions(3))
    assert first and second and first != second
    assert cache.create(False, False, partitions(100)) == 0
    assert cache.get(first).epoch == 1


def test_a_follower_takes_a_young_consumers_slot_and_a_bigger_session_an_old_smaller_one():
    clock = Clock()
    cache = FetchSessionCache(max_slots=2, now_ms=clock)
    small, big = cache.create(False, False, partitions(2)), cache.create(False, False, partitions(9))
    follower = cache.create(True, False, partitions(1))
    assert follower and cache.get(small) is None and cache.get(big) is not None

    clock.ms += EVICTION_MS + 1
    for session_id in (big, follower):
        cache.touch(cache.get(session_id))  # both in use, both old enough to be evicted
    assert cache.create(False, False, partitions(9)) == 0  # not bigger than the smallest consumer's
    newcomer = cache.create(False, False, partitions(10))
    assert newcomer and cache.get(big) is None and cache.get(follower) is not None


def test_a_session_unused_for_the_eviction_time_goes_first():
    clock = Clock()
    cache = FetchSessionCache(max_slots=1, now_ms=clock)
    stale = cache.create(True, False, partitions(50))
    clock.ms += EVICTION_MS + 1
    assert cache.create(False, False, partitions(1)) and cache.get(stale) is None


def test_epochs_wrap_to_one_and_stay_final():
    assert next_epoch(0) == 1 and next_epoch(2**31 - 1) == 1 and next_epoch(-1) == -1
