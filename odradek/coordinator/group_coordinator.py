"""The group coordinator: consumer groups (classic and KIP-848) and their committed offsets, per
`__consumer_offsets` partition.

A group lives in the partition its id hashes to, and this broker coordinates it only while it leads
that partition (owned_partitions.py). Becoming leader replays the partition (groups and offsets come
back, members must heartbeat within their session timeout); stepping down drops them and answers
parked requests NOT_COORDINATOR. The operations are in their own modules, mixed in here:
classic_ops.py (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), consumer_group_ops.py
(ConsumerGroupHeartbeat and online migration) and offset_ops.py (offsets); this module holds the
state they share, its replay from the log, and the admin operations.

Every change is written to `__consumer_offsets` (state_log.py) and takes effect, in memory and in
the answer, only once the in-sync replicas have it. Operations that write run one at a time per
offsets partition. Timers run on the injected clock. Runs on the event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from odradek.coordinator.assignors import Assignment
from odradek.coordinator.classic_ops import ClassicGroupOps, group_store_error
from odradek.coordinator.consumer_group import ConsumerGroup, ConsumerMember
from odradek.coordinator.consumer_group_ops import ConsumerGroupOps, MemberTimers
from odradek.coordinator.group import ClassicGroup, Member
from odradek.coordinator.group_records import (
    CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
    CONSUMER_GROUP_MEMBER_METADATA,
    CONSUMER_GROUP_METADATA,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
    GroupKey,
    OffsetAndMetadata,
    OffsetKey,
    RecordFormatError,
    consumer_key,
    decode_consumer_current_assignment_value,
    decode_consumer_epoch_value,
    decode_consumer_key,
    decode_consumer_member_metadata_value,
    decode_consumer_target_assignment_value,
    decode_group_value,
    decode_key,
    decode_offset_value,
    group_key,
    offset_key,
)
from odradek.coordinator.group_state import GroupState
from odradek.coordinator.offset_ops import OffsetOps
from odradek.coordinator.owned_partitions import OwnedPartitions
from odradek.coordinator.state_log import CoordinatorLog, LogEntry
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupConfig:
    initial_rebalance_delay_ms: int = 3000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    max_size: int = 2**31 - 1
    offset_metadata_max_bytes: int = 4096
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    consumer_session_timeout_ms: int = 45000
    consumer_heartbeat_interval_ms: int = 5000
    consumer_assignors: tuple[str, ...] = ("uniform", "range")
    migration_policy: str = "bidirectional"  # group.consumer.migration.policy


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol_name: str
    members: list[tuple[Member, bytes, bytes]]  # member, metadata, assignment
    error: ErrorCode = ErrorCode.none


class GroupCoordinator(ClassicGroupOps, ConsumerGroupOps, OffsetOps):
    def __init__(
        self,
        store: CoordinatorLog,
        config: GroupConfig,
        clock,
        *,
        partition_exists: Callable[[str, int], bool],
        partition_counts: Callable[[Iterable[str]], dict[str, int]] = lambda topics: {},
        topic_id_of: Callable[[str], object] = lambda name: None,
        topic_name_of: Callable[[object], str | None] = lambda topic_id: None,
        group_setting: Callable[[str, str], int] | None = None,
        topic_names: Callable[[], Iterable[str]] = lambda: (),
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.partition_exists = partition_exists
        self.partition_counts = partition_counts
        self.topic_id_of = topic_id_of
        self.topic_name_of = topic_name_of
        self._group_setting = group_setting
        self.topic_names = topic_names  # every non-internal topic, for regex subscriptions
        self.groups: dict[str, ClassicGroup] = {}
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        self.offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        # TxnOffsetCommit: producer id -> group -> partition -> offset, until the producer's marker
        self.pending_txn_offsets: dict[int, dict[str, dict[tuple[str, int], OffsetAndMetadata]]] = {}
        self.member_timers: dict[tuple[str, str], MemberTimers] = {}  # (group, member) -> its timers
        self.owned = OwnedPartitions(store, self._loaded)

    # -- which groups this broker coordinates ----------------------------------------------------

    def coordinator_error(self, group_id: str) -> ErrorCode | None:
        """NOT_COORDINATOR unless this broker leads the group's offsets partition and has loaded
        it; COORDINATOR_LOAD_IN_PROGRESS while it loads."""
        return self.owned.error_for(group_id)

    def _lock_for(self, group_id: str) -> asyncio.Lock:
        return self.owned.lock_for(group_id)

    def on_leadership_change(self, partition: int, is_leader: bool, leader_epoch: int = 0, is_empty: bool = False) -> None:
        """The replica manager says this broker now leads (or no longer leads) an offsets partition."""
        if is_leader:
            self.owned.begin_loading(partition, leader_epoch, is_empty)
        else:
            self.unload_partition(partition)

    def _loaded(self, partition: int, _leader_epoch: int, entries: list[LogEntry]) -> None:
        loaded = self._apply_records(entries)
        self._start_timers(loaded)
        if loaded:
            log.info("Loaded %d groups from __consumer_offsets-%d", len(loaded), partition)

    async def wait_until_loaded(self) -> None:
        """Until every partition being loaded is loaded (start-up waits for this)."""
        await self.owned.wait_until_loaded()

    def unload_partition(self, partition: int) -> None:
        """This broker no longer leads the partition: drop its groups and offsets, cancel their
        timers, and answer parked JoinGroup/SyncGroup requests NOT_COORDINATOR."""
        self.owned.give_up(partition)
        mine = lambda group_id: self.owned.owns(group_id, partition)  # noqa: E731
        dropped = 0
        for group_id in [g for g in self.groups if mine(g)]:
            self._release_classic_group(self.groups.pop(group_id), ErrorCode.not_coordinator)
            dropped += 1
        for group_id in [g for g in self.consumer_groups if mine(g)]:
            for member_id in self.consumer_groups.pop(group_id).members:
                self._cancel_consumer_timers(group_id, member_id)
            dropped += 1
        for group_id in [g for g in self.offsets if mine(g)]:
            del self.offsets[group_id]
        for by_group in self.pending_txn_offsets.values():
            for group_id in [g for g in by_group if mine(g)]:
                del by_group[group_id]
        if dropped:
            log.info("Unloaded %d groups of __consumer_offsets-%d: this broker no longer leads it", dropped, partition)

    # -- start-up -----------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild every partition's groups and offsets at once (tools and tests; the broker loads
        partition by partition as it becomes their leader)."""
        self._apply_records(self.owned.load_all())

    def _apply_records(self, entries: list[LogEntry]) -> set[str]:
        """Rebuild groups and offsets from records of `__consumer_offsets` (last record per key
        wins; a transactional offset commit counts once its producer's COMMIT marker comes);
        returns the ids of the groups they hold."""
        snapshots = {}
        consumer_records: dict[tuple[int, str, str | None], bytes | None] = {}
        touched: set[str] = set()
        for key_bytes, value, producer_id, transactional, marker in entries:
            if marker is not None:
                self._end_pending_offsets(producer_id, marker, lambda group_id: True)
                continue
            try:
                if transactional and producer_id >= 0:
                    key = decode_key(key_bytes)
                    if isinstance(key, OffsetKey) and value is not None:
                        touched.add(key.group_id)
                        pending = self.pending_txn_offsets.setdefault(producer_id, {}).setdefault(key.group_id, {})
                        pending[(key.topic, key.partition)] = decode_offset_value(value)
                    continue
                consumer = decode_consumer_key(key_bytes)
                if consumer is not None:
                    touched.add(consumer.group_id)
                    consumer_records[(consumer.record_type, consumer.group_id, consumer.member_id)] = value
                    continue
                key = decode_key(key_bytes)
                touched.add(key.group_id)
                if isinstance(key, OffsetKey):
                    offsets = self.offsets.setdefault(key.group_id, {})
                    if value is None:
                        offsets.pop((key.topic, key.partition), None)
                    else:
                        offsets[(key.topic, key.partition)] = decode_offset_value(value)
                elif isinstance(key, GroupKey):
                    snapshots[key.group_id] = None if value is None else decode_group_value(value)
            except RecordFormatError as error:
                log.warning("Skipping an unreadable record in __consumer_offsets: %s", error)
        for group_id, snapshot in snapshots.items():
            if snapshot is None:
                self.groups.pop(group_id, None)
                continue
            group = ClassicGroup(
                group_id,
                generation_id=snapshot.generation_id,
                protocol_type=snapshot.protocol_type or None,
                protocol_name=snapshot.protocol_name,
                leader_id=snapshot.leader_id,
                state_timestamp_ms=snapshot.state_timestamp_ms,
            )
            for m in snapshot.members:
                group.members[m.member_id] = Member(
                    m.member_id, m.group_instance_id, m.client_id, m.client_host,
                    m.session_timeout_ms, m.rebalance_timeout_ms, snapshot.protocol_type,
                    [(snapshot.protocol_name or "", m.subscription)], assignment=m.assignment,
                )
                if m.group_instance_id:
                    group.static_members[m.group_instance_id] = m.member_id
            group.state = GroupState.STABLE if group.members else GroupState.EMPTY
            self.groups[group_id] = group
        self._load_consumer_groups(consumer_records)
        for group_id in touched:
            if group_id in self.offsets and group_id not in self.consumer_groups:
                self.groups.setdefault(group_id, ClassicGroup(group_id))
        return {group_id for group_id in touched if group_id in self.groups or group_id in self.consumer_groups}

    def _load_consumer_groups(self, records: dict[tuple[int, str, str | None], bytes | None]) -> None:
        """Consumer-protocol groups from their records (last value per key, tombstones removed)."""
        live = {key: value for key, value in records.items() if value is not None}
        for (record_type, group_id, _member), value in live.items():
            if record_type == CONSUMER_GROUP_METADATA:
                group = ConsumerGroup(group_id, assignor_name=self.config.consumer_assignors[0])
                group.group_epoch = decode_consumer_epoch_value(value)
                self.consumer_groups[group_id] = group
        for (record_type, group_id, member_id), value in live.items():
            group = self.consumer_groups.get(group_id)
            if group is None:
                continue
            try:
                if record_type == CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA:
                    group.assignment_epoch = decode_consumer_epoch_value(value)
                elif record_type == CONSUMER_GROUP_MEMBER_METADATA:
                    m = decode_consumer_member_metadata_value(value)
                    group.members[member_id] = ConsumerMember(
                        member_id, m.instance_id, m.rack_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                        sorted(m.subscribed_topic_names), m.server_assignor, classic=m.classic,
                        subscribed_regex=m.subscribed_topic_regex,
                    )
            except RecordFormatError as error:
                log.warning("Skipping an unreadable consumer group record of %s: %s", group_id, error)
        for (record_type, group_id, member_id), value in live.items():
            group = self.consumer_groups.get(group_id)
            if group is None:
                continue
            try:
                if record_type == CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER and member_id in group.members:
                    group.target[member_id] = self._by_name(decode_consumer_target_assignment_value(value))
                elif record_type == CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT and member_id in group.members:
                    current = decode_consumer_current_assignment_value(value)
                    member = group.members[member_id]
                    member.member_epoch = current.member_epoch
                    member.previous_epoch = current.previous_member_epoch
                    member.assigned = self._by_name(current.assigned)
                    member.pending_revocation = self._by_name(current.pending_revocation)
            except RecordFormatError as error:
                log.warning("Skipping an unreadable consumer group record of %s: %s", group_id, error)
        for group in self.consumer_groups.values():
            for member in group.members.values():
                member.regex_topics = self.regex_matches(member.subscribed_regex)
            group.partition_counts = self.partition_counts(group.subscribed_topics())

    def _by_name(self, partitions: dict) -> Assignment:
        by_name: Assignment = {}
        for topic_id, parts in partitions.items():
            name = self.topic_name_of(topic_id)
            if name is not None:
                by_name[name] = set(parts)
        return by_name

    def _by_id(self, partitions: Assignment) -> dict:
        by_id = {}
        for name, parts in partitions.items():
            topic_id = self.topic_id_of(name)
            if topic_id is not None:
                by_id[topic_id] = set(parts)
        return by_id

    def start(self) -> None:
        """After load(): restored members must heartbeat within their session timeout."""
        self._start_timers(set(self.groups) | set(self.consumer_groups))

    def _start_timers(self, group_ids: set[str]) -> None:
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is not None:
                for member in group.members.values():
                    self._schedule_session_expiry(group, member)
            consumer_group = self.consumer_groups.get(group_id)
            if consumer_group is not None:
                for consumer in consumer_group.members.values():
                    self._schedule_session_timer(consumer_group, consumer)
                    self._follow_revocation(consumer_group, consumer)

    def describe_group(self, group_id: str) -> GroupDescription:
        error = self.coordinator_error(group_id)
        if error is not None:
            return GroupDescription(group_id, GroupState.DEAD.value, "", "", [], error)
        group = self.groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, GroupState.DEAD.value, "", "", [], ErrorCode.group_id_not_found)
        members = []
        if group.state == GroupState.STABLE:
            members = [(m, m.metadata_for(group.protocol_name), m.assignment) for m in group.members.values()]
        elif group.state in (GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE):
            members = [(m, b"", b"") for m in group.members.values()]
        protocol = group.protocol_name or "" if group.state == GroupState.STABLE else ""
        return GroupDescription(group_id, group.state.value, group.protocol_type or "", protocol, members)

    def list_groups(self, states: Iterable[str] | None = None, types: Iterable[str] | None = None) -> list[tuple[str, str, str, str]]:
        """(group id, protocol type, state, group type) of every group matching the filters."""
        wanted_states = {s.lower() for s in states} if states else None
        wanted_types = {t.lower() for t in types} if types else None
        listed = [
            (group.group_id, group.protocol_type or "", group.state.value, "classic")
            for group in self.groups.values()
            if group.state != GroupState.DEAD
        ]
        listed += [(g.group_id, "consumer", g.state, "consumer") for g in self.consumer_groups.values()]
        return [
            entry
            for entry in sorted(listed)
            if (wanted_states is None or entry[2].lower() in wanted_states)
            and (wanted_types is None or entry[3] in wanted_types)
        ]

    async def delete_groups(self, group_ids: list[str]) -> list[ErrorCode]:
        results: list[ErrorCode] = []
        for group_id in group_ids:
            async with self._lock_for(group_id or ""):
                results.append(await self._delete_group(group_id))
        return results

    async def _delete_group(self, group_id: str) -> ErrorCode:
        error = self._check_group_id(group_id) or self.coordinator_error(group_id)
        if error is not None:
            return error
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            if consumer_group.members:
                return ErrorCode.non_empty_group
            try:
                await self.store.write_committed(group_id, [
                    (consumer_key(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, group_id), None),
                    (consumer_key(CONSUMER_GROUP_METADATA, group_id), None),
                ])
            except KafkaError as failure:
                return group_store_error(failure)
            self.consumer_groups.pop(group_id, None)
            self.groups.setdefault(group_id, ClassicGroup(group_id))
        group = self.groups.get(group_id)
        if group is None or group.state == GroupState.DEAD:
            return ErrorCode.group_id_not_found
        if not group.is_empty:
            return ErrorCode.non_empty_group
        records = [(offset_key(group_id, t, p), None) for t, p in self.offsets.get(group_id, {})]
        records.append((group_key(group_id), None))
        try:
            await self.store.write_committed(group_id, records)
        except KafkaError as failure:
            return group_store_error(failure)
        if self.groups.get(group_id) is not group:
            return ErrorCode.not_coordinator  # unloaded while the write replicated
        group.transition_to(GroupState.DEAD, self.clock.now_ms())
        del self.groups[group_id]
        self.offsets.pop(group_id, None)
        log.info("Deleted group %s", group_id)
        return ErrorCode.none

    def shutdown(self) -> None:
        """Cancel timers and release parked JoinGroup/SyncGroup requests."""
        self.owned.shutdown()
        for group in self.groups.values():
            self._release_classic_group(group, ErrorCode.coordinator_not_available)
        for group_id, member_id in list(self.member_timers):
            self._cancel_consumer_timers(group_id, member_id)
