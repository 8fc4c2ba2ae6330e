"""Online migration between the classic and consumer group protocols (KIP-848).

A rolling upgrade restarts a group's members one by one with `group.protocol=consumer`; a rolling
downgrade goes back. Kafka 4 keeps such a group consuming throughout (`group.consumer.migration.policy`,
default bidirectional), and so does odradek:

- Upgrade: the first consumer-protocol member to join a classic group with members turns it into a
  consumer group. Each classic member becomes a member of it *hosted in the classic protocol*: its
  subscription and assignment are read from its JoinGroup metadata and SyncGroup assignment, its
  member epoch and the group epoch are the classic generation.
- A hosted classic member keeps speaking JoinGroup/SyncGroup/Heartbeat/LeaveGroup. The server-side
  assignor decides for it too: its heartbeat answers REBALANCE_IN_PROGRESS when its assignment
  must change, its JoinGroup reconciles it (what it still owns comes from its subscription's owned
  partitions, none for eager assignors), and SyncGroup hands it the result as a
  ConsumerProtocolAssignment. It is never the leader; the assignment in its SyncGroup is ignored.
- Downgrade: when the last consumer-protocol member leaves and classic members remain, the group
  becomes a classic group again, at the members' epoch as generation (so their next heartbeat is
  answered REBALANCE_IN_PROGRESS, not ILLEGAL_GENERATION), and rebalances, so the classic members
  rejoin and their own assignor takes over.
Committed offsets belong to the group id and are untouched throughout. Pure functions over the
group objects; the coordinator stores what they change.
"""

from __future__ import annotations

from odradek.client.consumer_protocol import (
    PROTOCOL_TYPE,
    ConsumerProtocolError,
    decode_assignment,
    decode_subscription,
    encode_assignment,
)
from odradek.coordinator.assignors import Assignment
from odradek.coordinator.consumer_group import ConsumerGroup, ConsumerMember
from odradek.coordinator.group import ClassicGroup, Member
from odradek.coordinator.group_records import ClassicMemberMetadata
from odradek.coordinator.group_state import GroupState
from odradek.protocol.topic_partition import TopicPartition

POLICIES = ("bidirectional", "upgrade", "downgrade", "disabled")


def upgrade_allowed(policy: str) -> bool:
    return policy in ("bidirectional", "upgrade")


def downgrade_allowed(policy: str) -> bool:
    return policy in ("bidirectional", "downgrade")


def subscription_of(protocols) -> tuple[list[str], Assignment] | None:
    """(subscribed topics, owned partitions) from a classic member's first protocol's metadata;
    None when it is not a consumer-protocol subscription."""
    if not protocols:
        return None
    try:
        subscription = decode_subscription(protocols[0][1])
    except ConsumerProtocolError:
        return None
    return sorted(set(subscription.topics)), _by_topic(subscription.owned_partitions)


def to_consumer_group(classic: ClassicGroup, assignor: str) -> ConsumerGroup | None:
    """The consumer group hosting `classic`'s members (None if a member's metadata is not the
    consumer protocol's, or the group is not a consumer group)."""
    if classic.protocol_type != PROTOCOL_TYPE:
        return None
    group = ConsumerGroup(classic.group_id, group_epoch=classic.generation_id,
                          assignment_epoch=classic.generation_id, assignor_name=assignor)
    for member in classic.members.values():
        protocols = [(name, metadata) for name, metadata in member.protocols]
        chosen = member.metadata_for(classic.protocol_name)
        subscribed = subscription_of([(classic.protocol_name or "", chosen)] if chosen else protocols)
        if subscribed is None:
            return None
        try:
            assigned = _by_topic(decode_assignment(member.assignment))
        except ConsumerProtocolError:
            return None
        group.members[member.member_id] = ConsumerMember(
            member.member_id, member.group_instance_id, None, member.client_id, member.client_host,
            member.rebalance_timeout_ms, subscribed[0], None,
            member_epoch=classic.generation_id, assigned=assigned,
            classic=ClassicMemberMetadata(member.session_timeout_ms, tuple(protocols)),
        )
        group.target[member.member_id] = {topic: set(parts) for topic, parts in assigned.items()}
    return group


def only_classic_members(group: ConsumerGroup) -> bool:
    """Whether every member left speaks the classic protocol (the group may go back to classic)."""
    return bool(group.members) and all(member.classic is not None for member in group.members.values())


def to_classic_group(group: ConsumerGroup, now_ms: int) -> ClassicGroup:
    """The classic group of a consumer group whose members all speak the classic protocol, at the
    members' epoch as generation, with their current assignments; the caller starts a rebalance."""
    generation = max(member.member_epoch for member in group.members.values())
    classic = ClassicGroup(group.group_id, state=GroupState.STABLE, generation_id=generation,
                           protocol_type=PROTOCOL_TYPE, state_timestamp_ms=now_ms)
    for consumer in group.members.values():
        member = Member(
            consumer.member_id, consumer.instance_id, consumer.client_id, consumer.client_host,
            consumer.classic.session_timeout_ms, consumer.rebalance_timeout_ms, PROTOCOL_TYPE,
            list(consumer.classic.protocols), assignment=assignment_bytes(consumer.assigned),
        )
        classic.members[member.member_id] = member
        if member.group_instance_id:
            classic.static_members[member.group_instance_id] = member.member_id
    classic.protocol_name = classic.select_protocol()
    classic.leader_id = next(iter(classic.members))
    return classic


def needs_rejoin(group: ConsumerGroup, member: ConsumerMember) -> bool:
    """A hosted classic member must rejoin (REBALANCE_IN_PROGRESS) to learn a new assignment."""
    return (
        group.assignment_epoch < group.group_epoch
        or member.member_epoch != group.assignment_epoch
        or bool(member.pending_revocation)
        or member.assigned != group.target.get(member.member_id, {})
    )


def assignment_bytes(assigned: Assignment) -> bytes:
    """A member's partitions as the ConsumerProtocolAssignment its SyncGroup returns."""
    return encode_assignment(TopicPartition(topic, p) for topic, parts in assigned.items() for p in parts)


def _by_topic(partitions) -> Assignment:
    out: Assignment = {}
    for tp in partitions:
        out.setdefault(tp.topic, set()).add(tp.partition)
    return out
