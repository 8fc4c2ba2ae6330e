"""The lifecycle of a classic consumer group, as data: states and the moves allowed between them."""

from __future__ import annotations

import enum


class GroupState(enum.Enum):
    EMPTY = "Empty"
    """No members. Offsets may still be committed (manual assignment) and fetched.
    Goes to PreparingRebalance when a member joins, to Dead when deleted or expired."""

    PREPARING_REBALANCE = "PreparingRebalance"
    """Waiting for every known member to (re)join, up to the rebalance timeout. Heartbeats are
    answered REBALANCE_IN_PROGRESS so members rejoin. Goes to CompletingRebalance when all have
    joined (or the timeout removed the rest), to Empty when none is left."""

    COMPLETING_REBALANCE = "CompletingRebalance"
    """The new generation exists; waiting for the leader's SyncGroup with the assignment.
    Goes to Stable when it arrives, back to PreparingRebalance when membership changes."""

    STABLE = "Stable"
    """Every member has its assignment and heartbeats. Goes to PreparingRebalance when a member
    joins, leaves, changes its subscription or misses its session timeout."""

    DEAD = "Dead"
    """Deleted; the group object is about to disappear. No way out."""


ALLOWED_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(
        {GroupState.EMPTY, GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE, GroupState.STABLE, GroupState.DEAD}
    ),
}


class IllegalStateTransition(RuntimeError):
    pass


def check_transition(current: GroupState, target: GroupState) -> None:
    if current not in ALLOWED_PREVIOUS[target]:
        raise IllegalStateTransition(f"a group cannot move from {current.value} to {target.value}")
