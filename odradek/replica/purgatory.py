"""Where fetches wait for data: parked until an append to one of their partitions, or a timeout.

A waiter is one future registered under each partition it watches; an append resolves every
future registered under its partition. No polling, no per-message work.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from odradek.protocol.topic_partition import TopicPartition


class AppendWaiters:
    def __init__(self) -> None:
        self._waiters: dict[TopicPartition, set[asyncio.Future]] = defaultdict(set)
        self._closed = False

    async def wait(self, partitions: list[TopicPartition], timeout_s: float) -> set[TopicPartition]:
        """Return when any of `partitions` gets an append or `timeout_s` passes (at once after
        close): the partitions that got one meanwhile (none on a timeout), so the waiter re-reads
        only those."""
        if timeout_s <= 0 or self._closed:
            return set()
        future = asyncio.get_running_loop().create_future()
        for tp in partitions:
            self._waiters[tp].add(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return set()
        finally:
            for tp in partitions:
                waiting = self._waiters.get(tp)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del self._waiters[tp]

    def notify(self, tp: TopicPartition) -> None:
        waiting = self._waiters.pop(tp, None)
        if waiting:
            for future in waiting:
                if not future.done():
                    future.set_result({tp})
                elif not future.cancelled():
                    future.result().add(tp)  # woken already, not yet resumed: one more to re-read

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """On shutdown: release every parked fetch so it answers at once, and park no more."""
        self._closed = True
        for tp in list(self._waiters):
            self.notify(tp)
