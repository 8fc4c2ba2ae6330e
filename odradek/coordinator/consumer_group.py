"""A consumer-protocol group (KIP-848): the broker assigns, members reconcile by heartbeat.

Epochs: the group epoch moves when membership or a subscription changes; the target assignment is
recomputed by the server-side assignor for that epoch; each member moves to the target epoch once
it has given up what it must (incremental revocation): a partition is revoked first, and handed to
its new owner only after the old owner's heartbeat no longer reports it.

The coordinator writes every change (group epoch, member metadata, target and current
assignments) to `__consumer_offsets` in Kafka's record types 3 and 5-8, so members keep their
id, epoch and partitions across a broker restart. Not thread-safe; runs on the event loop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from odradek.coordinator.assignors import ASSIGNORS, Assignment
from odradek.coordinator.consumer_group_state import RECONCILE_TABLE, MemberState, Step, group_state, member_state
from odradek.coordinator.group_records import ClassicMemberMetadata

JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


@dataclass
class ConsumerMember:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    subscribed_topics: list[str]
    server_assignor: str | None
    member_epoch: int = 0
    previous_epoch: int = -1
    assigned: Assignment = field(default_factory=dict)  # what the member may own now
    pending_revocation: Assignment = field(default_factory=dict)  # told to give up, not yet confirmed
    last_sent: Assignment | None = None
    classic: ClassicMemberMetadata | None = None  # a classic-protocol member hosted here (group_migration.py)
    subscribed_regex: str | None = None  # SubscribedTopicRegex: topics whose whole name matches are subscribed too
    regex_topics: list[str] = field(default_factory=list)  # what the regex matched when last resolved

    def topics(self) -> set[str]:
        """Every topic the member subscribes to: by name, and by its regex."""
        return set(self.subscribed_topics) | set(self.regex_topics)


@dataclass
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    assignor_name: str = "uniform"
    partition_counts: dict[str, int] = field(default_factory=dict)  # topic -> partitions at assignment time

    @property
    def state(self) -> str:
        return group_state(self).value

    def subscribed_topics(self) -> set[str]:
        return {topic for m in self.members.values() for topic in m.topics()}

    def copy(self) -> "ConsumerGroup":
        """An independent copy: what an operation changes before its records are stored."""
        def member_copy(m: ConsumerMember) -> ConsumerMember:
            return replace(
                m, subscribed_topics=list(m.subscribed_topics), regex_topics=list(m.regex_topics), assigned=_copy(m.assigned),
                pending_revocation=_copy(m.pending_revocation),
                last_sent=None if m.last_sent is None else _copy(m.last_sent),
            )

        return replace(
            self, members={member_id: member_copy(m) for member_id, m in self.members.items()},
            target={member_id: _copy(t) for member_id, t in self.target.items()},
            partition_counts=dict(self.partition_counts),
        )

    def compute_target(self, partition_counts: dict[str, int], default_assignor: str) -> None:
        """Run the assignor for the current group epoch."""
        assignor = next((m.server_assignor for m in self.members.values() if m.server_assignor), default_assignor)
        self.assignor_name = assignor
        subscriptions = {m.member_id: m.topics() for m in self.members.values()}
        counts = {t: partition_counts[t] for t in self.subscribed_topics() if t in partition_counts}
        self.partition_counts = counts
        self.target = ASSIGNORS[assignor](subscriptions, counts, self.target)
        self.assignment_epoch = self.group_epoch

    def owned_by_others(self, member_id: str) -> set[tuple[str, int]]:
        owned = set()
        for other in self.members.values():
            if other.member_id == member_id:
                continue
            for assignment in (other.assigned, other.pending_revocation):
                owned |= {(t, p) for t, parts in assignment.items() for p in parts}
        return owned

    def reconcile(self, member: ConsumerMember, reported: Assignment | None) -> Step:
        """Move `member` toward its target by the rows of RECONCILE_TABLE: revoke first, then take
        what others have released. Returns the last step taken."""
        while True:
            state = member_state(self, member)
            if state is MemberState.UNREVOKED_PARTITIONS:
                blocked = reported is None or _overlaps(reported, member.pending_revocation)
            else:
                blocked = bool(_minus(member.assigned, self.target.get(member.member_id, {})))
            step = RECONCILE_TABLE[(state, blocked)]
            if step is Step.WAIT_FOR_REVOCATION:
                return step
            if step is Step.REVOKED:
                member.pending_revocation = {}
                continue
            if step is Step.REVOKE:
                revoke = _minus(member.assigned, self.target.get(member.member_id, {}))
                member.assigned = _minus(member.assigned, revoke)
                member.pending_revocation = revoke
                return step
            taken = self.owned_by_others(member.member_id)
            assigned = {t: set(parts) for t, parts in member.assigned.items()}
            for topic, parts in self.target.get(member.member_id, {}).items():
                for partition in parts:
                    if (topic, partition) not in taken:
                        assigned.setdefault(topic, set()).add(partition)
            member.assigned = {t: parts for t, parts in assigned.items() if parts}
            if member.member_epoch != self.assignment_epoch:
                member.previous_epoch = member.member_epoch
                member.member_epoch = self.assignment_epoch
            return step


def new_member_id() -> str:
    """KIP-848 member ids are UUIDs in Kafka's base64 form (v0 lets the broker choose)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _minus(a: Assignment, b: Assignment) -> Assignment:
    out = {}
    for topic, parts in a.items():
        rest = parts - b.get(topic, set())
        if rest:
            out[topic] = set(rest)
    return out


def _overlaps(a: Assignment, b: Assignment) -> bool:
    return any(parts & b.get(topic, set()) for topic, parts in a.items())


def _copy(assignment: Assignment) -> Assignment:
    return {topic: set(partitions) for topic, partitions in assignment.items()}
