"""The group coordinator for the classic protocol: membership, rebalances, committed offsets.

Kafka's rules: a member joins (KIP-394: a dynamic member first gets its id with
MEMBER_ID_REQUIRED), the group waits in PreparingRebalance for every member to rejoin (an empty
group first waits `group.initial.rebalance.delay.ms` for more), the first member to join leads,
the leader's SyncGroup carries everyone's assignment, members heartbeat within their session
timeout. Static members (KIP-345) keep their assignment across restarts within the session
timeout, and an older instance is fenced (FENCED_INSTANCE_ID). The broker never looks inside
assignments: any client-side assignor works.

State is kept per `__consumer_offsets` partition: a group lives in the partition its id hashes to,
and this broker coordinates it only while it leads that partition. Becoming leader replays the
partition (groups and offsets come back, members must heartbeat within their session timeout);
stepping down drops them and answers parked requests NOT_COORDINATOR. Meanwhile requests get
COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR, which clients retry after FindCoordinator.

Committed offsets and group metadata are written to `__consumer_offsets` (state_log.py) and
take effect, in memory and in the answer, only once the in-sync replicas have them; a KIP-848
change whose write fails is rolled back. Timers run on the injected clock. Runs on the event
loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from odradek.coordinator.assignors import Assignment
from odradek.coordinator.consumer_group import (
    JOIN_EPOCH,
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    new_member_id,
)
from odradek.coordinator.group import ClassicGroup, Member
from odradek.coordinator.group_migration import (
    assignment_bytes,
    downgrade_allowed,
    needs_rejoin,
    only_classic_members,
    subscription_of,
    to_classic_group,
    to_consumer_group,
    upgrade_allowed,
)
from odradek.coordinator.group_records import (
    CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
    CONSUMER_GROUP_MEMBER_METADATA,
    CONSUMER_GROUP_METADATA,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
    ClassicMemberMetadata,
    ConsumerMemberAssignment,
    ConsumerMemberMetadata,
    consumer_current_assignment_value,
    consumer_group_epoch_value,
    consumer_key,
    consumer_member_metadata_value,
    consumer_target_assignment_value,
    decode_consumer_current_assignment_value,
    decode_consumer_epoch_value,
    decode_consumer_key,
    decode_consumer_member_metadata_value,
    decode_consumer_target_assignment_value,
    GroupKey,
    OffsetAndMetadata,
    OffsetKey,
    RecordFormatError,
    decode_group_value,
    decode_key,
    decode_offset_value,
    group_key,
    group_value,
    offset_key,
    offset_value,
)
from odradek.coordinator.group_state import GroupState
from odradek.coordinator.state_log import CoordinatorLog, LogEntry
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

MAX_GROUP_ID_LENGTH = 255  # Kafka has no limit; a bound keeps records and logs sane


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
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass
class HeartbeatResult:
    """The answer to a ConsumerGroupHeartbeat; `assignment` is None when unchanged."""

    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = -1
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol_name: str
    members: list[tuple[Member, bytes, bytes]]  # member, metadata, assignment
    error: ErrorCode = ErrorCode.none


# Errors from the log that OffsetCommit and SyncGroup clients understand, as Kafka maps them.
_STORE_ERRORS = {
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
    ErrorCode.kafka_storage_error: ErrorCode.not_coordinator,
    ErrorCode.message_too_large: ErrorCode.invalid_commit_offset_size,
    ErrorCode.record_list_too_large: ErrorCode.invalid_commit_offset_size,
}


# A TxnOffsetCommit refused by the log for its producer: the client's transaction must abort.
_TXN_STORE_ERRORS = {
    ErrorCode.invalid_producer_epoch: ErrorCode.producer_fenced,
    ErrorCode.invalid_txn_state: ErrorCode.invalid_txn_state,
}


def _store_error(error: KafkaError) -> ErrorCode:
    return _STORE_ERRORS.get(error.code, ErrorCode.unknown_server_error)


class GroupCoordinator:
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
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.partition_exists = partition_exists
        self.partition_counts = partition_counts
        self.topic_id_of = topic_id_of
        self.topic_name_of = topic_name_of
        self._group_setting = group_setting
        self.groups: dict[str, ClassicGroup] = {}
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        self.offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        # TxnOffsetCommit: producer id -> group -> partition -> offset, until the producer's marker
        self.pending_txn_offsets: dict[int, dict[str, dict[tuple[str, int], OffsetAndMetadata]]] = {}
        self.loaded_partitions: set[int] = set()
        self._loading: dict[int, asyncio.Task] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    # -- which groups this broker coordinates ----------------------------------------------------

    def coordinator_error(self, group_id: str) -> ErrorCode | None:
        """NOT_COORDINATOR unless this broker leads the group's offsets partition and has loaded
        it; COORDINATOR_LOAD_IN_PROGRESS while it loads."""
        partition = self.store.partition_for(group_id)
        if partition in self.loaded_partitions:
            return None
        if partition in self._loading:
            return ErrorCode.coordinator_load_in_progress
        return ErrorCode.not_coordinator

    def _lock_for(self, group_id: str) -> asyncio.Lock:
        """Operations that write and wait for the write run one at a time per offsets partition
        (Kafka's coordinator does the same), so none sees another's state before it is stored."""
        partition = self.store.partition_for(group_id)
        lock = self._locks.get(partition)
        if lock is None:
            lock = self._locks[partition] = asyncio.Lock()
        return lock

    def on_leadership_change(self, partition: int, is_leader: bool, is_empty: bool = False) -> None:
        """The replica manager says this broker now leads (or no longer leads) an offsets partition."""
        if is_leader:
            self.begin_loading(partition, is_empty)
        else:
            self.unload_partition(partition)

    def begin_loading(self, partition: int, is_empty: bool = False) -> None:
        """Load a partition's groups: at once when its log is empty, else by replay in a task."""
        if partition in self.loaded_partitions or partition in self._loading:
            return
        if is_empty:
            self.loaded_partitions.add(partition)
            return
        self._loading[partition] = asyncio.get_running_loop().create_task(self._load_partition(partition))

    async def _load_partition(self, partition: int) -> None:
        task = asyncio.current_task()
        try:
            records = await asyncio.to_thread(self.store.read_partition, partition)
        except Exception:  # noqa: BLE001 - one unreadable partition must not stop the coordinator
            log.exception("Loading __consumer_offsets-%d failed; its groups stay unavailable", partition)
            if self._loading.get(partition) is task:
                del self._loading[partition]
            return
        if self._loading.get(partition) is not task:
            return  # unloaded meanwhile
        del self._loading[partition]
        loaded = self._apply_records(records)
        self.loaded_partitions.add(partition)
        self._start_timers(loaded)
        if loaded:
            log.info("Loaded %d groups from __consumer_offsets-%d", len(loaded), partition)

    async def wait_until_loaded(self) -> None:
        """Until every partition being loaded is loaded (start-up waits for this)."""
        while self._loading:
            await asyncio.gather(*self._loading.values(), return_exceptions=True)

    def unload_partition(self, partition: int) -> None:
        """This broker no longer leads the partition: drop its groups and offsets, cancel their
        timers, and answer parked JoinGroup/SyncGroup requests NOT_COORDINATOR."""
        task = self._loading.pop(partition, None)
        if task is not None:
            task.cancel()
        self.loaded_partitions.discard(partition)
        mine = lambda group_id: self.store.partition_for(group_id) == partition  # noqa: E731
        dropped = 0
        for group_id in [g for g in self.groups if mine(g)]:
            self._release_classic_group(self.groups.pop(group_id), ErrorCode.not_coordinator)
            dropped += 1
        for group_id in [g for g in self.consumer_groups if mine(g)]:
            for member in self.consumer_groups.pop(group_id).members.values():
                self._cancel_consumer_timers(member)
            dropped += 1
        for group_id in [g for g in self.offsets if mine(g)]:
            del self.offsets[group_id]
        for by_group in self.pending_txn_offsets.values():
            for group_id in [g for g in by_group if mine(g)]:
                del by_group[group_id]
        if dropped:
            log.info("Unloaded %d groups of __consumer_offsets-%d: this broker no longer leads it", dropped, partition)

    def _release_classic_group(self, group: ClassicGroup, error: ErrorCode) -> None:
        if group.rebalance_timer is not None:
            group.rebalance_timer.cancel()
        for timer in group.pending_members.values():
            if timer is not None:
                timer.cancel()
        for member in group.members.values():
            self._cancel_session_expiry(member)
            if member.awaiting_join:
                member.join_future.set_result(JoinResult(error, member.member_id))
            if member.awaiting_sync:
                member.sync_future.set_result(SyncResult(error))

    # -- start-up -----------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild every partition's groups and offsets at once (tools and tests; the broker loads
        partition by partition as it becomes their leader)."""
        for partition in range(self.store.partitions):
            self.loaded_partitions.add(partition)
        self._apply_records(list(self.store.replay()))

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
                    self._schedule_consumer_timers(consumer_group, consumer)

    # -- JoinGroup ----------------------------------------------------------------------------

    async def join_group(self, group_id: str, *args, **kwargs) -> JoinResult:
        """JoinGroup: decided under the partition's lock, then parked (lock released) until the
        generation forms."""
        async with self._lock_for(group_id):
            if self._consumer_group_in_use(group_id):
                return await self._join_consumer_group_as_classic(group_id, *args, **kwargs)
            outcome = self._join(group_id, *args, **kwargs)
        return await outcome if isinstance(outcome, asyncio.Future) else outcome

    def _join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
        supports_skip_assignment: bool = False,
    ) -> "JoinResult | asyncio.Future":
        error = self._check_group_id(group_id) or self.coordinator_error(group_id)
        if error is not None:
            return JoinResult(error, member_id)
        if not self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms:
            return JoinResult(ErrorCode.invalid_session_timeout, member_id)
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.unknown_member_id, member_id)
            group = self.groups[group_id] = ClassicGroup(group_id, state_timestamp_ms=self.clock.now_ms())
        if group.state == GroupState.DEAD:
            return JoinResult(ErrorCode.coordinator_not_available, member_id)
        if not group.supports_protocols(protocol_type, protocols):
            return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
        details = (client_id, client_host, session_timeout_ms, rebalance_timeout_ms, protocol_type, protocols)

        if not member_id:
            if len(group.members) + len(group.pending_members) >= self.config.max_size:
                return JoinResult(ErrorCode.group_max_size_reached, member_id)
            if group_instance_id:
                new_id = f"{group_instance_id}-{uuid.uuid4()}"
                old_id = group.static_members.get(group_instance_id)
                if old_id is not None and old_id in group.members:
                    return self._replace_static_member(
                        group, old_id, new_id, group_instance_id, details, supports_skip_assignment
                    )
                return self._add_member(group, new_id, group_instance_id, details)
            new_id = f"{client_id}-{uuid.uuid4()}"
            if require_known_member_id:
                group.pending_members[new_id] = self.clock.call_later(
                    session_timeout_ms, self._expire_pending_member, group, new_id
                )
                return JoinResult(ErrorCode.member_id_required, new_id)
            return self._add_member(group, new_id, None, details)

        if member_id in group.pending_members:
            timer = group.pending_members.pop(member_id)
            if timer is not None:
                timer.cancel()
            return self._add_member(group, member_id, group_instance_id, details)
        if self._is_fenced(group, member_id, group_instance_id):
            return JoinResult(ErrorCode.fenced_instance_id, member_id)
        member = group.members.get(member_id)
        if member is None:
            return JoinResult(ErrorCode.unknown_member_id, member_id)
        if group.state == GroupState.PREPARING_REBALANCE:
            return self._update_member(group, member, protocols, details)
        if group.state == GroupState.COMPLETING_REBALANCE:
            if member.matches(protocols):
                return self._join_result(group, member)  # it missed the join response: same answer again
            return self._update_member(group, member, protocols, details)
        if group.state == GroupState.STABLE:
            if member_id == group.leader_id or not member.matches(protocols):
                return self._update_member(group, member, protocols, details)
            return self._join_result(group, member)
        return JoinResult(ErrorCode.unknown_member_id, member_id)

    def _add_member(self, group: ClassicGroup, member_id: str, instance_id: str | None, details) -> asyncio.Future:
        client_id, client_host, session_timeout_ms, rebalance_timeout_ms, protocol_type, protocols = details
        member = Member(
            member_id, instance_id, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
            protocol_type, list(protocols),
        )
        member.join_future = asyncio.get_running_loop().create_future()
        if group.is_empty:
            group.protocol_type = protocol_type
        group.members[member_id] = member
        if instance_id:
            group.static_members[instance_id] = member_id
        if group.leader_id is None or group.leader_id not in group.members:
            group.leader_id = member_id
        self._rebalance_or_complete(group, f"{member_id} joined")
        return member.join_future

    def _update_member(self, group: ClassicGroup, member: Member, protocols, details) -> asyncio.Future:
        _client_id, _host, session_timeout_ms, rebalance_timeout_ms, _type, _protocols = details
        member.protocols = list(protocols)
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        if member.awaiting_join:
            member.join_future.set_result(JoinResult(ErrorCode.rebalance_in_progress, member.member_id))
        member.join_future = asyncio.get_running_loop().create_future()
        self._cancel_session_expiry(member)
        self._rebalance_or_complete(group, f"{member.member_id} rejoined")
        return member.join_future

    def _replace_static_member(
        self, group: ClassicGroup, old_id: str, new_id: str, instance_id: str, details, supports_skip_assignment: bool
    ) -> "JoinResult | asyncio.Future":
        """A static member restarted: it takes over its old member's place and assignment.

        No rebalance when nothing changed; a restarted leader gets the member list with
        skip_assignment (KIP-814, JoinGroup v9+) so it does not assign again, and older leaders
        trigger a rebalance, as in Kafka."""
        old = group.members.pop(old_id)
        self._cancel_session_expiry(old)
        self._fence(old)
        old.member_id = new_id
        group.members[new_id] = old
        group.static_members[instance_id] = new_id
        was_leader = group.leader_id == old_id
        if was_leader:
            group.leader_id = new_id
        _client_id, _host, session_timeout_ms, rebalance_timeout_ms, _type, protocols = details
        old.session_timeout_ms, old.rebalance_timeout_ms = session_timeout_ms, rebalance_timeout_ms
        if group.state == GroupState.STABLE and old.matches(list(protocols)) and (not was_leader or supports_skip_assignment):
            self._persist_group(group)
            self._schedule_session_expiry(group, old)
            result = self._join_result(group, old)
            result.skip_assignment = was_leader
            return result
        old.protocols = list(protocols)
        old.join_future = asyncio.get_running_loop().create_future()
        self._rebalance_or_complete(group, f"static member {instance_id} rejoined")
        return old.join_future

    def _rebalance_or_complete(self, group: ClassicGroup, reason: str) -> None:
        if group.state in (GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        else:
            self._maybe_complete_join(group)

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        if group.state == GroupState.COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = b""
                if member.awaiting_sync:
                    member.sync_future.set_result(SyncResult(ErrorCode.rebalance_in_progress))
        if group.rebalance_timer is not None:
            group.rebalance_timer.cancel()
        initial = group.state == GroupState.EMPTY
        group.transition_to(GroupState.PREPARING_REBALANCE, self.clock.now_ms())
        log.info("Preparing to rebalance group %s in generation %d (%s)", group.group_id, group.generation_id, reason)
        if initial and self.config.initial_rebalance_delay_ms > 0:
            delay_ms = min(self.config.initial_rebalance_delay_ms, group.max_rebalance_timeout_ms())
            remaining_ms = max(group.max_rebalance_timeout_ms() - delay_ms, 0)
            group.initial_delay_deadline = self.clock.monotonic() + delay_ms / 1000
            group.rebalance_timer = self.clock.call_later(
                delay_ms, self._initial_delay_expired, group, len(group.members), remaining_ms
            )
            return
        group.rebalance_timer = self.clock.call_later(
            group.max_rebalance_timeout_ms(), self._rebalance_timed_out, group
        )
        self._maybe_complete_join(group)

    def _initial_delay_expired(self, group: ClassicGroup, members_before: int, remaining_ms: int) -> None:
        """Kafka's InitialDelayedJoin: wait again while new members keep arriving."""
        if group.state != GroupState.PREPARING_REBALANCE:
            return
        if len(group.members) > members_before and remaining_ms > 0:
            delay_ms = min(self.config.initial_rebalance_delay_ms, remaining_ms)
            group.initial_delay_deadline = self.clock.monotonic() + delay_ms / 1000
            group.rebalance_timer = self.clock.call_later(
                delay_ms, self._initial_delay_expired, group, len(group.members), remaining_ms - delay_ms
            )
            return
        group.initial_delay_deadline = None
        self._complete_join(group)

    def _rebalance_timed_out(self, group: ClassicGroup) -> None:
        if group.state == GroupState.PREPARING_REBALANCE:
            self._complete_join(group)

    def _maybe_complete_join(self, group: ClassicGroup) -> None:
        if group.state != GroupState.PREPARING_REBALANCE or group.initial_delay_deadline is not None:
            return
        if group.pending_members:
            return
        if all(member.awaiting_join for member in group.members.values()):
            self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        if group.rebalance_timer is not None:
            group.rebalance_timer.cancel()
            group.rebalance_timer = None
        group.initial_delay_deadline = None
        for member in [m for m in group.members.values() if not m.awaiting_join]:
            log.info("Removing member %s from group %s: it did not rejoin in time", member.member_id, group.group_id)
            self._remove_member(group, member, rebalance=False)
        for member_id, timer in list(group.pending_members.items()):
            if timer is not None:
                timer.cancel()
        group.pending_members.clear()
        group.generation_id += 1
        now = self.clock.now_ms()
        if group.is_empty:
            group.protocol_name = None
            group.leader_id = None
            group.transition_to(GroupState.EMPTY, now)
            self._persist_group(group)
            log.info("Group %s is empty in generation %d", group.group_id, group.generation_id)
            return
        group.protocol_name = group.select_protocol()
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.transition_to(GroupState.COMPLETING_REBALANCE, now)
        log.info(
            "Group %s formed generation %d with %d members (protocol %s)",
            group.group_id, group.generation_id, len(group.members), group.protocol_name,
        )
        for member in group.members.values():
            member.join_future.set_result(self._join_result(group, member))
            self._schedule_session_expiry(group, member)

    def _join_result(self, group: ClassicGroup, member: Member) -> JoinResult:
        members = []
        if member.member_id == group.leader_id:
            members = [
                (m.member_id, m.group_instance_id, m.metadata_for(group.protocol_name)) for m in group.members.values()
            ]
        return JoinResult(
            ErrorCode.none,
            member.member_id,
            group.generation_id,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            members,
        )

    # -- SyncGroup, Heartbeat, LeaveGroup -------------------------------------------------------

    async def sync_group(self, group_id: str, *args, **kwargs) -> SyncResult:
        """SyncGroup: the leader's assignment is stored under the partition's lock; every member
        then waits (lock released) for it."""
        async with self._lock_for(group_id):
            if self._consumer_group_in_use(group_id):
                return self._sync_consumer_group_as_classic(group_id, *args, **kwargs)
            outcome = await self._sync(group_id, *args, **kwargs)
        return await outcome if isinstance(outcome, asyncio.Future) else outcome

    async def _sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> "SyncResult | asyncio.Future":
        group = self.groups.get(group_id)
        error = self.coordinator_error(group_id) or self._check_member(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return SyncResult(error)
        if (protocol_type and protocol_type != group.protocol_type) or (
            protocol_name and protocol_name != group.protocol_name
        ):
            return SyncResult(ErrorCode.inconsistent_group_protocol)
        member = group.members[member_id]
        if group.state == GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.rebalance_in_progress)
        self._schedule_session_expiry(group, member)
        if group.state == GroupState.STABLE:
            return SyncResult(ErrorCode.none, group.protocol_type, group.protocol_name, member.assignment)
        # CompletingRebalance: wait for the leader's assignment.
        if member.awaiting_sync:
            member.sync_future.set_result(SyncResult(ErrorCode.rebalance_in_progress))
        member.sync_future = asyncio.get_running_loop().create_future()
        if member_id == group.leader_id:
            generation = group.generation_id
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            try:
                await self.store.committed(self._persist_group(group))
            except KafkaError as failure:
                code = _store_error(failure)
                for m in group.members.values():
                    if m.awaiting_sync:
                        m.sync_future.set_result(SyncResult(code))
                if self.groups.get(group_id) is group and group.state == GroupState.COMPLETING_REBALANCE:
                    self._prepare_rebalance(group, "group metadata could not be stored")
                return member.sync_future
            if self.groups.get(group_id) is not group or group.generation_id != generation or group.state != GroupState.COMPLETING_REBALANCE:
                return member.sync_future  # the group moved on (or was unloaded) while the write replicated
            group.transition_to(GroupState.STABLE, self.clock.now_ms())
            for m in group.members.values():
                if m.awaiting_sync:
                    m.sync_future.set_result(
                        SyncResult(ErrorCode.none, group.protocol_type, group.protocol_name, m.assignment)
                    )
        return member.sync_future

    def heartbeat(self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None) -> ErrorCode:
        if self._consumer_group_in_use(group_id) and self.coordinator_error(group_id) is None:
            return self._heartbeat_consumer_group_as_classic(group_id, generation_id, member_id, group_instance_id)
        group = self.groups.get(group_id)
        error = self.coordinator_error(group_id) or self._check_member(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return error
        member = group.members[member_id]
        if not member.awaiting_join:
            self._schedule_session_expiry(group, member)
        if group.state == GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave_group(self, group_id: str, leaving: list[tuple[str, str | None]]) -> list[ErrorCode]:
        """One error per (member id, group instance id) that asked to leave."""
        error = self.coordinator_error(group_id)
        if error is not None:
            return [error for _ in leaving]
        if self._consumer_group_in_use(group_id):
            return self._leave_consumer_group_as_classic(group_id, leaving)
        group = self.groups.get(group_id)
        if group is None or group.state == GroupState.DEAD:
            return [ErrorCode.unknown_member_id for _ in leaving]
        errors = []
        removed = []
        for member_id, instance_id in leaving:
            if instance_id:
                mapped = group.static_members.get(instance_id)
                if mapped is None:
                    errors.append(ErrorCode.unknown_member_id)
                    continue
                if member_id and member_id != mapped:
                    errors.append(ErrorCode.fenced_instance_id)
                    continue
                member_id = mapped
            if member_id in group.pending_members:
                timer = group.pending_members.pop(member_id)
                if timer is not None:
                    timer.cancel()
                errors.append(ErrorCode.none)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(ErrorCode.unknown_member_id)
                continue
            self._remove_member(group, member, rebalance=False)
            removed.append(member_id)
            errors.append(ErrorCode.none)
        if removed:
            log.info("Members %s left group %s", ", ".join(removed), group_id)
            self._after_membership_change(group, f"{len(removed)} member(s) left")
        elif group.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(group)
        return errors

    # -- members' lifecycle -------------------------------------------------------------------

    def _check_group_id(self, group_id: str | None) -> ErrorCode | None:
        if not group_id:
            return ErrorCode.invalid_group_id
        if len(group_id) > MAX_GROUP_ID_LENGTH:
            return ErrorCode.invalid_group_id
        return None

    def _check_member(self, group, member_id: str, instance_id: str | None, generation_id: int) -> ErrorCode | None:
        if group is None or group.state in (GroupState.DEAD, GroupState.EMPTY):
            return ErrorCode.unknown_member_id
        if self._is_fenced(group, member_id, instance_id):
            return ErrorCode.fenced_instance_id
        if member_id not in group.members:
            return ErrorCode.unknown_member_id
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        return None

    @staticmethod
    def _is_fenced(group: ClassicGroup, member_id: str, instance_id: str | None) -> bool:
        if not instance_id:
            return False
        mapped = group.static_members.get(instance_id)
        return mapped is not None and mapped != member_id

    def _schedule_session_expiry(self, group: ClassicGroup, member: Member) -> None:
        self._cancel_session_expiry(member)
        member.session_timer = self.clock.call_later(
            member.session_timeout_ms, self._session_expired, group, member
        )

    @staticmethod
    def _cancel_session_expiry(member: Member) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
            member.session_timer = None

    def _session_expired(self, group: ClassicGroup, member: Member) -> None:
        if group.members.get(member.member_id) is not member or member.awaiting_join:
            return
        log.info(
            "Member %s of group %s missed its session timeout of %d ms",
            member.member_id, group.group_id, member.session_timeout_ms,
        )
        self._remove_member(group, member, rebalance=True)

    def _expire_pending_member(self, group: ClassicGroup, member_id: str) -> None:
        """A member id handed out with MEMBER_ID_REQUIRED that never came back."""
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            self._maybe_complete_join(group)

    @staticmethod
    def _fence(member: Member) -> None:
        if member.awaiting_join:
            member.join_future.set_result(JoinResult(ErrorCode.fenced_instance_id, member.member_id))
        if member.awaiting_sync:
            member.sync_future.set_result(SyncResult(ErrorCode.fenced_instance_id))

    def _remove_member(self, group: ClassicGroup, member: Member, *, rebalance: bool) -> None:
        self._cancel_session_expiry(member)
        group.members.pop(member.member_id, None)
        if member.group_instance_id and group.static_members.get(member.group_instance_id) == member.member_id:
            del group.static_members[member.group_instance_id]
        if member.awaiting_join:
            member.join_future.set_result(JoinResult(ErrorCode.unknown_member_id, member.member_id))
        if member.awaiting_sync:
            member.sync_future.set_result(SyncResult(ErrorCode.unknown_member_id))
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)
        if rebalance:
            self._after_membership_change(group, f"member {member.member_id} left")

    def _after_membership_change(self, group: ClassicGroup, reason: str) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        elif group.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(group)

    def _persist_group(self, group: ClassicGroup):
        """Append the group's metadata record; returns the write for `store.committed`."""
        return self.store.write(group.group_id, [(group_key(group.group_id), group_value(group.snapshot()))])

    # -- offsets --------------------------------------------------------------------------------

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
            code = _store_error(failure)
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
            code = _TXN_STORE_ERRORS.get(failure.code) or _store_error(failure)
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
            return _store_error(failure), []
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

    # -- admin ----------------------------------------------------------------------------------

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
                return _store_error(failure)
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
            return _store_error(failure)
        if self.groups.get(group_id) is not group:
            return ErrorCode.not_coordinator  # unloaded while the write replicated
        group.transition_to(GroupState.DEAD, self.clock.now_ms())
        del self.groups[group_id]
        self.offsets.pop(group_id, None)
        log.info("Deleted group %s", group_id)
        return ErrorCode.none

    # -- consumer protocol (KIP-848) -------------------------------------------------------------

    def _consumer_group_in_use(self, group_id: str) -> bool:
        group = self.consumer_groups.get(group_id)
        return group is not None and bool(group.members)

    @staticmethod
    def _check_consumer_member(group: ConsumerGroup, member_id: str, member_epoch: int) -> ErrorCode | None:
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if member_epoch > member.member_epoch:
            return ErrorCode.fenced_member_epoch
        if member_epoch < member.member_epoch:
            return ErrorCode.stale_member_epoch
        return None

    async def consumer_group_heartbeat(self, **request) -> HeartbeatResult:
        """Handle one heartbeat, write what changed to `__consumer_offsets` and answer once the
        write is stored; if it cannot be, the group is put back as it was and the member gets
        the store's error (it retries)."""
        group_id = request["group_id"]
        error = self.coordinator_error(group_id) if group_id else None
        if error is not None:
            return HeartbeatResult(error, None, request["member_id"] or None, request["member_epoch"])
        async with self._lock_for(group_id):
            return await self._consumer_heartbeat_stored(group_id, request)

    async def _consumer_heartbeat_stored(self, group_id: str, request: dict) -> HeartbeatResult:
        existing = self.consumer_groups.get(group_id)
        saved = (existing.copy() if existing is not None else None, self.groups.get(group_id))
        before = _consumer_state(existing) if existing is not None else None
        result = self._consumer_group_heartbeat(**request)
        group = self.consumer_groups.get(group_id)
        if group is None:
            return result
        upgraded = saved[1] is not None and group_id not in self.groups
        try:
            await self.store.committed(self._persist_consumer_changes(
                group, before, [(group_key(group_id), None)] if upgraded else []))
        except KafkaError as failure:
            log.warning("Could not store the state of consumer group %s (%s); it stays as it was", group_id, failure)
            self._restore_consumer_group(group_id, *saved)
            return HeartbeatResult(_store_error(failure), str(failure), request["member_id"] or None, request["member_epoch"])
        await self._maybe_downgrade(group)
        return result

    async def _maybe_downgrade(self, group: ConsumerGroup) -> None:
        """The last consumer-protocol member left a group of classic members: it becomes a classic
        group again and rebalances (stored first; if the write fails the group stays as it is)."""
        if (self.consumer_groups.get(group.group_id) is not group or not only_classic_members(group)
                or not downgrade_allowed(self.config.migration_policy)):
            return
        before = _consumer_state(group)
        classic = to_classic_group(group, self.clock.now_ms())
        records = [(key, None) for key, _ in self._consumer_group_records(group, before)]
        records.append((group_key(group.group_id), group_value(classic.snapshot())))
        try:
            await self.store.committed(self.store.write(group.group_id, records))
        except KafkaError as failure:
            log.warning("Could not store the downgrade of group %s to the classic protocol: %s", group.group_id, failure)
            return
        if self.consumer_groups.get(group.group_id) is not group:
            return
        for member in group.members.values():
            self._cancel_consumer_timers(member)
        del self.consumer_groups[group.group_id]
        self.groups[group.group_id] = classic
        for member in classic.members.values():
            self._schedule_session_expiry(classic, member)
        log.info("Downgraded group %s to the classic protocol online: %d members at generation %d",
                 group.group_id, len(classic.members), classic.generation_id)
        self._prepare_rebalance(classic, "downgraded from the consumer protocol")

    def _consumer_group_records(self, group: ConsumerGroup, state: dict) -> list[tuple[bytes, bytes | None]]:
        """The keys of every record a consumer group has in `__consumer_offsets` (to tombstone them)."""
        gid = group.group_id
        keys = [consumer_key(CONSUMER_GROUP_METADATA, gid), consumer_key(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, gid)]
        for member_id in state["members"]:
            for record_type in (CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
                                CONSUMER_GROUP_MEMBER_METADATA):
                keys.append(consumer_key(record_type, gid, member_id))
        return [(key, None) for key in keys]

    def _restore_consumer_group(self, group_id: str, saved: ConsumerGroup | None, classic: ClassicGroup | None) -> None:
        current = self.consumer_groups.pop(group_id, None)
        if current is not None:
            for member in current.members.values():
                self._cancel_consumer_timers(member)
        if saved is not None:
            self.consumer_groups[group_id] = saved
            for member in saved.members.values():
                self._schedule_consumer_timers(saved, member)
        if classic is not None:
            self.groups[group_id] = classic

    def _persist_consumer_changes(self, group: ConsumerGroup, before: dict | None, extra=()):
        """Records for every part of a consumer group that changed since `before` (Kafka's record
        types), after `extra` records (the tombstone of the classic group it replaced)."""
        after = _consumer_state(group)
        before = before or {"epoch": None, "target_epoch": None, "members": {}, "targets": {}, "current": {}}
        gid = group.group_id
        records: list[tuple[bytes, bytes | None]] = list(extra)
        if after["epoch"] != before["epoch"]:
            records.append((consumer_key(CONSUMER_GROUP_METADATA, gid), consumer_group_epoch_value(group.group_epoch)))
        for member_id in before["members"].keys() - after["members"].keys():
            for record_type in (CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, CONSUMER_GROUP_MEMBER_METADATA):
                records.append((consumer_key(record_type, gid, member_id), None))
        for member_id, member in group.members.items():
            if after["members"][member_id] != before["members"].get(member_id):
                metadata = ConsumerMemberMetadata(
                    member.instance_id, member.rack_id, member.client_id, member.client_host,
                    list(member.subscribed_topics), member.rebalance_timeout_ms, member.server_assignor,
                    member.classic,
                )
                records.append((consumer_key(CONSUMER_GROUP_MEMBER_METADATA, gid, member_id), consumer_member_metadata_value(metadata)))
            if after["targets"].get(member_id) != before["targets"].get(member_id):
                target = self._by_id(group.target.get(member_id, {}))
                records.append((consumer_key(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, gid, member_id), consumer_target_assignment_value(target)))
        if after["target_epoch"] != before["target_epoch"]:
            records.append((consumer_key(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, gid), consumer_group_epoch_value(group.assignment_epoch)))
        for member_id, member in group.members.items():
            if after["current"][member_id] != before["current"].get(member_id):
                current = ConsumerMemberAssignment(
                    member.member_epoch, member.previous_epoch, _member_state(group, member),
                    self._by_id(member.assigned), self._by_id(member.pending_revocation),
                )
                records.append((consumer_key(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, gid, member_id), consumer_current_assignment_value(current)))
        return self.store.write(gid, records)

    def _consumer_group_heartbeat(
        self,
        *,
        group_id: str,
        member_id: str,
        member_epoch: int,
        instance_id: str | None,
        rack_id: str | None,
        rebalance_timeout_ms: int,
        subscribed_topic_names: list[str] | None,
        server_assignor: str | None,
        owned: Assignment | None,
        client_id: str,
        client_host: str,
        client_chooses_member_id: bool,
    ) -> HeartbeatResult:
        def invalid(message: str) -> HeartbeatResult:
            return HeartbeatResult(ErrorCode.invalid_request, message, member_id or None, member_epoch)

        if not group_id:
            return invalid("GroupId can't be empty.")
        if member_epoch == JOIN_EPOCH:
            if rebalance_timeout_ms < 0:
                return invalid("RebalanceTimeoutMs must be provided in first request.")
            if subscribed_topic_names is None:
                return invalid("SubscribedTopicNames must be set in first request.")
            if owned:
                return invalid("TopicPartitions must be empty when (re-)joining.")
            if client_chooses_member_id and not member_id:
                return invalid("MemberId can't be empty.")
        elif not member_id:
            return invalid("MemberId can't be empty.")
        elif member_epoch < STATIC_LEAVE_EPOCH:
            return invalid(f"MemberEpoch {member_epoch} is not valid.")
        if server_assignor is not None and server_assignor not in self.config.consumer_assignors:
            return HeartbeatResult(
                ErrorCode.unsupported_assignor,
                f"assignor {server_assignor!r} is not one of {', '.join(self.config.consumer_assignors)}",
                member_id or None,
                member_epoch,
            )
        classic = self.groups.get(group_id)
        if classic is not None and not classic.is_empty:
            upgraded = None
            if member_epoch == JOIN_EPOCH and upgrade_allowed(self.config.migration_policy):
                upgraded = to_consumer_group(classic, self.config.consumer_assignors[0])
            if upgraded is None:
                return HeartbeatResult(
                    ErrorCode.group_id_not_found,
                    f"group {group_id} is a classic group with members and cannot be upgraded to the consumer "
                    f"protocol (group.consumer.migration.policy={self.config.migration_policy}, protocol type "
                    f"{classic.protocol_type!r})",
                )
            self._release_classic_group(classic, ErrorCode.rebalance_in_progress)
            self.consumer_groups[group_id] = upgraded
            for hosted in upgraded.members.values():
                self._schedule_consumer_timers(upgraded, hosted)
            log.info("Upgraded group %s to the consumer protocol online: %d classic members at epoch %d",
                     group_id, len(upgraded.members), upgraded.group_epoch)
        if classic is not None:
            del self.groups[group_id]  # a classic group becomes a consumer group; offsets stay
        group = self.consumer_groups.get(group_id)
        if group is None:
            group = self.consumer_groups[group_id] = ConsumerGroup(group_id, assignor_name=self.config.consumer_assignors[0])

        if member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            member = group.members.get(member_id)
            if member is None:
                return HeartbeatResult(ErrorCode.unknown_member_id, None, member_id, member_epoch)
            self._remove_consumer_member(group, member, "left the group")
            return HeartbeatResult(ErrorCode.none, None, member_id, member_epoch, self._heartbeat_interval_ms(group.group_id))

        if member_epoch == JOIN_EPOCH:
            member_id = member_id or new_member_id()
            member = group.members.get(member_id)
            previous = None
            if instance_id:
                previous = next(
                    (m for m in group.members.values() if m.instance_id == instance_id and m.member_id != member_id), None
                )
            if previous is not None:
                # A static member restarted: it takes over its previous incarnation's partitions.
                self._cancel_consumer_timers(previous)
                del group.members[previous.member_id]
                member = ConsumerMember(
                    member_id, instance_id, rack_id, client_id, client_host, rebalance_timeout_ms,
                    sorted(subscribed_topic_names), server_assignor,
                    member_epoch=previous.member_epoch, assigned=previous.assigned,
                    pending_revocation=previous.pending_revocation,
                )
                group.members[member_id] = member
                group.target[member_id] = group.target.pop(previous.member_id, {})
            elif member is None:
                if len(group.members) >= self.config.max_size:
                    return HeartbeatResult(ErrorCode.group_max_size_reached, None, member_id, member_epoch)
                member = ConsumerMember(
                    member_id, instance_id, rack_id, client_id, client_host, rebalance_timeout_ms,
                    sorted(subscribed_topic_names), server_assignor,
                )
                group.members[member_id] = member
                group.group_epoch += 1
                log.info("Member %s joined consumer group %s (epoch %d)", member_id, group_id, group.group_epoch)
            else:
                # The same member joining again starts over: it owns nothing any more.
                member.assigned, member.pending_revocation, member.member_epoch = {}, {}, 0
                group.group_epoch += 1
            member.last_sent = None
        else:
            member = group.members.get(member_id)
            if member is None:
                return HeartbeatResult(ErrorCode.unknown_member_id, f"member {member_id} is not in group {group_id}", member_id, member_epoch)
            if member_epoch != member.member_epoch and not (
                member_epoch == member.previous_epoch and owned is not None and not _owns_outside(owned, member.assigned)
            ):
                return HeartbeatResult(
                    ErrorCode.fenced_member_epoch,
                    f"member epoch {member_epoch} is not the current {member.member_epoch}",
                    member_id,
                    member_epoch,
                )

        if subscribed_topic_names is not None and sorted(subscribed_topic_names) != member.subscribed_topics:
            member.subscribed_topics = sorted(subscribed_topic_names)
            group.group_epoch += 1
        if server_assignor is not None and server_assignor != member.server_assignor:
            member.server_assignor = server_assignor
            group.group_epoch += 1
        if rebalance_timeout_ms >= 0:
            member.rebalance_timeout_ms = rebalance_timeout_ms
        counts = self.partition_counts(group.subscribed_topics())
        if counts != group.partition_counts and group.assignment_epoch == group.group_epoch:
            group.group_epoch += 1  # a subscribed topic appeared or grew: assign again
        if group.assignment_epoch < group.group_epoch:
            group.compute_target(counts, self.config.consumer_assignors[0])
        group.reconcile(member, owned)
        self._schedule_consumer_timers(group, member)

        assignment = None
        if member.assigned != member.last_sent:
            assignment = {t: set(p) for t, p in member.assigned.items()}
            member.last_sent = assignment
        return HeartbeatResult(
            ErrorCode.none, None, member.member_id, member.member_epoch, self._heartbeat_interval_ms(group.group_id), assignment
        )

    # -- classic members hosted by a consumer group (group_migration.py) ---------------------------

    async def _join_consumer_group_as_classic(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
        supports_skip_assignment: bool = False,
    ) -> JoinResult:
        """JoinGroup of a classic member in a consumer group: the server-side assignor decides, the
        member is reconciled now, and SyncGroup hands it the result. Stored before answering."""
        error = self._check_group_id(group_id) or self.coordinator_error(group_id)
        if error is not None:
            return JoinResult(error, member_id)
        if not self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms:
            return JoinResult(ErrorCode.invalid_session_timeout, member_id)
        group = self.consumer_groups[group_id]
        subscribed = subscription_of(protocols) if protocol_type == "consumer" else None
        if subscribed is None:
            return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
        topics, owned = subscribed
        if not member_id:
            member_id = new_member_id()
            if require_known_member_id and not group_instance_id:
                return JoinResult(ErrorCode.member_id_required, member_id)
        saved, before = group.copy(), _consumer_state(group)
        member = group.members.get(member_id)
        if member is None and group_instance_id:
            previous = next((m for m in group.members.values() if m.instance_id == group_instance_id), None)
            if previous is not None:  # a static member restarted: it takes its predecessor's place
                self._cancel_consumer_timers(previous)
                del group.members[previous.member_id]
                member = ConsumerMember(
                    member_id, group_instance_id, None, client_id, client_host, rebalance_timeout_ms,
                    list(previous.subscribed_topics), None, member_epoch=previous.member_epoch,
                    assigned=previous.assigned, pending_revocation=previous.pending_revocation,
                )
                group.members[member_id] = member
                group.target[member_id] = group.target.pop(previous.member_id, {})
        if member is None:
            if len(group.members) >= self.config.max_size:
                return JoinResult(ErrorCode.group_max_size_reached, member_id)
            member = ConsumerMember(member_id, group_instance_id, None, client_id, client_host, rebalance_timeout_ms,
                                    topics, None)
            group.members[member_id] = member
            group.group_epoch += 1
            log.info("Classic member %s joined consumer group %s (epoch %d)", member_id, group_id, group.group_epoch)
        if member.subscribed_topics != topics:
            member.subscribed_topics = topics
            group.group_epoch += 1
        member.classic = ClassicMemberMetadata(session_timeout_ms, tuple(protocols))
        member.rebalance_timeout_ms, member.client_id, member.client_host = rebalance_timeout_ms, client_id, client_host
        counts = self.partition_counts(group.subscribed_topics())
        if counts != group.partition_counts and group.assignment_epoch == group.group_epoch:
            group.group_epoch += 1
        if group.assignment_epoch < group.group_epoch:
            group.compute_target(counts, self.config.consumer_assignors[0])
        for _ in range(3):  # revoke what it must (per what it says it owns), then take what is free
            state = (_frozen(member.assigned), _frozen(member.pending_revocation), member.member_epoch)
            group.reconcile(member, owned)
            if state == (_frozen(member.assigned), _frozen(member.pending_revocation), member.member_epoch):
                break
        member.last_sent = None
        self._schedule_consumer_timers(group, member)
        try:
            await self.store.committed(self._persist_consumer_changes(group, before))
        except KafkaError as failure:
            self._restore_consumer_group(group_id, saved, None)
            return JoinResult(_store_error(failure), member_id)
        return JoinResult(ErrorCode.none, member_id, member.member_epoch, "consumer", protocols[0][0], "", [])

    def _hosted_classic_member(self, group: ConsumerGroup, member_id: str, instance_id: str | None,
                               generation_id: int) -> tuple[ConsumerMember | None, ErrorCode | None]:
        member = group.members.get(member_id)
        if member is None or member.classic is None:
            return None, ErrorCode.unknown_member_id
        if instance_id and member.instance_id != instance_id:
            return None, ErrorCode.fenced_instance_id
        if generation_id != member.member_epoch:
            return None, ErrorCode.illegal_generation
        return member, None

    def _sync_consumer_group_as_classic(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None,
        protocol_type: str | None, protocol_name: str | None, assignments: dict[str, bytes],
    ) -> SyncResult:
        """SyncGroup of a hosted classic member: its reconciled assignment (what it sent is ignored)."""
        error = self.coordinator_error(group_id)
        if error is not None:
            return SyncResult(error)
        group = self.consumer_groups[group_id]
        member, error = self._hosted_classic_member(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return SyncResult(error)
        name = member.classic.protocols[0][0]
        if (protocol_type and protocol_type != "consumer") or (protocol_name and protocol_name != name):
            return SyncResult(ErrorCode.inconsistent_group_protocol)
        self._schedule_consumer_timers(group, member)
        return SyncResult(ErrorCode.none, "consumer", name, assignment_bytes(member.assigned))

    def _heartbeat_consumer_group_as_classic(self, group_id: str, generation_id: int, member_id: str,
                                             group_instance_id: str | None) -> ErrorCode:
        """Heartbeat of a hosted classic member: REBALANCE_IN_PROGRESS when it must rejoin to get a
        new assignment."""
        group = self.consumer_groups[group_id]
        member, error = self._hosted_classic_member(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return error
        self._schedule_consumer_timers(group, member)
        return ErrorCode.rebalance_in_progress if needs_rejoin(group, member) else ErrorCode.none

    def _leave_consumer_group_as_classic(self, group_id: str, leaving: list[tuple[str, str | None]]) -> list[ErrorCode]:
        """LeaveGroup of hosted classic members: each is removed (and stored) as if it had expired."""
        group = self.consumer_groups[group_id]
        errors = []
        for member_id, instance_id in leaving:
            member = group.members.get(member_id) if member_id else None
            if member is None and instance_id:
                member = next((m for m in group.members.values() if m.instance_id == instance_id), None)
            if member is None:
                errors.append(ErrorCode.unknown_member_id)
                continue
            if instance_id and member.instance_id != instance_id:
                errors.append(ErrorCode.fenced_instance_id)
                continue
            asyncio.get_running_loop().create_task(self._expire_consumer_member(group, member, "left the group"))
            errors.append(ErrorCode.none)
        return errors

    def _session_timeout_ms(self, group_id: str) -> int:
        """consumer.session.timeout.ms of this group (its group config, else the broker's)."""
        if self._group_setting is None:
            return self.config.consumer_session_timeout_ms
        return self._group_setting(group_id, "consumer.session.timeout.ms")

    def _heartbeat_interval_ms(self, group_id: str) -> int:
        if self._group_setting is None:
            return self.config.consumer_heartbeat_interval_ms
        return self._group_setting(group_id, "consumer.heartbeat.interval.ms")

    def _schedule_consumer_timers(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
        session_timeout_ms = member.classic.session_timeout_ms if member.classic else self._session_timeout_ms(group.group_id)
        member.session_timer = self.clock.call_later(
            session_timeout_ms, self._consumer_member_expired, group, member, "missed its session timeout",
        )
        if member.pending_revocation and member.revocation_timer is None:
            member.revocation_timer = self.clock.call_later(
                max(member.rebalance_timeout_ms, 1),
                self._consumer_member_expired, group, member, "did not revoke its partitions within the rebalance timeout",
            )

    @staticmethod
    def _cancel_consumer_timers(member: ConsumerMember) -> None:
        for timer in (member.session_timer, member.revocation_timer):
            if timer is not None:
                timer.cancel()
        member.session_timer = member.revocation_timer = None

    def _consumer_member_expired(self, group: ConsumerGroup, member: ConsumerMember, reason: str) -> None:
        if group.members.get(member.member_id) is member:
            asyncio.get_running_loop().create_task(self._expire_consumer_member(group, member, reason))

    async def _expire_consumer_member(self, group: ConsumerGroup, member: ConsumerMember, reason: str) -> None:
        """A timer fired: remove the member and store it, as a heartbeat would (rolled back if the
        write fails; the member is then expired again at its next timeout)."""
        async with self._lock_for(group.group_id):
            if self.consumer_groups.get(group.group_id) is not group or group.members.get(member.member_id) is not member:
                return
            saved = group.copy()
            before = _consumer_state(group)
            self._remove_consumer_member(group, member, reason)
            try:
                await self.store.committed(self._persist_consumer_changes(group, before))
            except KafkaError as failure:
                log.warning("Could not store the expiry of %s in consumer group %s: %s", member.member_id, group.group_id, failure)
                self._restore_consumer_group(group.group_id, saved, None)
                return
            await self._maybe_downgrade(group)

    def _remove_consumer_member(self, group: ConsumerGroup, member: ConsumerMember, reason: str) -> None:
        self._cancel_consumer_timers(member)
        del group.members[member.member_id]
        group.target.pop(member.member_id, None)
        group.group_epoch += 1
        log.info("Member %s of consumer group %s %s (epoch %d)", member.member_id, group.group_id, reason, group.group_epoch)

    def describe_consumer_group(self, group_id: str) -> ConsumerGroup | None:
        return self.consumer_groups.get(group_id)

    def shutdown(self) -> None:
        """Cancel timers and release parked JoinGroup/SyncGroup requests."""
        for task in self._loading.values():
            task.cancel()
        for group in self.groups.values():
            self._release_classic_group(group, ErrorCode.coordinator_not_available)
        for consumer_group in self.consumer_groups.values():
            for consumer in consumer_group.members.values():
                self._cancel_consumer_timers(consumer)


def _owns_outside(owned: Assignment, allowed: Assignment) -> bool:
    return any(parts - allowed.get(topic, set()) for topic, parts in owned.items())


def _frozen(assignment: Assignment) -> frozenset:
    return frozenset((topic, frozenset(parts)) for topic, parts in assignment.items() if parts)


def _consumer_state(group: ConsumerGroup) -> dict:
    """What of a consumer group is persisted, in comparable form (to write only what changed)."""
    return {
        "epoch": group.group_epoch,
        "target_epoch": group.assignment_epoch,
        "members": {
            m.member_id: (m.instance_id, m.rack_id, m.client_id, m.client_host, tuple(m.subscribed_topics),
                          m.rebalance_timeout_ms, m.server_assignor, m.classic)
            for m in group.members.values()
        },
        "targets": {member_id: _frozen(target) for member_id, target in group.target.items()},
        "current": {
            m.member_id: (m.member_epoch, m.previous_epoch, _frozen(m.assigned), _frozen(m.pending_revocation))
            for m in group.members.values()
        },
    }


def _member_state(group: ConsumerGroup, member: ConsumerMember) -> int:
    """Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions."""
    if member.pending_revocation:
        return 1
    if member.assigned != group.target.get(member.member_id, {}):
        return 2
    return 0
