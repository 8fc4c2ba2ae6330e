"""A classic consumer group in memory: its members, generation, chosen protocol and state.

Pure data plus the rules that need no I/O (protocol choice, snapshots). The coordinator changes it
on the event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from odradek.clock import Timer
from odradek.coordinator.group_records import GroupSnapshot, MemberSnapshot
from odradek.coordinator.group_state import GroupState, check_transition


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata), in the member's order of preference
    assignment: bytes = b""
    join_future: asyncio.Future | None = None
    sync_future: asyncio.Future | None = None
    session_timer: Timer | None = None

    def metadata_for(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols

    @property
    def awaiting_join(self) -> bool:
        return self.join_future is not None and not self.join_future.done()

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_future is not None and not self.sync_future.done()


@dataclass
class ClassicGroup:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # group.instance.id -> member id
    pending_members: dict[str, Timer | None] = field(default_factory=dict)  # KIP-394
    state_timestamp_ms: int = -1
    rebalance_timer: Timer | None = None
    initial_delay_deadline: float | None = None  # monotonic end of the initial delayed join

    def transition_to(self, target: GroupState, now_ms: int) -> None:
        check_transition(self.state, target)
        self.state = target
        self.state_timestamp_ms = now_ms

    @property
    def is_empty(self) -> bool:
        return not self.members

    def supports_protocols(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Can a member with these protocols join? (same type, and a protocol in common)"""
        if self.is_empty:
            return bool(protocol_type) and bool(protocols)
        if protocol_type != self.protocol_type:
            return False
        names = {name for name, _ in protocols}
        return all(names & {name for name, _ in member.protocols} for member in self.members.values())

    def select_protocol(self) -> str:
        """The protocol all members support that gets the most first-choice votes (Kafka's rule)."""
        candidates = None
        for member in self.members.values():
            names = {name for name, _ in member.protocols}
            candidates = names if candidates is None else candidates & names
        votes: Counter[str] = Counter()
        for member in self.members.values():
            vote = next(name for name, _ in member.protocols if name in candidates)
            votes[vote] += 1
        # Ties go to the protocol listed first by the first member, like Kafka's stable max.
        order = [name for name, _ in next(iter(self.members.values())).protocols]
        return max(sorted(candidates, key=order.index), key=lambda name: votes[name])

    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def subscribed_topics(self) -> set[str] | None:
        """Topics in the members' consumer-protocol subscriptions; None if not a consumer group."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            topics |= parse_subscription_topics(member.metadata_for(self.protocol_name))
        return topics

    def snapshot(self) -> GroupSnapshot:
        return GroupSnapshot(
            protocol_type=self.protocol_type or "",
            generation_id=self.generation_id,
            protocol_name=self.protocol_name,
            leader_id=self.leader_id,
            state_timestamp_ms=self.state_timestamp_ms,
            members=[
                MemberSnapshot(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata_for(self.protocol_name),
                    assignment=m.assignment,
                )
                for m in self.members.values()
            ],
        )


def parse_subscription_topics(metadata: bytes) -> set[str]:
    """Topic names of a ConsumerProtocolSubscription (version int16, then [topic string]).

    Unreadable metadata yields no topics rather than an error: it only guards OffsetDelete.
    """
    try:
        position = 2
        count = int.from_bytes(metadata[position : position + 4], "big", signed=True)
        position += 4
        topics = set()
        for _ in range(min(max(count, 0), len(metadata))):
            length = int.from_bytes(metadata[position : position + 2], "big", signed=True)
            position += 2
            if length < 0 or position + length > len(metadata):
                break
            topics.add(metadata[position : position + length].decode())
            position += length
        return topics
    except (UnicodeDecodeError, ValueError, IndexError):
        return set()
