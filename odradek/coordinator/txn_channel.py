"""What the transaction machinery asks of other brokers: COMMIT or ABORT markers for every
partition a transaction touched (WriteTxnMarkers to their leaders), and whether a transaction holds
a partition (AddPartitionsToTxn verify_only to its coordinator, KIP-890).

Markers: partitions this broker leads get their marker through the local replica manager; the others get a
WriteTxnMarkers request to their leader, one per leader, over a connection kept per broker. A
partition whose leader is unknown, moving or unreachable is retried every RETRY_BACKOFF_S until it
has its marker, or until the caller says this broker no longer coordinates the transaction (a new
coordinator then writes the markers again; they are idempotent). A partition whose topic was
deleted needs no marker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from odradek.client.errors import ClientError
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

if TYPE_CHECKING:
    from odradek.client.connection import BrokerConnection

log = logging.getLogger(__name__)

ADD_PARTITIONS_TO_TXN = 24
WRITE_TXN_MARKERS = 27
RETRY_BACKOFF_S = 0.1
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0


class Leader(NamedTuple):
    node_id: int
    host: str
    port: int


# Per-partition answers that mean "try again later" (leadership moving, replication short).
_RETRIABLE = {
    ErrorCode.not_leader_or_follower, ErrorCode.unknown_topic_or_partition, ErrorCode.not_enough_replicas,
    ErrorCode.not_enough_replicas_after_append, ErrorCode.request_timed_out, ErrorCode.kafka_storage_error,
    ErrorCode.coordinator_load_in_progress, ErrorCode.leader_not_available, ErrorCode.unknown_server_error,
}


class TransactionChannel:
    def __init__(
        self,
        node_id: int,
        *,
        leader_of: Callable[[TopicPartition], Leader | None],
        topic_exists: Callable[[str], bool],
        write_local: Callable[[TopicPartition, int, int, bool, int], Awaitable[None]],
        security: object = None,
    ) -> None:
        self.node_id = node_id
        self._security = security  # ClientSecurity towards the inter-broker listener (None: PLAINTEXT)
        self._leader_of = leader_of
        self._topic_exists = topic_exists
        self._write_local = write_local
        self._connections: dict[int, BrokerConnection] = {}
        self._connecting: dict[int, asyncio.Lock] = {}

    async def write(self, producer_id: int, producer_epoch: int, committed: bool, coordinator_epoch: int,
                    partitions: Iterable[TopicPartition], still_current: Callable[[], bool]) -> None:
        """Return once every partition has the marker, or when still_current() turns False."""
        remaining = set(partitions)
        while remaining and still_current():
            by_leader: dict[Leader, list[TopicPartition]] = {}
            for tp in list(remaining):
                if not self._topic_exists(tp.topic):
                    remaining.discard(tp)  # deleted with its data: nothing left to mark
                    continue
                leader = self._leader_of(tp)
                if leader is not None:
                    by_leader.setdefault(leader, []).append(tp)
            results = await asyncio.gather(*(
                self._write_to(leader, tps, producer_id, producer_epoch, committed, coordinator_epoch)
                for leader, tps in by_leader.items()
            ))
            for done in results:
                remaining -= done
            if remaining:
                await asyncio.sleep(RETRY_BACKOFF_S)

    async def _write_to(self, leader: Leader, partitions: list[TopicPartition], producer_id: int, producer_epoch: int,
                        committed: bool, coordinator_epoch: int) -> set[TopicPartition]:
        """The partitions that got their marker at this leader."""
        if leader.node_id == self.node_id:
            return await self._write_here(partitions, producer_id, producer_epoch, committed, coordinator_epoch)
        try:
            connection = await self._connection(leader)
            by_topic: dict[str, list[int]] = {}
            for tp in partitions:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            response = await connection.request(WRITE_TXN_MARKERS, {"markers": [{
                "producer_id": producer_id, "producer_epoch": producer_epoch, "transaction_result": committed,
                "coordinator_epoch": coordinator_epoch, "transaction_version": 0,
                "topics": [{"name": name, "partition_indexes": indexes} for name, indexes in by_topic.items()],
            }]}, timeout_s=REQUEST_TIMEOUT_S)
        except (ClientError, KafkaError, OSError) as exc:
            log.info("Writing transaction markers at broker %d failed: %s; retrying", leader.node_id, exc)
            await self._drop_connection(leader.node_id)
            return set()
        done = set()
        for marker in response.markers:
            for topic in marker.topics:
                for partition in topic.partitions:
                    tp = TopicPartition(topic.name, partition.partition_index)
                    if self._accepted(tp, ErrorCode(int(partition.error_code))):
                        done.add(tp)
        return done

    async def _write_here(self, partitions, producer_id, producer_epoch, committed, coordinator_epoch) -> set[TopicPartition]:
        async def one(tp: TopicPartition) -> TopicPartition | None:
            try:
                await self._write_local(tp, producer_id, producer_epoch, committed, coordinator_epoch)
            except KafkaError as error:
                return tp if self._accepted(tp, error.code) else None
            return tp

        return {tp for tp in await asyncio.gather(*(one(tp) for tp in partitions)) if tp is not None}

    def _accepted(self, tp: TopicPartition, code: ErrorCode) -> bool:
        """Whether a partition is done with: its marker is in, or it never will need one."""
        if code == ErrorCode.none:
            return True
        if code in _RETRIABLE:
            return False
        # Fenced coordinator or producer epoch: a newer coordinator or epoch owns this producer now.
        log.warning("Transaction marker for %s refused (%s); not retrying", tp, code.name.upper())
        return True

    async def _connection(self, leader: Leader) -> BrokerConnection:
        from odradek.client.connection import BrokerConnection  # only markers for other brokers need a client

        lock = self._connecting.setdefault(leader.node_id, asyncio.Lock())
        async with lock:
            connection = self._connections.get(leader.node_id)
            if connection is not None and connection.connected and (connection.host, connection.port) == (leader.host, leader.port):
                return connection
            if connection is not None:
                await connection.close()
            connection = await BrokerConnection(
                leader.host, leader.port, client_id=f"broker-{self.node_id}-txn-markers", node_id=leader.node_id,
                security=self._security,
            ).connect(CONNECT_TIMEOUT_S)
            self._connections[leader.node_id] = connection
            return connection

    async def _drop_connection(self, node_id: int) -> None:
        connection = self._connections.pop(node_id, None)
        if connection is not None:
            await connection.close()

    async def verify(self, coordinator: Leader, transactional_id: str, producer_id: int, producer_epoch: int,
                     partitions: list[TopicPartition], *, verify_only: bool = True) -> dict[TopicPartition, ErrorCode]:
        """Ask a transaction's coordinator on another broker which partitions its open transaction
        holds (AddPartitionsToTxn v4+ with verify_only), or (transaction version 2) to add them;
        KafkaError if it cannot be asked."""
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        try:
            connection = await self._connection(coordinator)
            response = await connection.request(ADD_PARTITIONS_TO_TXN, {"transactions": [{
                "transactional_id": transactional_id, "producer_id": producer_id, "producer_epoch": producer_epoch,
                "verify_only": verify_only,
                "topics": [{"name": name, "partitions": indexes} for name, indexes in by_topic.items()],
            }]}, min_version=4, timeout_s=REQUEST_TIMEOUT_S)
        except (ClientError, OSError) as exc:
            await self._drop_connection(coordinator.node_id)
            raise KafkaError(ErrorCode.coordinator_not_available, f"cannot reach the transaction coordinator: {exc}") from exc
        errors = {tp: ErrorCode.invalid_txn_state for tp in partitions}
        for result in response.results_by_transaction:
            for topic in result.topic_results:
                for partition in topic.results_by_partition:
                    errors[TopicPartition(topic.name, partition.partition_index)] = ErrorCode(int(partition.partition_error_code))
        return errors

    async def close(self) -> None:
        for node_id in list(self._connections):
            await self._drop_connection(node_id)
