"""The states of a consumer-protocol group (KIP-848) and of its members, as data.

Unlike a classic group, whose state moves on events (group_state.py), a consumer group's state is
a function of its epochs and assignments, as in Kafka: each is decided by the first row of a table
whose condition holds. The member table is also the reconciliation step (Kafka's
CurrentAssignmentBuilder): which state a heartbeat moves a member to, and what it does.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odradek.coordinator.consumer_group import ConsumerGroup, ConsumerMember


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    """No members; committed offsets may remain."""

    ASSIGNING = "Assigning"
    """Membership or subscriptions changed (the group epoch moved) and the target assignment is
    not yet computed for that epoch."""

    RECONCILING = "Reconciling"
    """The target is computed; some member has not reached it yet."""

    STABLE = "Stable"
    """Every member owns its target at the group's assignment epoch."""

    DEAD = "Dead"
    """Deleted."""


class MemberState(enum.Enum):
    """Kafka's MemberState; the value is what the current-assignment record stores."""

    STABLE = 0
    """Owns its target at the group's assignment epoch (or has nothing to move)."""

    UNREVOKED_PARTITIONS = 1
    """Told to give up partitions; stays at its previous epoch until a heartbeat no longer reports
    them, so none is handed to a new owner while it may still be read."""

    UNRELEASED_PARTITIONS = 2
    """At the new epoch, waiting for partitions another member has not released yet."""


GROUP_STATE_TABLE: list[tuple[Callable[["ConsumerGroup"], bool], ConsumerGroupState]] = [
    (lambda group: not group.members, ConsumerGroupState.EMPTY),
    (lambda group: group.assignment_epoch < group.group_epoch, ConsumerGroupState.ASSIGNING),
    (lambda group: any(member_state(group, m) is not MemberState.STABLE or m.member_epoch != group.assignment_epoch
                       for m in group.members.values()), ConsumerGroupState.RECONCILING),
    (lambda group: True, ConsumerGroupState.STABLE),
]


def group_state(group: "ConsumerGroup") -> ConsumerGroupState:
    return next(state for condition, state in GROUP_STATE_TABLE if condition(group))


def member_state(group: "ConsumerGroup", member: "ConsumerMember") -> MemberState:
    if member.pending_revocation:
        return MemberState.UNREVOKED_PARTITIONS
    if member.assigned != group.target.get(member.member_id, {}):
        return MemberState.UNRELEASED_PARTITIONS
    return MemberState.STABLE


class Step(enum.Enum):
    """What one reconciliation step does to a member (ConsumerGroup.reconcile carries it out)."""

    WAIT_FOR_REVOCATION = "its heartbeat still reports a partition it was told to give up: nothing moves"
    REVOKED = "its heartbeat no longer reports them: they are released, then the next row applies"
    REVOKE = "its target lacks partitions it owns: they are pending revocation, its epoch stays"
    TAKE = "it takes every partition of its target no other member holds, and the assignment epoch"


# One reconciliation step: (the member's state, whether the row's condition holds) -> the step.
# The condition for UNREVOKED_PARTITIONS: its heartbeat still reports (or does not report at all)
# a partition pending revocation. For the others: its target lacks partitions it owns.
RECONCILE_TABLE: dict[tuple[MemberState, bool], Step] = {
    (MemberState.UNREVOKED_PARTITIONS, True): Step.WAIT_FOR_REVOCATION,
    (MemberState.UNREVOKED_PARTITIONS, False): Step.REVOKED,
    (MemberState.STABLE, True): Step.REVOKE,
    (MemberState.STABLE, False): Step.TAKE,
    (MemberState.UNRELEASED_PARTITIONS, True): Step.REVOKE,
    (MemberState.UNRELEASED_PARTITIONS, False): Step.TAKE,
}
