"""Consumer-protocol groups (KIP-848): ConsumerGroupHeartbeat, and classic members hosted by a
consumer group during an online migration (group_migration.py).

Every operation works on a copy of the group: it changes the copy and answers; the records of what
changed (Kafka's record types 3 and 5-8) are written to `__consumer_offsets`; only once they are
committed does the copy replace the group in memory and do the members' timers move. A write that
fails leaves memory as it was and answers the store's error, which the client retries. Timers are
kept per member id apart from the state, so replacing a group never strands one. The group and
member states are the tables in consumer_group_state.py. A part of GroupCoordinator (its state and
helpers are the coordinator's); runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from odradek.clock import Timer
from odradek.coordinator.assignors import Assignment
from odradek.coordinator.classic_ops import JoinResult, SyncResult, group_store_error
from odradek.coordinator.consumer_group import (
    JOIN_EPOCH,
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    new_member_id,
)
from odradek.coordinator.consumer_group_state import member_state
from odradek.coordinator.group import ClassicGroup
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
    group_key,
    group_value,
)
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

Records = list[tuple[bytes, bytes | None]]


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
class MemberTimers:
    """A member's session and revocation timers. `*_seq` tells the expiry of the timer that fired
    from that of one replaced meanwhile (the member spoke while the expiry waited for the lock)."""

    session: Timer | None = None
    session_seq: int = 0
    revocation: Timer | None = None
    revocation_seq: int = 0


class ConsumerGroupOps:
    """The consumer protocol's operations, mixed into GroupCoordinator."""

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

    # -- ConsumerGroupHeartbeat ------------------------------------------------------------------

    async def consumer_group_heartbeat(self, **request) -> HeartbeatResult:
        """Handle one heartbeat on a copy of the group, store what changed, then make the copy the
        group and answer; if the write fails, nothing changes and the member gets the store's error."""
        group_id, member_id, member_epoch = request["group_id"], request["member_id"], request["member_epoch"]
        refused = self._validate_heartbeat(**request)
        if refused is not None:
            return refused
        error = self.coordinator_error(group_id)
        if error is not None:
            return HeartbeatResult(error, None, member_id or None, member_epoch)
        async with self._lock_for(group_id):
            error = self.coordinator_error(group_id)
            if error is not None:
                return HeartbeatResult(error, None, member_id or None, member_epoch)
            current = self.consumer_groups.get(group_id)
            classic = self.groups.get(group_id)
            group, refused = self._group_to_change(group_id, current, classic, member_epoch)
            if refused is not None:
                return refused
            result = self._consumer_group_heartbeat(group, **request)
            if result.error != ErrorCode.none:
                return result
            replaced = current if classic is None else None
            extra = [(group_key(group_id), None)] if classic is not None else []
            error = await self._store_consumer_group(replaced, group, extra)
            if error is not None:
                return HeartbeatResult(error, "the group's new state could not be stored", member_id or None, member_epoch)
            if classic is not None:
                self._retire_classic_group(classic, group)
            self._install_consumer_group(replaced, group, result.member_id)
            await self._maybe_downgrade(group)
            return result

    def _validate_heartbeat(
        self, *, group_id: str, member_id: str, member_epoch: int, rebalance_timeout_ms: int,
        subscribed_topic_names: list[str] | None, server_assignor: str | None, owned: Assignment | None,
        client_chooses_member_id: bool, subscribed_topic_regex: str | None = None, **_ignored,
    ) -> HeartbeatResult | None:
        """Kafka's checks of a heartbeat's fields, then the assignor's name."""
        def invalid(message: str) -> HeartbeatResult:
            return HeartbeatResult(ErrorCode.invalid_request, message, member_id or None, member_epoch)

        if not group_id:
            return invalid("GroupId can't be empty.")
        if member_epoch == JOIN_EPOCH:
            if rebalance_timeout_ms < 0:
                return invalid("RebalanceTimeoutMs must be provided in first request.")
            if subscribed_topic_names is None and subscribed_topic_regex is None:
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
            if owned:
                return invalid("TopicPartitions must be empty when (re-)joining.")
            if client_chooses_member_id and not member_id:
                return invalid("MemberId can't be empty.")
        elif not member_id:
            return invalid("MemberId can't be empty.")
        elif member_epoch < STATIC_LEAVE_EPOCH:
            return invalid(f"MemberEpoch {member_epoch} is not valid.")
        if subscribed_topic_regex:
            try:
                re.compile(subscribed_topic_regex)
            except re.error as error:
                return HeartbeatResult(ErrorCode.invalid_regular_expression,
                                       f"SubscribedTopicRegex {subscribed_topic_regex!r} is not valid: {error}",
                                       member_id or None, member_epoch)
        if server_assignor is not None and server_assignor not in self.config.consumer_assignors:
            return HeartbeatResult(
                ErrorCode.unsupported_assignor,
                f"assignor {server_assignor!r} is not one of {', '.join(self.config.consumer_assignors)}",
                member_id or None,
                member_epoch,
            )
        return None

    def _group_to_change(
        self, group_id: str, current: ConsumerGroup | None, classic: ClassicGroup | None, member_epoch: int,
    ) -> tuple[ConsumerGroup | None, HeartbeatResult | None]:
        """A copy of the group to change: the consumer group's, a new one, or a classic group with
        members converted (an online upgrade, when the policy allows it); or the refusal."""
        if classic is not None and not classic.is_empty:
            upgraded = None
            if member_epoch == JOIN_EPOCH and upgrade_allowed(self.config.migration_policy):
                upgraded = to_consumer_group(classic, self.config.consumer_assignors[0])
            if upgraded is None:
                return None, HeartbeatResult(
                    ErrorCode.group_id_not_found,
                    f"group {group_id} is a classic group with members and cannot be upgraded to the consumer "
                    f"protocol (group.consumer.migration.policy={self.config.migration_policy}, protocol type "
                    f"{classic.protocol_type!r})",
                )
            return upgraded, None
        if current is not None and classic is None:
            return current.copy(), None
        return ConsumerGroup(group_id, assignor_name=self.config.consumer_assignors[0]), None

    def _retire_classic_group(self, classic: ClassicGroup, replacement: ConsumerGroup) -> None:
        """A classic group became a consumer group (its offsets stay): its parked requests are told
        to rejoin."""
        self.groups.pop(classic.group_id, None)
        if not classic.is_empty:
            self._release_classic_group(classic, ErrorCode.rebalance_in_progress)
            log.info("Upgraded group %s to the consumer protocol online: %d classic members at epoch %d",
                     classic.group_id, len(classic.members), replacement.group_epoch)

    def _consumer_group_heartbeat(
        self,
        group: ConsumerGroup,
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
        subscribed_topic_regex: str | None = None,
    ) -> HeartbeatResult:
        """The heartbeat's effect on `group` (a copy) and its answer; no I/O, no timers."""
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
                del group.members[previous.member_id]
                member = ConsumerMember(
                    member_id, instance_id, rack_id, client_id, client_host, rebalance_timeout_ms,
                    sorted(subscribed_topic_names or ()), server_assignor,
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
                    sorted(subscribed_topic_names or ()), server_assignor,
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
        if subscribed_topic_regex is not None and (subscribed_topic_regex or None) != member.subscribed_regex:
            member.subscribed_regex = subscribed_topic_regex or None  # "" clears it
            group.group_epoch += 1
        matched = self.regex_matches(member.subscribed_regex)
        if matched != member.regex_topics:  # the regex changed, or a matching topic appeared or went
            member.regex_topics = matched
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

        assignment = None
        if member.assigned != member.last_sent:
            assignment = {t: set(p) for t, p in member.assigned.items()}
            member.last_sent = assignment
        return HeartbeatResult(
            ErrorCode.none, None, member.member_id, member.member_epoch, self._heartbeat_interval_ms(group.group_id), assignment
        )


    def regex_matches(self, regex: str | None) -> list[str]:
        """The topics (not internal ones) whose whole name matches a SubscribedTopicRegex."""
        if not regex:
            return []
        try:
            pattern = re.compile(regex)
        except re.error:
            return []
        return sorted(name for name in self.topic_names() if pattern.fullmatch(name))

    # -- storing and installing a changed group ---------------------------------------------------

    async def _store_consumer_group(self, before: ConsumerGroup | None, after: ConsumerGroup,
                                    extra: Records = ()) -> ErrorCode | None:
        """Write the records of what changed from `before` to `after` and wait until they are
        committed; the client's error if they cannot be, or if this broker stopped coordinating."""
        records = list(extra) + self._consumer_group_changes(before, after)
        try:
            await self.store.committed(self.store.write(after.group_id, records))
        except KafkaError as failure:
            log.warning("Could not store the state of consumer group %s (%s); it stays as it was", after.group_id, failure)
            return group_store_error(failure)
        return self.coordinator_error(after.group_id)

    def _install_consumer_group(self, before: ConsumerGroup | None, after: ConsumerGroup, active: str | None) -> None:
        """`after` is stored: it becomes the group. Members gone lose their timers, members new (and
        `active`, the one that just spoke) get a fresh session timer, and revocation timers follow
        what is pending."""
        group_id = after.group_id
        self.consumer_groups[group_id] = after
        known = set(before.members) if before is not None else set()
        for member_id in known - set(after.members):
            self._cancel_consumer_timers(group_id, member_id)
        for member in after.members.values():
            if member.member_id == active or member.member_id not in known:
                self._schedule_session_timer(after, member)
            self._follow_revocation(after, member)

    def _consumer_group_changes(self, before: ConsumerGroup | None, group: ConsumerGroup) -> Records:
        """Records for every part of a consumer group that differs from `before` (Kafka's types)."""
        old = _consumer_state(before) if before is not None else {
            "epoch": None, "target_epoch": None, "members": {}, "targets": {}, "current": {}}
        new = _consumer_state(group)
        gid = group.group_id
        records: Records = []
        if new["epoch"] != old["epoch"]:
            records.append((consumer_key(CONSUMER_GROUP_METADATA, gid), consumer_group_epoch_value(group.group_epoch)))
        for member_id in old["members"].keys() - new["members"].keys():
            for record_type in (CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
                                CONSUMER_GROUP_MEMBER_METADATA):
                records.append((consumer_key(record_type, gid, member_id), None))
        for member_id, member in group.members.items():
            if new["members"][member_id] != old["members"].get(member_id):
                metadata = ConsumerMemberMetadata(
                    member.instance_id, member.rack_id, member.client_id, member.client_host,
                    list(member.subscribed_topics), member.rebalance_timeout_ms, member.server_assignor,
                    member.classic, member.subscribed_regex,
                )
                records.append((consumer_key(CONSUMER_GROUP_MEMBER_METADATA, gid, member_id),
                                consumer_member_metadata_value(metadata)))
            if new["targets"].get(member_id) != old["targets"].get(member_id):
                target = self._by_id(group.target.get(member_id, {}))
                records.append((consumer_key(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, gid, member_id),
                                consumer_target_assignment_value(target)))
        if new["target_epoch"] != old["target_epoch"]:
            records.append((consumer_key(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, gid),
                            consumer_group_epoch_value(group.assignment_epoch)))
        for member_id, member in group.members.items():
            if new["current"][member_id] != old["current"].get(member_id):
                current = ConsumerMemberAssignment(
                    member.member_epoch, member.previous_epoch, member_state(group, member).value,
                    self._by_id(member.assigned), self._by_id(member.pending_revocation),
                )
                records.append((consumer_key(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, gid, member_id),
                                consumer_current_assignment_value(current)))
        return records

    async def _maybe_downgrade(self, group: ConsumerGroup) -> None:
        """The last consumer-protocol member left a group of classic members: it becomes a classic
        group again and rebalances (stored first; if the write fails the group stays as it is)."""
        if (self.consumer_groups.get(group.group_id) is not group or not only_classic_members(group)
                or not downgrade_allowed(self.config.migration_policy)):
            return
        classic = to_classic_group(group, self.clock.now_ms())
        records = [(key, None) for key, _ in self._consumer_group_changes(None, group)]
        records.append((group_key(group.group_id), group_value(classic.snapshot())))
        try:
            await self.store.committed(self.store.write(group.group_id, records))
        except KafkaError as failure:
            log.warning("Could not store the downgrade of group %s to the classic protocol: %s", group.group_id, failure)
            return
        if self.consumer_groups.get(group.group_id) is not group:
            return
        for member_id in group.members:
            self._cancel_consumer_timers(group.group_id, member_id)
        del self.consumer_groups[group.group_id]
        self.groups[group.group_id] = classic
        for member in classic.members.values():
            self._schedule_session_expiry(classic, member)
        log.info("Downgraded group %s to the classic protocol online: %d members at generation %d",
                 group.group_id, len(classic.members), classic.generation_id)
        self._prepare_rebalance(classic, "downgraded from the consumer protocol")

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
        member is reconciled now, and SyncGroup hands it the result. Stored before answering, and
        changed in memory only once stored."""
        error = self._check_group_id(group_id) or self.coordinator_error(group_id)
        if error is not None:
            return JoinResult(error, member_id)
        if not self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms:
            return JoinResult(ErrorCode.invalid_session_timeout, member_id)
        current = self.consumer_groups[group_id]
        subscribed = subscription_of(protocols) if protocol_type == "consumer" else None
        if subscribed is None:
            return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
        topics, owned = subscribed
        if not member_id:
            member_id = new_member_id()
            if require_known_member_id and not group_instance_id:
                return JoinResult(ErrorCode.member_id_required, member_id)
        group = current.copy()
        member = group.members.get(member_id)
        if member is None and group_instance_id:
            previous = next((m for m in group.members.values() if m.instance_id == group_instance_id), None)
            if previous is not None:  # a static member restarted: it takes its predecessor's place
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
        error = await self._store_consumer_group(current, group)
        if error is not None:
            return JoinResult(error, member_id)
        self._install_consumer_group(current, group, member_id)
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
        self._schedule_session_timer(group, member)
        return SyncResult(ErrorCode.none, "consumer", name, assignment_bytes(member.assigned))

    def _heartbeat_consumer_group_as_classic(self, group_id: str, generation_id: int, member_id: str,
                                             group_instance_id: str | None) -> ErrorCode:
        """Heartbeat of a hosted classic member: REBALANCE_IN_PROGRESS when it must rejoin to get a
        new assignment."""
        group = self.consumer_groups[group_id]
        member, error = self._hosted_classic_member(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return error
        self._schedule_session_timer(group, member)
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
            asyncio.get_running_loop().create_task(
                self._expire_consumer_member(group_id, member.member_id, "left the group"))
            errors.append(ErrorCode.none)
        return errors

    # -- timers ---------------------------------------------------------------------------------

    def _session_timeout_ms(self, group_id: str) -> int:
        """consumer.session.timeout.ms of this group (its group config, else the broker's)."""
        if self._group_setting is None:
            return self.config.consumer_session_timeout_ms
        return self._group_setting(group_id, "consumer.session.timeout.ms")

    def _heartbeat_interval_ms(self, group_id: str) -> int:
        if self._group_setting is None:
            return self.config.consumer_heartbeat_interval_ms
        return self._group_setting(group_id, "consumer.heartbeat.interval.ms")

    def _schedule_session_timer(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        timers = self.member_timers.setdefault((group.group_id, member.member_id), MemberTimers())
        if timers.session is not None:
            timers.session.cancel()
        timers.session_seq += 1
        timeout_ms = member.classic.session_timeout_ms if member.classic else self._session_timeout_ms(group.group_id)
        timers.session = self.clock.call_later(
            timeout_ms, self._consumer_timer_fired, group.group_id, member.member_id, "session", timers.session_seq,
        )

    def _follow_revocation(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        """A member told to revoke must confirm within its rebalance timeout; the timer stops once
        nothing is pending."""
        timers = self.member_timers.setdefault((group.group_id, member.member_id), MemberTimers())
        if member.pending_revocation and timers.revocation is None:
            timers.revocation_seq += 1
            timers.revocation = self.clock.call_later(
                max(member.rebalance_timeout_ms, 1), self._consumer_timer_fired,
                group.group_id, member.member_id, "revocation", timers.revocation_seq,
            )
        elif not member.pending_revocation and timers.revocation is not None:
            timers.revocation.cancel()
            timers.revocation = None

    def _cancel_consumer_timers(self, group_id: str, member_id: str) -> None:
        timers = self.member_timers.pop((group_id, member_id), None)
        if timers is not None:
            for timer in (timers.session, timers.revocation):
                if timer is not None:
                    timer.cancel()

    def _consumer_timer_fired(self, group_id: str, member_id: str, kind: str, seq: int) -> None:
        timers = self.member_timers.get((group_id, member_id))
        if timers is None or getattr(timers, f"{kind}_seq") != seq:
            return
        reason = ("missed its session timeout" if kind == "session"
                  else "did not revoke its partitions within the rebalance timeout")
        asyncio.get_running_loop().create_task(self._expire_consumer_member(group_id, member_id, reason, (kind, seq)))

    async def _expire_consumer_member(self, group_id: str, member_id: str, reason: str,
                                      fired: tuple[str, int] | None = None) -> None:
        """A timer fired (or a hosted classic member left): remove the member and store it, as a
        heartbeat would. If the write fails nothing changes, and the member gets a new session
        timeout to heartbeat in."""
        async with self._lock_for(group_id):
            current = self.consumer_groups.get(group_id)
            if current is None or member_id not in current.members:
                return
            timers = self.member_timers.get((group_id, member_id))
            if fired is not None and (timers is None or getattr(timers, f"{fired[0]}_seq") != fired[1]):
                return  # the member spoke (its timer was replaced) while this waited for the lock
            group = current.copy()
            self._remove_consumer_member(group, group.members[member_id], reason)
            if await self._store_consumer_group(current, group) is not None:
                if self.consumer_groups.get(group_id) is current:
                    self._schedule_session_timer(current, current.members[member_id])
                return
            self._install_consumer_group(current, group, None)
            await self._maybe_downgrade(group)

    @staticmethod
    def _remove_consumer_member(group: ConsumerGroup, member: ConsumerMember, reason: str) -> None:
        del group.members[member.member_id]
        group.target.pop(member.member_id, None)
        group.group_epoch += 1
        log.info("Member %s of consumer group %s %s (epoch %d)", member.member_id, group.group_id, reason, group.group_epoch)

    def describe_consumer_group(self, group_id: str) -> ConsumerGroup | None:
        return self.consumer_groups.get(group_id)


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
            m.member_id: (m.instance_id, m.rack_id, m.client_id, m.client_host, tuple(m.subscribed_topics), m.subscribed_regex,
                          m.rebalance_timeout_ms, m.server_assignor, m.classic)
            for m in group.members.values()
        },
        "targets": {member_id: _frozen(target) for member_id, target in group.target.items()},
        "current": {
            m.member_id: (m.member_epoch, m.previous_epoch, _frozen(m.assigned), _frozen(m.pending_revocation))
            for m in group.members.values()
        },
    }
