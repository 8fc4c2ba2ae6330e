"""The transaction coordinator: transactional ids, their producer ids and epochs, and the two-phase
end of each transaction.

Kafka's protocol (transaction version 1, the one clients use unless the broker finalizes
transaction.version 2):
  InitProducerId  gives a transactional id its producer id and bumps its epoch, which fences any
                  older producer with that id (PRODUCER_FENCED). An open transaction of the older
                  producer is aborted first: the client is told CONCURRENT_TRANSACTIONS and retries.
  AddPartitionsToTxn / AddOffsetsToTxn  record the partitions the transaction writes to (the
                  group's `__consumer_offsets` partition for its offsets); Empty -> Ongoing.
  EndTxn          Ongoing -> PrepareCommit/PrepareAbort (written, then answered); the COMMIT or
                  ABORT markers are then written to every partition of the transaction (txn_channel),
                  and CompleteCommit/CompleteAbort is written once all are in.
A transaction open longer than its timeout is aborted with a bumped epoch, fencing its producer.
Transactional ids idle for transactional.id.expiration.ms are forgotten (tombstone).

State is kept per `__transaction_state` partition (the Java hash of the transactional id modulo
the partition count), loaded by replay when this broker becomes that partition's leader; the
partition's leader epoch is the coordinator epoch carried by the markers, so a deposed coordinator's
late markers are refused. After a load, transactions found in PrepareCommit/PrepareAbort get their
markers (again); markers are idempotent per transaction. Every change is written and replicated
before memory changes or the client is answered. Runs on the event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from odradek.coordinator.owned_partitions import OwnedPartitions
from odradek.coordinator.state_log import CoordinatorLog, store_error
from odradek.coordinator.transaction_records import (
    STATE_BY_LABEL,
    RecordFormatError,
    TransactionMetadata,
    TxnState,
    decode_transaction_key,
    decode_transaction_value,
    transaction_key,
    transaction_value,
)
from odradek.coordinator.txn_channel import Leader, TransactionChannel
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

log = logging.getLogger(__name__)

MAX_EPOCH = 32767
COMPLETE_RETRY_S = 0.5
END_WAIT_S = 5.0


@dataclass(frozen=True)
class TransactionConfig:
    max_timeout_ms: int = 900_000
    id_expiration_ms: int = 604_800_000


class TxnError(Exception):
    """An answer other than success; carries the error code for the client."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.name)
        self.code = code


