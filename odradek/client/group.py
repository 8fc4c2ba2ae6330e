"""A member of a classic consumer group: join, sync, heartbeat, commit, leave.

`GroupMember.join()` runs JoinGroup (repeating it for MEMBER_ID_REQUIRED, KIP-394) and SyncGroup;
when this member is the leader it assigns with the range assignor from the members'
subscriptions. The heartbeat loop runs as a task and sets `rebalance_needed` when the
coordinator answers REBALANCE_IN_PROGRESS (or forgets the member); the owner then calls `join()`
again. Offsets are committed with this member's generation.

Not thread-safe: one event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from odradek.client.admin import commit_offsets, fetch_committed_offsets
from odradek.client.client import KafkaClient
from odradek.client.consumer_protocol import (
    PROTOCOL_TYPE,
    RANGE,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
    range_assign,
)
from odradek.client.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

__all__ = ["GroupMember"]

log = logging.getLogger("odradek.client.group")

JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
REJOIN_ERRORS = (
    ErrorCode.rebalance_in_progress,
    ErrorCode.illegal_generation,
    ErrorCode.unknown_member_id,
    ErrorCode.fenced_instance_id,
)
COORDINATOR_ERRORS = (ErrorCode.not_coordinator, ErrorCode.coordinator_not_available, ErrorCode.coordinator_load_in_progress)
MAX_JOIN_ATTEMPTS = 20


class GroupMember:
    """One member of `group_id` subscribed to `topics`."""

    def __init__(
        self,
        client: KafkaClient,
        group_id: str,
        topics: Iterable[str],
        *,
        session_timeout_ms: int = 10_000,
        rebalance_timeout_ms: int = 30_000,
        heartbeat_interval_ms: int = 3_000,
        group_instance_id: str | None = None,
    ) -> None:
        self.client = client
        self.group_id = group_id
        self.topics = sorted(set(topics))
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.generation_id = -1
        self.leader_id = ""
        self.assignment: list[TopicPartition] = []
        self.rebalance_needed = False
        self._heartbeat_task: asyncio.Task | None = None

    @property
    def is_leader(self) -> bool:
        return bool(self.member_id) and self.member_id == self.leader_id

    async def _coordinator_request(self, api_key: int, values: dict, **options):
        node_id = await self.client.coordinator(self.group_id)
        return await self.client.request(api_key, values, node_id=node_id, **options)

    async def join(self) -> list[TopicPartition]:
        """Join (or rejoin) the group; the partitions assigned to this member."""
        self._stop_heartbeats()
        for _attempt in range(MAX_JOIN_ATTEMPTS):
            values = {
                "group_id": self.group_id,
                "session_timeout": self.session_timeout_ms,
                "session_timeout_ms": self.session_timeout_ms,
                "rebalance_timeout": self.rebalance_timeout_ms,
                "rebalance_timeout_ms": self.rebalance_timeout_ms,
                "member_id": self.member_id,
                "group_instance_id": self.group_instance_id,
                "protocol_type": PROTOCOL_TYPE,
                "protocols": [{"name": RANGE, "metadata": encode_subscription(self.topics)}],
                "reason": None,
            }
            response = await self._coordinator_request(
                JOIN_GROUP, values, timeout_s=self.client.request_timeout_s + self.rebalance_timeout_ms / 1000
            )
            code = ErrorCode(int(response.error_code))
            if code == ErrorCode.member_id_required:
                self.member_id = response.member_id
                continue
            if code in (ErrorCode.unknown_member_id, ErrorCode.illegal_generation):
                self.member_id = ""
                continue
            if code in COORDINATOR_ERRORS:
                self.client.forget_coordinator(self.group_id)
                await asyncio.sleep(0.1)
                continue
            if code == ErrorCode.rebalance_in_progress:
                continue
            if code != ErrorCode.none:
                raise KafkaError(code, f"joining group '{self.group_id}': {code.name.upper()}")
            self.member_id = response.member_id
            self.generation_id = int(response.generation_id)
            self.leader_id = response.leader
            assignments = []
            if self.is_leader:
                assignments = await self._assign(response.members)
            sync = await self._coordinator_request(
                SYNC_GROUP,
                {
                    "group_id": self.group_id,
                    "generation_id": self.generation_id,
                    "member_id": self.member_id,
                    "group_instance_id": self.group_instance_id,
                    "protocol_type": PROTOCOL_TYPE,
                    "protocol_name": RANGE,
                    "assignments": assignments,
                },
            )
            code = ErrorCode(int(sync.error_code))
            if code in REJOIN_ERRORS:
                if code != ErrorCode.rebalance_in_progress:
                    self.member_id = ""
                continue
            if code != ErrorCode.none:
                raise KafkaError(code, f"syncing group '{self.group_id}': {code.name.upper()}")
            self.assignment = decode_assignment(sync.assignment)
            self.rebalance_needed = False
            self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name=f"heartbeat-{self.group_id}")
            return self.assignment
        raise KafkaError(ErrorCode.rebalance_in_progress, f"group '{self.group_id}' did not settle after {MAX_JOIN_ATTEMPTS} join attempts")

    async def _assign(self, members) -> list[dict]:
        subscriptions = {m.member_id: decode_subscription(m.metadata).topics for m in members}
        topics = sorted({t for ts in subscriptions.values() for t in ts})
        cluster = await self.client.refresh_metadata(topics)
        counts = {t: len(cluster.topics[t].partitions) for t in topics if t in cluster.topics and cluster.topics[t].error == ErrorCode.none}
        plan = range_assign(subscriptions, counts)
        return [{"member_id": member, "assignment": encode_assignment(partitions)} for member, partitions in plan.items()]

    async def heartbeat(self) -> None:
        """One Heartbeat; sets `rebalance_needed` when the group wants this member to rejoin."""
        response = await self._coordinator_request(
            HEARTBEAT,
            {
                "group_id": self.group_id,
                "generation_id": self.generation_id,
                "member_id": self.member_id,
                "group_instance_id": self.group_instance_id,
            },
        )
        code = ErrorCode(int(response.error_code))
        if code in REJOIN_ERRORS:
            if code != ErrorCode.rebalance_in_progress:
                self.member_id = ""
            self.rebalance_needed = True
        elif code in COORDINATOR_ERRORS:
            self.client.forget_coordinator(self.group_id)
        elif code != ErrorCode.none:
            raise KafkaError(code, f"heartbeat in group '{self.group_id}': {code.name.upper()}")

    async def _heartbeat_loop(self) -> None:
        while not self.rebalance_needed:
            await asyncio.sleep(self.heartbeat_interval_ms / 1000)
            try:
                await self.heartbeat()
            except KafkaError as e:
                log.warning("%s", e)
                self.rebalance_needed = True
            except Exception as e:  # a lost connection: rejoining will reconnect
                log.warning("heartbeat in group '%s' failed: %s", self.group_id, e)
                self.rebalance_needed = True

    def _stop_heartbeats(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None

    async def committed(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        node_id = await self.client.coordinator(self.group_id)
        return await fetch_committed_offsets(self.client, node_id, self.group_id, partitions)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit with this member's generation; raises the first partition error."""
        if not offsets:
            return
        node_id = await self.client.coordinator(self.group_id)
        results = await commit_offsets(
            self.client,
            node_id,
            self.group_id,
            offsets,
            generation_id=self.generation_id,
            member_id=self.member_id,
            group_instance_id=self.group_instance_id,
        )
        for error in results.values():
            if error is not None:
                raise error

    async def leave(self) -> None:
        self._stop_heartbeats()
        if not self.member_id:
            return
        response = await self._coordinator_request(
            LEAVE_GROUP,
            {
                "group_id": self.group_id,
                "member_id": self.member_id,
                "members": [{"member_id": self.member_id, "group_instance_id": self.group_instance_id, "reason": "the consumer is closing"}],
            },
        )
        code = ErrorCode(int(response.error_code))
        self.member_id = ""
        self.generation_id = -1
        if code not in (ErrorCode.none, ErrorCode.unknown_member_id):
            raise KafkaError(code, f"leaving group '{self.group_id}': {code.name.upper()}")
