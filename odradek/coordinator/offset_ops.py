"""Committed offsets: OffsetCommit, TxnOffsetCommit, OffsetFetch, OffsetDelete and retention.

An offset commit is validated against the group (Kafka's validateOffsetCommit), written to
`__consumer_offsets`, and takes effect in memory and in the answer only once it is committed there.
A transactional commit stays pending (OffsetFetch with require_stable answers
UNSTABLE_OFFSET_COMMIT) until its producer's marker reaches the group's partition. Offsets of a
group empty for `offsets.retention.minutes` expire, and the group with them. A part of
GroupCoordinator (its state and helpers are the coordinator's); runs on the event loop.
"""

from __future__ import annotations

import logging

from odradek.coordinator.classic_ops import group_store_error
from odradek.coordinator.group import ClassicGroup
from odradek.coordinator.group_records import OffsetAndMetadata, group_key, offset_key, offset_value
from odradek.coordinator.group_state import GroupState
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

# A TxnOffsetCommit refused by the log for its producer: the client's transaction must abort.
_TXN_STORE_ERRORS = {
    ErrorCode.invalid_producer_epoch: ErrorCode.producer_fenced,
    ErrorCode.invalid_txn_state: ErrorCode.invalid_txn_state,
}


class OffsetOps:
    """Committed offsets' operations, mixed into GroupCoordinator."""

    async def commit_offsets(self, group_id: str, *args) -> list[ErrorCode]:
        async with self._lock_for(group_id or ""):
            return await self._commit_offsets(group_id, *args)

    async def _commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[tuple[str, int, int, int, str | None]],
    ) -> list[ErrorCode]:
        """One error per (topic, partition, offset, leader epoch, metadata) committed."""
        error = self._check_group_id(group_id) or self.coordinator_error(group_id)
        if error is None:
            error = self._check_commit(group_id, generation_id, member_id, group_instance_id)
        if error is not None:
            return [error for _ in offsets]

        now = self.clock.now_ms()
        results, records, accepted = self._offset_records(group_id, offsets, now)
        try:
            await self.store.write_committed(group_id, records)
        except KafkaError as failure:
            code = group_store_error(failure)
            for index, _tp, _value in accepted:
                results[index] = code
            return results
        if self.coordinator_error(group_id) is not None:
            return [ErrorCode.not_coordinator for _ in offsets]  # unloaded while the write replicated
        group = self.groups.get(group_id)
        consumer_group = self.consumer_groups.get(group_id)
        if group is None and consumer_group is None:
            group = self.groups[group_id] = ClassicGroup(group_id, state_timestamp_ms=now)
        committed = self.offsets.setdefault(group_id, {})
        for _index, tp, value in accepted:
            committed[tp] = value
        member = group.members.get(member_id) if group is not None else None
        if member is not None and not member.awaiting_join:
            self._schedule_session_expiry(group, member)
        return results

    def _offset_records(self, group_id: str, offsets, now: int):
        """(an error per offset, the records to write, (index, partition, value) of each accepted):
        a metadata string too large or an unknown partition is refused, the rest written."""
        results: list[ErrorCode] = []
        records, accepted = [], []
        for topic, partition, offset, leader_epoch, metadata in offsets:
            metadata = metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                results.append(ErrorCode.offset_metadata_too_large)
            elif not self.partition_exists(topic, partition):
                results.append(ErrorCode.unknown_topic_or_partition)
            else:
                value = OffsetAndMetadata(offset, leader_epoch, metadata, now)
                records.append((offset_key(group_id, topic, partition), offset_value(value)))
                accepted.append((len(results), (topic, partition), value))
                results.append(ErrorCode.none)
        return results, records, accepted

    async def commit_transactional_offsets(self, group_id: str, *args) -> list[ErrorCode]:
        async with self._lock_for(group_id or ""):
            return await self._commit_transactional_offsets(group_id, *args)

    async def _commit_transactional_offsets(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[tuple[str, int, int, int, str | None]],
    ) -> list[ErrorCode]:
        """TxnOffsetCommit: write the offsets as part of the producer's transaction. They are
        pending (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT) until the
        transaction's marker reaches the group's offsets partition (complete_transaction)."""
        error = self._check_group_id(group_id) or self.coordinator_error(group_id)
        if error is None and (member_id or generation_id >= 0):
            error = self._check_commit(group_id, generation_id, member_id, group_instance_id)
        if error is not None:
            return [error for _ in offsets]
        results, records, accepted = self._offset_records(group_id, offsets, self.clock.now_ms())
        try:
            await self.store.write_committed(group_id, records, producer_id=producer_id, producer_epoch=producer_epoch)
        except KafkaError as failure:
            code = _TXN_STORE_ERRORS.get(failure.code) or group_store_error(failure)
            for index, _tp, _value in accepted:
                results[index] = code
            return results
        if self.coordinator_error(group_id) is not None:
            return [ErrorCode.not_coordinator for _ in offsets]
        pending = self.pending_txn_offsets.setdefault(producer_id, {}).setdefault(group_id, {})
        for _index, tp, value in accepted:
            pending[tp] = value
        return results

    def complete_transaction(self, offsets_partition: int, producer_id: int, committed: bool) -> None:
        """A transaction marker reached `__consumer_offsets-<offsets_partition>` and is replicated:
        the producer's pending offsets of groups there become committed, or are dropped."""
        self._end_pending_offsets(
            producer_id, committed, lambda group_id: self.store.partition_for(group_id) == offsets_partition
        )

    def _end_pending_offsets(self, producer_id: int, committed: bool, in_scope) -> None:
        by_group = self.pending_txn_offsets.get(producer_id)
        if not by_group:
            return
        for group_id in [g for g in by_group if in_scope(g)]:
            pending = by_group.pop(group_id)
            if committed:
                self.offsets.setdefault(group_id, {}).update(pending)
                if group_id not in self.groups and group_id not in self.consumer_groups:
                    self.groups[group_id] = ClassicGroup(group_id, state_timestamp_ms=self.clock.now_ms())
        if not by_group:
            del self.pending_txn_offsets[producer_id]

    def has_pending_offsets(self, group_id: str, tp: tuple[str, int] | None = None) -> bool:
        """Whether an open transaction holds offsets of this group (for this partition)."""
        return any(
            group_id in by_group and (tp is None or tp in by_group[group_id])
            for by_group in self.pending_txn_offsets.values()
        )

    def _check_commit(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None) -> ErrorCode | None:
        """Kafka's validateOffsetCommit. A generation below 0 comes from a client outside group
        management (the admin client, or a consumer that assigns itself partitions, which under
        KIP-848 still sends its member id): accepted while the group has no members or does not
        exist, whatever the member id. Otherwise the member and its generation (or epoch) must
        be current."""
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None and consumer_group.members:
            return self._check_consumer_member(consumer_group, member_id, generation_id)
        group = self.groups.get(group_id)
        if generation_id < 0:
            if group is None or group.is_empty:
                return None
            if not member_id and group_instance_id is None:
                return ErrorCode.unknown_member_id
        if group is None:
            return ErrorCode.illegal_generation
        error = self._check_member(group, member_id, group_instance_id, generation_id)
        if error is None and group.state == GroupState.COMPLETING_REBALANCE:
            error = ErrorCode.rebalance_in_progress
        return error

    def fetch_offsets(self, group_id: str, wanted: list[tuple[str, list[int]]] | None):
        """[(topic, partition, OffsetAndMetadata | None)] for the wanted partitions, or all committed.
        The caller checks coordinator_error first."""
        committed = self.offsets.get(group_id, {})
        if wanted is None:
            return [(topic, partition, value) for (topic, partition), value in sorted(committed.items())]
        return [
            (topic, partition, committed.get((topic, partition)))
            for topic, partitions in wanted
            for partition in partitions
        ]

    async def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> tuple[ErrorCode, list[ErrorCode]]:
        async with self._lock_for(group_id or ""):
            return await self._delete_offsets(group_id, partitions)

    async def _delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> tuple[ErrorCode, list[ErrorCode]]:
        error = self.coordinator_error(group_id)
        if error is not None:
            return error, []
        group = self.groups.get(group_id)
        if group is None or group.state == GroupState.DEAD:
            return ErrorCode.group_id_not_found, []
        subscribed = set() if group.is_empty else (group.subscribed_topics() or set())
        committed = self.offsets.get(group_id, {})
        results, records, removable = [], [], []
        for topic, partition in partitions:
            if topic in subscribed:
                results.append(ErrorCode.group_subscribed_to_topic)
                continue
            results.append(ErrorCode.none)
            if (topic, partition) in committed:
                records.append((offset_key(group_id, topic, partition), None))
                removable.append((topic, partition))
        try:
            await self.store.write_committed(group_id, records)
        except KafkaError as failure:
            return group_store_error(failure), []
        for tp in removable:
            committed.pop(tp, None)
        return ErrorCode.none, results

    async def expire_offsets(self) -> int:
        """Remove offsets of groups that have been empty longer than offsets.retention; returns how many."""
        removed = 0
        for group_id in list(self.offsets):
            async with self._lock_for(group_id):
                removed += await self._expire_group_offsets(group_id)
        return removed

    async def _expire_group_offsets(self, group_id: str) -> int:
        committed = self.offsets.get(group_id)
        if committed is None:
            return 0
        now = self.clock.now_ms()
        retention = self.config.offsets_retention_ms
        group = self.groups.get(group_id)
        if group is not None and not group.is_empty:
            return 0
        empty_since = group.state_timestamp_ms if group is not None else -1
        expired = [
            tp for tp, value in committed.items() if max(value.commit_timestamp_ms, empty_since) + retention <= now
        ]
        if not expired:
            return 0
        records = [(offset_key(group_id, topic, partition), None) for topic, partition in expired]
        if len(expired) == len(committed) and group is not None:
            records.append((group_key(group_id), None))
        try:
            await self.store.write_committed(group_id, records)
        except KafkaError as failure:
            log.warning("Could not expire offsets of group %s: %s", group_id, failure)
            return 0
        if self.offsets.get(group_id) is not committed:
            return 0  # unloaded meanwhile
        for tp in expired:
            committed.pop(tp, None)
        if not committed:
            del self.offsets[group_id]
            if group is not None:
                group.state = GroupState.DEAD
                self.groups.pop(group_id, None)
        log.info("Expired %d committed offsets of empty group %s", len(expired), group_id)
        return len(expired)
