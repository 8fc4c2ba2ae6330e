"""Producer ids for InitProducerId: handed out from blocks reserved in the metadata store.

A block is reserved (and persisted) before any id in it is used, so ids are never reused across
restarts; at most one block of ids is skipped by a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, reserve_block: Callable[[int], Awaitable[int]]) -> None:
        """`reserve_block(size)` persists the next block and returns its first id (in cluster
        mode a conditional write in ZooKeeper, off the event loop)."""
        self._reserve_block = reserve_block
        self._next = 0
        self._end = 0
        self._reserving = asyncio.Lock()

    async def next_producer_id(self) -> int:
        async with self._reserving:  # one block at a time, however many producers wait for it
            if self._next >= self._end:
                self._next = await self._reserve_block(BLOCK_SIZE)
                self._end = self._next + BLOCK_SIZE
            producer_id = self._next
            self._next += 1
            return producer_id
