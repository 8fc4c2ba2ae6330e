"""A parked fetch learns which of its partitions changed, so it re-reads only those."""

from __future__ import annotations

import asyncio

from odradek.protocol.topic_partition import TopicPartition
from odradek.replica.purgatory import AppendWaiters

A, B, C = (TopicPartition("t", p) for p in range(3))


def test_a_waiter_hears_every_partition_appended_before_it_resumes():
    async def scenario():
        waiters = AppendWaiters()
        waiting = asyncio.create_task(waiters.wait([A, B, C], 5))
        await asyncio.sleep(0)
        waiters.notify(A)
        waiters.notify(C)  # before the waiter ran again
        waiters.notify(TopicPartition("other", 0))
        return await waiting, await waiters.wait([A], 0.01), waiters._waiters

    woken, timed_out, left = asyncio.run(scenario())
    assert woken == {A, C} and timed_out == set() and not left


def test_closing_wakes_everyone_at_once():
    async def scenario():
        waiters = AppendWaiters()
        waiting = asyncio.create_task(waiters.wait([A, B], 30))
        await asyncio.sleep(0)
        waiters.close()
        return await asyncio.wait_for(waiting, 1), await waiters.wait([A], 30)

    woken, after = asyncio.run(scenario())
    assert woken == {A, B} and after == set()