class TransactionCoordinator:
    def __init__(
        self,
        store: CoordinatorLog,
        config: TransactionConfig,
        clock,
        *,
        next_producer_id: Callable[[], Awaitable[int]],
        partition_exists: Callable[[TopicPartition], bool],
        offsets_partition_for: Callable[[str], TopicPartition],
        channel: TransactionChannel,
        coordinator_of: Callable[[str], Leader | None] = lambda transactional_id: None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._next_producer_id = next_producer_id
        self._partition_exists = partition_exists
        self._offsets_partition_for = offsets_partition_for
        self.channel = channel
        self._coordinator_of = coordinator_of
        self.transactions: dict[str, TransactionMetadata] = {}
        self.owned = OwnedPartitions(store, self._loaded)
        self._completing: dict[str, asyncio.Task] = {}

    # -- which transactional ids this broker coordinates ----------------------------------------

    def coordinator_error(self, transactional_id: str) -> ErrorCode | None:
        return self.owned.error_for(transactional_id)

    def _lock_for(self, transactional_id: str) -> asyncio.Lock:
        return self.owned.lock_for(transactional_id)

    def on_leadership_change(self, partition: int, is_leader: bool, leader_epoch: int, is_empty: bool = False) -> None:
        if is_leader:
            self.owned.begin_loading(partition, leader_epoch, is_empty)
        else:
            self.unload_partition(partition)

    def _loaded(self, partition: int, leader_epoch: int, entries) -> None:
        loaded = self._apply_entries(entries)
        for meta in loaded:
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._start_completion(meta)
        if loaded:
            log.info("Loaded %d transactional ids from __transaction_state-%d (coordinator epoch %d)",
                     len(loaded), partition, leader_epoch)

    def _apply_entries(self, entries) -> list[TransactionMetadata]:
        latest: dict[str, TransactionMetadata | None] = {}
        for entry in entries:
            if entry.key is None:
                continue
            try:
                transactional_id = decode_transaction_key(entry.key)
                latest[transactional_id] = (
                    None if entry.value is None else decode_transaction_value(transactional_id, entry.value)
                )
            except (RecordFormatError, UnicodeDecodeError) as error:
                log.warning("Skipping an unreadable record in __transaction_state: %s", error)
        loaded = []
        for transactional_id, meta in latest.items():
            if meta is None:
                self.transactions.pop(transactional_id, None)
            else:
                self.transactions[transactional_id] = meta
                loaded.append(meta)
        return loaded

    def load(self) -> None:
        """Every partition at once (tools and tests)."""
        self._apply_entries(self.owned.load_all())

    async def wait_until_loaded(self) -> None:
        await self.owned.wait_until_loaded()

    def unload_partition(self, partition: int) -> None:
        self.owned.give_up(partition)
        mine = [t for t in self.transactions if self.owned.owns(t, partition)]
        for transactional_id in mine:
            del self.transactions[transactional_id]
            completing = self._completing.pop(transactional_id, None)
            if completing is not None:
                completing.cancel()
        if mine:
            log.info("Unloaded %d transactional ids of __transaction_state-%d: this broker no longer leads it",
                     len(mine), partition)

    # -- writing state -------------------------------------------------------------------------

    async def _store(self, meta: TransactionMetadata) -> None:
        """Write the new state of a transactional id, wait until replicated, then make it current."""
        try:
            await self.store.write_committed(
                meta.transactional_id, [(transaction_key(meta.transactional_id), transaction_value(meta))]
            )
        except KafkaError as failure:
            raise TxnError(store_error(failure), str(failure)) from failure
        error = self.coordinator_error(meta.transactional_id)
        if error is not None:
            raise TxnError(ErrorCode.not_coordinator, "this broker stopped coordinating while the write replicated")
        self.transactions[meta.transactional_id] = meta

    def _check(self, transactional_id: str | None) -> None:
        if not transactional_id:
            raise TxnError(ErrorCode.invalid_request, "the transactional id is empty")
        error = self.coordinator_error(transactional_id)
        if error is not None:
            raise TxnError(error)

    def _current(self, transactional_id: str, producer_id: int, producer_epoch: int) -> TransactionMetadata:
        """The transaction a client names by producer id and epoch, or the error Kafka gives."""
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            raise TxnError(ErrorCode.invalid_producer_id_mapping,
                           f"producer id {producer_id} is not the one of transactional id {transactional_id!r}")
        if producer_epoch != meta.producer_epoch:
            raise TxnError(ErrorCode.producer_fenced,
                           f"producer epoch {producer_epoch} is not the current one ({meta.producer_epoch}): "
                           "another producer with this transactional id took over")
        return meta

    # -- InitProducerId ------------------------------------------------------------------------

    async def init_producer_id(
        self, transactional_id: str, timeout_ms: int, producer_id: int = -1, producer_epoch: int = -1,
    ) -> tuple[int, int]:
        """(producer id, epoch) for a transactional producer; raises TxnError."""
        self._check(transactional_id)
        if timeout_ms <= 0 or timeout_ms > self.config.max_timeout_ms:
            raise TxnError(ErrorCode.invalid_transaction_timeout,
                           f"transaction.timeout.ms {timeout_ms} must be between 1 and transaction.max.timeout.ms "
                           f"{self.config.max_timeout_ms}")
        async with self._lock_for(transactional_id):
            self._check(transactional_id)
            now = self.clock.now_ms()
            meta = self.transactions.get(transactional_id)
            if meta is None:
                new_id = await self._next_producer_id()
                meta = TransactionMetadata(transactional_id, new_id, 0, timeout_ms, TxnState.EMPTY, frozenset(), now, -1)
                await self._store(meta)
                return meta.producer_id, meta.producer_epoch
            if producer_id >= 0:
                retried = producer_id == meta.producer_id and producer_epoch == meta.last_producer_epoch
                if retried and meta.state is TxnState.EMPTY:
                    return meta.producer_id, meta.producer_epoch  # a retry of a bump that succeeded
                if producer_id != meta.producer_id or producer_epoch != meta.producer_epoch:
                    raise TxnError(ErrorCode.producer_fenced,
                                   f"producer {producer_id} epoch {producer_epoch} is not the current producer of "
                                   f"{transactional_id!r}")
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE, TxnState.DEAD):
                raise TxnError(ErrorCode.concurrent_transactions, "the previous transaction is still completing")
            if meta.state is TxnState.ONGOING:
                await self._fence_and_abort(meta, f"a new producer initialized transactional id {transactional_id!r}")
                raise TxnError(ErrorCode.concurrent_transactions, "the previous producer's transaction is being aborted")
            if meta.producer_epoch + 1 >= MAX_EPOCH:
                new_meta = meta.evolve(producer_id=await self._next_producer_id(), producer_epoch=0, last_producer_epoch=-1)
            else:
                new_meta = meta.evolve(producer_epoch=meta.producer_epoch + 1, last_producer_epoch=meta.producer_epoch)
            new_meta = new_meta.evolve(timeout_ms=timeout_ms, state=TxnState.EMPTY, partitions=frozenset(),
                                       last_update_ms=now, start_ms=-1)
            await self._store(new_meta)
            return new_meta.producer_id, new_meta.producer_epoch

    async def _fence_and_abort(self, meta: TransactionMetadata, reason: str) -> None:
        """Abort an open transaction with a bumped epoch, so its producer can write no more."""
        epoch = meta.producer_epoch + 1 if meta.producer_epoch + 1 < MAX_EPOCH else meta.producer_epoch
        log.info("Aborting the transaction of %r (producer %d, epoch %d -> %d): %s",
                 meta.transactional_id, meta.producer_id, meta.producer_epoch, epoch, reason)
        prepared = meta.evolve(producer_epoch=epoch, last_producer_epoch=meta.producer_epoch,
                               state=TxnState.PREPARE_ABORT, last_update_ms=self.clock.now_ms())
        await self._store(prepared)
        self._start_completion(prepared)

    # -- AddPartitionsToTxn / AddOffsetsToTxn -------------------------------------------------------

    async def add_partitions(
        self, transactional_id: str, producer_id: int, producer_epoch: int, partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, ErrorCode]:
        """Add partitions to the producer's transaction; one error for each."""
        partitions = list(partitions)
        unknown = {tp for tp in partitions if not self._partition_exists(tp)}
        if unknown:
            return {tp: ErrorCode.unknown_topic_or_partition if tp in unknown else ErrorCode.operation_not_attempted
                    for tp in partitions}
        try:
            await self._add(transactional_id, producer_id, producer_epoch, partitions)
        except TxnError as error:
            return {tp: error.code for tp in partitions}
        return {tp: ErrorCode.none for tp in partitions}

    async def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str) -> None:
        """Add the group's `__consumer_offsets` partition to the transaction; raises TxnError."""
        if not group_id:
            raise TxnError(ErrorCode.invalid_group_id, "the group id is empty")
        await self._add(transactional_id, producer_id, producer_epoch, [self._offsets_partition_for(group_id)])

    async def _add(self, transactional_id: str, producer_id: int, producer_epoch: int, partitions) -> None:
        self._check(transactional_id)
        async with self._lock_for(transactional_id):
            self._check(transactional_id)
            meta = self._current(transactional_id, producer_id, producer_epoch)
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE):
                raise TxnError(ErrorCode.concurrent_transactions, "the previous transaction is still completing")
            if meta.state is TxnState.DEAD:
                raise TxnError(ErrorCode.invalid_producer_id_mapping, "the transactional id has expired")
            if meta.state is TxnState.ONGOING and meta.partitions.issuperset(partitions):
                return
            now = self.clock.now_ms()
            new_meta = meta.evolve(
                state=TxnState.ONGOING,
                partitions=(meta.partitions if meta.state is TxnState.ONGOING else frozenset()) | frozenset(partitions),
                start_ms=meta.start_ms if meta.state is TxnState.ONGOING else now,
                last_update_ms=now,
            )
            await self._store(new_meta)

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn v4+ with verify_only (KIP-890): which partitions the producer's open
        transaction holds. The others get INVALID_TXN_STATE."""
        partitions = list(partitions)
        try:
            self._check(transactional_id)
            meta = self._current(transactional_id, producer_id, producer_epoch)
        except TxnError as error:
            return {tp: error.code for tp in partitions}
        open_txn = meta.state is TxnState.ONGOING
        return {tp: ErrorCode.none if open_txn and tp in meta.partitions else ErrorCode.invalid_txn_state
                for tp in partitions}

    async def verify_for_produce(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                 partitions: list[TopicPartition], *, add: bool = False) -> dict[TopicPartition, ErrorCode]:
        """KIP-890: before a producer's first transactional write to a partition, its coordinator
        (here or on another broker) must confirm the partition is in its open transaction (part
        1), so a late write after an abort cannot start a transaction nobody will end; with
        transaction version 2 (`add`) the coordinator adds the partition itself (part 2)."""
        if self.coordinator_error(transactional_id) is None:
            if add:
                return await self.add_partitions(transactional_id, producer_id, producer_epoch, partitions)
            return self.verify_partitions(transactional_id, producer_id, producer_epoch, partitions)
        coordinator = self._coordinator_of(transactional_id)
        if coordinator is None:
            return {tp: ErrorCode.not_enough_replicas for tp in partitions}
        try:
            return await self.channel.verify(coordinator, transactional_id, producer_id, producer_epoch, partitions,
                                             verify_only=not add)
        except KafkaError:
            return {tp: ErrorCode.not_enough_replicas for tp in partitions}

    # -- EndTxn --------------------------------------------------------------------------------

    async def end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
                              bump_epoch: bool = False) -> tuple[int, int]:
        """Commit or abort; returns the producer id and epoch the producer goes on with. The
        outcome is decided once PrepareCommit/PrepareAbort is stored; the answer waits (up to
        END_WAIT_S) for the markers too, so a client that reads right after a commit (its group's
        offsets, another partition) sees the transaction complete. `bump_epoch`: transaction
        version 2 (EndTxn v5+), where every transaction ends with the epoch bumped."""
        if bump_epoch:
            await self._prepare_end_v2(transactional_id, producer_id, producer_epoch, commit)
        else:
            await self._prepare_end(transactional_id, producer_id, producer_epoch, commit)
        completing = self._completing.get(transactional_id)
        if completing is not None:
            await asyncio.wait({completing}, timeout=END_WAIT_S)
        meta = self.transactions.get(transactional_id)
        return (meta.producer_id, meta.producer_epoch) if meta is not None else (-1, -1)

    async def _prepare_end_v2(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> None:
        """Transaction version 2 (KIP-890 part 2): the end bumps the epoch (the markers carry the new
        one, which fences the producer's late writes of this transaction). A retry is recognised by
        its epoch being one below the current one; an abort is accepted with no transaction open."""
        self._check(transactional_id)
        async with self._lock_for(transactional_id):
            self._check(transactional_id)
            meta = self.transactions.get(transactional_id)
            if meta is None or meta.producer_id != producer_id:
                raise TxnError(ErrorCode.invalid_producer_id_mapping,
                               f"producer id {producer_id} is not the one of transactional id {transactional_id!r}")
            state = meta.state
            retry = meta.producer_epoch == producer_epoch + 1
            if state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                valid = retry
            elif state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
                valid = retry or producer_epoch == meta.producer_epoch
            else:
                valid = producer_epoch == meta.producer_epoch
            if not valid:
                raise TxnError(ErrorCode.producer_fenced,
                               f"producer epoch {producer_epoch} is not the current one ({meta.producer_epoch})")
            wanted = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
            done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
            if state is TxnState.ONGOING or (not commit and not retry and state in (
                    TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)):
                partitions = meta.partitions if state is TxnState.ONGOING else frozenset()
                prepared = meta.evolve(state=wanted, partitions=partitions, last_update_ms=self.clock.now_ms(),
                                       producer_epoch=min(meta.producer_epoch + 1, MAX_EPOCH),
                                       last_producer_epoch=meta.producer_epoch)
                await self._store(prepared)
                self._start_completion(prepared)
                return
            if state is done and retry:
                return  # a retry of an EndTxn that succeeded
            if state is wanted:
                raise TxnError(ErrorCode.concurrent_transactions, "the transaction is still completing")
            action = "commit" if commit else "abort"
            raise TxnError(ErrorCode.invalid_txn_state,
                           f"cannot {action} transactional id {transactional_id!r} in state {state.label}")

    async def _prepare_end(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> None:
        self._check(transactional_id)
        async with self._lock_for(transactional_id):
            self._check(transactional_id)
            meta = self._current(transactional_id, producer_id, producer_epoch)
            state = meta.state
            wanted, done = ((TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT) if commit
                            else (TxnState.PREPARE_ABORT, TxnState.COMPLETE_ABORT))
            if state is TxnState.ONGOING:
                prepared = meta.evolve(state=wanted, last_update_ms=self.clock.now_ms())
                await self._store(prepared)
                self._start_completion(prepared)
                return
            if state is done:
                return  # a retry of an EndTxn that succeeded
            if state is wanted:
                raise TxnError(ErrorCode.concurrent_transactions, "the transaction is still completing")
            if state is TxnState.PREPARE_EPOCH_FENCE:
                raise TxnError(ErrorCode.producer_fenced, "the producer was fenced")
            action = "commit" if commit else "abort"
            raise TxnError(ErrorCode.invalid_txn_state,
                           f"cannot {action} transactional id {transactional_id!r} in state {state.label}")

    def _start_completion(self, prepared: TransactionMetadata) -> None:
        previous = self._completing.get(prepared.transactional_id)
        if previous is not None and not previous.done():
            return
        task = asyncio.get_running_loop().create_task(self._complete(prepared))
        self._completing[prepared.transactional_id] = task
        task.add_done_callback(lambda t, tid=prepared.transactional_id: self._completing.get(tid) is t and self._completing.pop(tid))

    async def _complete(self, prepared: TransactionMetadata) -> None:
        """Write the markers, then CompleteCommit/CompleteAbort (retried while this broker coordinates)."""
        transactional_id = prepared.transactional_id
        committed = prepared.state is TxnState.PREPARE_COMMIT
        coordinator_epoch = self.owned.epoch_of(transactional_id)

        def still_current() -> bool:
            return self.transactions.get(transactional_id) == prepared and self.coordinator_error(transactional_id) is None

        try:
            await self.channel.write(prepared.producer_id, prepared.producer_epoch, committed, coordinator_epoch,
                                     prepared.partitions, still_current)
            while still_current():
                async with self._lock_for(transactional_id):
                    if not still_current():
                        return
                    done = prepared.evolve(
                        state=TxnState.COMPLETE_COMMIT if committed else TxnState.COMPLETE_ABORT,
                        partitions=frozenset(), last_update_ms=self.clock.now_ms(),
                    )
                    if done.producer_epoch >= MAX_EPOCH:  # a version 2 bump used the last epoch
                        done = done.evolve(producer_id=await self._next_producer_id(), producer_epoch=0,
                                           last_producer_epoch=-1)
                    try:
                        await self._store(done)
                        return
                    except TxnError as error:
                        log.warning("Could not record the end of the transaction of %r: %s; retrying",
                                    transactional_id, error)
                await asyncio.sleep(COMPLETE_RETRY_S)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Completing the transaction of %r failed", transactional_id)

    # -- timers --------------------------------------------------------------------------------

    async def abort_timed_out(self) -> int:
        """Abort transactions open longer than their timeout (their producer is fenced)."""
        now = self.clock.now_ms()
        expired = [meta for meta in list(self.transactions.values())
                   if meta.state is TxnState.ONGOING and meta.start_ms + meta.timeout_ms < now]
        aborted = 0
        for meta in expired:
            async with self._lock_for(meta.transactional_id):
                if self.transactions.get(meta.transactional_id) != meta:
                    continue
                try:
                    await self._fence_and_abort(meta, f"open longer than its timeout of {meta.timeout_ms} ms")
                    aborted += 1
                except TxnError as error:
                    log.warning("Could not abort the timed-out transaction of %r: %s", meta.transactional_id, error)
        return aborted

    async def expire_transactional_ids(self) -> int:
        """Forget transactional ids idle for transactional.id.expiration.ms (a tombstone each)."""
        now = self.clock.now_ms()
        idle = [meta for meta in list(self.transactions.values())
                if meta.state in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
                and meta.last_update_ms + self.config.id_expiration_ms <= now]
        removed = 0
        for meta in idle:
            async with self._lock_for(meta.transactional_id):
                if self.transactions.get(meta.transactional_id) != meta:
                    continue
                try:
                    await self.store.write_committed(meta.transactional_id, [(transaction_key(meta.transactional_id), None)])
                except KafkaError as error:
                    log.warning("Could not expire transactional id %r: %s", meta.transactional_id, error)
                    continue
                if self.transactions.get(meta.transactional_id) == meta:
                    del self.transactions[meta.transactional_id]
                    removed += 1
        if removed:
            log.info("Expired %d transactional ids idle longer than transactional.id.expiration.ms", removed)
        return removed

    # -- admin ---------------------------------------------------------------------------------

    def describe(self, transactional_id: str) -> TransactionMetadata:
        self._check(transactional_id)
        meta = self.transactions.get(transactional_id)
        if meta is None:
            raise TxnError(ErrorCode.transactional_id_not_found, f"no transactional id {transactional_id!r}")
        return meta

    def list_transactions(self, states: Iterable[str] = (), producer_ids: Iterable[int] = (), min_duration_ms: int = -1,
             pattern: str | None = None) -> tuple[list[TransactionMetadata], list[str]]:
        """Transactions this broker coordinates matching every filter (the pattern must match the
        whole id), and the unknown state names."""
        states = list(states)
        unknown = [name for name in states if name not in STATE_BY_LABEL]
        wanted_states = {STATE_BY_LABEL[name] for name in states if name in STATE_BY_LABEL}
        wanted_ids = set(producer_ids)
        regex = re.compile(pattern) if pattern else None
        now = self.clock.now_ms()
        found = []
        for meta in self.transactions.values():
            if states and meta.state not in wanted_states:
                continue
            if wanted_ids and meta.producer_id not in wanted_ids:
                continue
            if min_duration_ms >= 0 and now - meta.start_ms < min_duration_ms:
                continue  # Kafka's rule, whatever the state: measured from the last transaction's start
            if regex is not None and not regex.fullmatch(meta.transactional_id):
                continue
            found.append(meta)
        return sorted(found, key=lambda m: m.transactional_id), unknown

    def shutdown(self) -> None:
        self.owned.shutdown()
        for task in self._completing.values():
            task.cancel()
        self._completing.clear()
