"""Classic group membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) as Kafka runs it.

Kafka's rules: a member joins (KIP-394: a dynamic member first gets its id with
MEMBER_ID_REQUIRED), the group waits in PreparingRebalance for every member to rejoin (an empty
group first waits `group.initial.rebalance.delay.ms` for more), the first member to join leads,
the leader's SyncGroup carries everyone's assignment, members heartbeat within their session
timeout. Static members (KIP-345) keep their assignment across restarts within the session
timeout, and an older instance is fenced (FENCED_INSTANCE_ID). The broker never looks inside
assignments: any client-side assignor works. The moves between states are the table in
group_state.py.

What a client is told depends on a stored write (the leader's assignment, a static member's
replacement) is answered only once the write is committed, and a failed write leaves the group as
it was. A part of GroupCoordinator (its state and helpers are the coordinator's); runs on the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from odradek.coordinator.group import ClassicGroup, Member
from odradek.coordinator.group_records import group_key, group_value
from odradek.coordinator.group_state import GroupState
from odradek.coordinator.state_log import store_error
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

MAX_GROUP_ID_LENGTH = 255  # Kafka has no limit; a bound keeps records and logs sane

# Errors from the log that OffsetCommit and SyncGroup clients understand, beyond the shared ones.
GROUP_STORE_ERRORS = {
    ErrorCode.message_too_large: ErrorCode.invalid_commit_offset_size,
    ErrorCode.record_list_too_large: ErrorCode.invalid_commit_offset_size,
}


def group_store_error(failure: KafkaError) -> ErrorCode:
    return store_error(failure, GROUP_STORE_ERRORS)


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


class ClassicGroupOps:
    """The classic protocol's operations, mixed into GroupCoordinator."""

    async def join_group(self, group_id: str, *args, **kwargs) -> JoinResult:
        """JoinGroup: decided under the partition's lock, then parked (lock released) until the
        generation forms."""
        async with self._lock_for(group_id):
            if self._consumer_group_in_use(group_id):
                return await self._join_consumer_group_as_classic(group_id, *args, **kwargs)
            outcome = await self._join(group_id, *args, **kwargs)
        return await outcome if isinstance(outcome, asyncio.Future) else outcome

    async def _join(
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
                    return await self._replace_static_member(
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

    async def _replace_static_member(
        self, group: ClassicGroup, old_id: str, new_id: str, instance_id: str, details, supports_skip_assignment: bool
    ) -> "JoinResult | asyncio.Future":
        """A static member restarted: it takes over its old member's place and assignment.

        No rebalance when nothing changed: the replacement is stored first (if the write fails the
        old member stays, and the new one gets the store's error), then the old member is fenced. A
        restarted leader gets the member list with skip_assignment (KIP-814, JoinGroup v9+) so it
        does not assign again, and older leaders trigger a rebalance, as in Kafka."""
        _client_id, _host, session_timeout_ms, rebalance_timeout_ms, _type, protocols = details
        old = group.members[old_id]
        was_leader = group.leader_id == old_id
        quiet = group.state == GroupState.STABLE and old.matches(list(protocols)) and (
            not was_leader or supports_skip_assignment)
        if quiet:
            snapshot = group.snapshot()
            for member in snapshot.members:
                if member.member_id == old_id:
                    member.member_id = new_id
                    member.session_timeout_ms, member.rebalance_timeout_ms = session_timeout_ms, rebalance_timeout_ms
            if was_leader:
                snapshot.leader_id = new_id
            try:
                await self.store.write_committed(group.group_id, [(group_key(group.group_id), group_value(snapshot))])
            except KafkaError as failure:
                return JoinResult(group_store_error(failure), "")
            if (self.groups.get(group.group_id) is not group or group.members.get(old_id) is not old
                    or group.state != GroupState.STABLE):
                return JoinResult(ErrorCode.rebalance_in_progress, "")  # the group moved on meanwhile: join again
        del group.members[old_id]
        self._cancel_session_expiry(old)
        self._fence(old)
        old.member_id = new_id
        group.members[new_id] = old
        group.static_members[instance_id] = new_id
        if was_leader:
            group.leader_id = new_id
        old.session_timeout_ms, old.rebalance_timeout_ms = session_timeout_ms, rebalance_timeout_ms
        if quiet:
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
            try:
                self._persist_group(group)  # as in Kafka, not awaited: no client waits on it
            except KafkaError as failure:
                log.warning("Could not store that group %s is empty: %s", group.group_id, failure)
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
            snapshot = group.snapshot()
            for m in snapshot.members:
                m.assignment = assignments.get(m.member_id, b"")
            try:
                await self.store.write_committed(group_id, [(group_key(group_id), group_value(snapshot))])
            except KafkaError as failure:
                code = group_store_error(failure)
                for m in group.members.values():
                    if m.awaiting_sync:
                        m.sync_future.set_result(SyncResult(code))
                if self.groups.get(group_id) is group and group.state == GroupState.COMPLETING_REBALANCE:
                    self._prepare_rebalance(group, "group metadata could not be stored")
                return member.sync_future
            if self.groups.get(group_id) is not group or group.generation_id != generation or group.state != GroupState.COMPLETING_REBALANCE:
                return member.sync_future  # the group moved on (or was unloaded) while the write replicated
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
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
