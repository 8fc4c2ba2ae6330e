"""Which partitions of a coordinator's topic this broker coordinates, shared by the group and the
transaction coordinators.

A coordinator serves a key (group id, transactional id) only while this broker leads the partition
the key hashes to and has replayed it. Becoming leader starts a load: the partition's records are
read in a worker thread and handed to the coordinator's `apply` on the event loop, unless the
partition was given up meanwhile. Until then requests get COORDINATOR_LOAD_IN_PROGRESS; elsewhere
NOT_COORDINATOR. Operations that write and wait for the write run one at a time per partition
(`lock_for`), as in Kafka's coordinator runtime, so none sees another's state before it is stored.
The leader epoch at load is kept: it is the coordinator epoch that transaction markers carry.
Runs on the event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from odradek.coordinator.state_log import CoordinatorLog, LogEntry
from odradek.protocol.errors import ErrorCode

log = logging.getLogger(__name__)


class OwnedPartitions:
    def __init__(self, store: CoordinatorLog, apply: Callable[[int, int, list[LogEntry]], None]) -> None:
        self.store = store
        self._apply = apply  # (partition, leader epoch, its records) once loaded
        self.epochs: dict[int, int] = {}  # loaded partition -> its leader epoch when loaded
        self._loading: dict[int, asyncio.Task] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def error_for(self, key: str) -> ErrorCode | None:
        """None when this broker coordinates `key`; COORDINATOR_LOAD_IN_PROGRESS while its
        partition loads; NOT_COORDINATOR otherwise."""
        partition = self.store.partition_for(key)
        if partition in self.epochs:
            return None
        if partition in self._loading:
            return ErrorCode.coordinator_load_in_progress
        return ErrorCode.not_coordinator

    def epoch_of(self, key: str) -> int:
        """The coordinator epoch of `key`'s partition, -1 when not loaded here."""
        return self.epochs.get(self.store.partition_for(key), -1)

    def owns(self, key: str, partition: int) -> bool:
        return self.store.partition_for(key) == partition

    def lock_for(self, key: str) -> asyncio.Lock:
        partition = self.store.partition_for(key)
        lock = self._locks.get(partition)
        if lock is None:
            lock = self._locks[partition] = asyncio.Lock()
        return lock

    def begin_loading(self, partition: int, leader_epoch: int, is_empty: bool = False) -> None:
        """Load a partition: at once when its log is empty, else by replay in a task."""
        if partition in self.epochs or partition in self._loading:
            return
        if is_empty:
            self.epochs[partition] = leader_epoch
            return
        self._loading[partition] = asyncio.get_running_loop().create_task(self._load(partition, leader_epoch))

    async def _load(self, partition: int, leader_epoch: int) -> None:
        task = asyncio.current_task()
        name = f"{self.store.topic}-{partition}"
        try:
            entries = await asyncio.to_thread(self.store.read_partition, partition)
        except Exception:  # noqa: BLE001 - one unreadable partition must not stop the coordinator
            log.exception("Loading %s failed; what it holds stays unavailable", name)
            if self._loading.get(partition) is task:
                del self._loading[partition]
            return
        if self._loading.get(partition) is not task:
            return  # given up while it loaded
        del self._loading[partition]
        self._apply(partition, leader_epoch, entries)
        self.epochs[partition] = leader_epoch

    def load_all(self) -> list[LogEntry]:
        """Mark every partition loaded and return all their records (tools and tests; the broker
        loads partition by partition as it becomes their leader)."""
        for partition in range(self.store.partitions):
            self.epochs.setdefault(partition, 0)
        return list(self.store.replay())

    async def wait_until_loaded(self) -> None:
        """Until every partition being loaded is loaded (start-up waits for this)."""
        while self._loading:
            await asyncio.gather(*self._loading.values(), return_exceptions=True)

    def give_up(self, partition: int) -> None:
        """This broker no longer leads the partition: stop a load in progress, stop serving it."""
        task = self._loading.pop(partition, None)
        if task is not None:
            task.cancel()
        self.epochs.pop(partition, None)

    def shutdown(self) -> None:
        for task in self._loading.values():
            task.cancel()
        self._loading.clear()
