"""Producer ids for InitProducerId: handed out from blocks reserved in the metadata store.

A block is reserved (and persisted) before any id in it is used, so ids are never reused across
restarts; at most one block of ids is skipped by a crash.
"""

from __future__ import annotations

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, store) -> None:
        self._store = store
        self._next = 0
        self._end = 0

    def next_producer_id(self) -> int:
        if self._next >= self._end:
            self._next = self._store.allocate_producer_id_block(BLOCK_SIZE)
            self._end = self._next + BLOCK_SIZE
        producer_id = self._next
        self._next += 1
        return producer_id
