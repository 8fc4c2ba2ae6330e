"""KafkaClient: bootstrap, cluster metadata and one connection per broker.

Owns finding a broker (the first bootstrap address that answers ApiVersions within the
timeout), refreshing Metadata, and routing requests to a node (a partition's leader, a group's
coordinator, any broker). The typed operations live next to it: `admin`, `producer`,
`consumer`, `group`. It knows nothing about the command line.

Not thread-safe: use it from one event loop; coroutines on that loop may share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Mapping

from odradek.client.connection import DEFAULT_CLIENT_ID, BrokerConnection
from odradek.client.errors import BrokerUnreachableError, ClientError, ErrorCode, KafkaError
from odradek.client.metadata import ClusterMetadata
from odradek.clock import Clock
from odradek.security.client_security import PLAINTEXT, ClientSecurity
from odradek.protocol.topic_partition import TopicPartition

__all__ = ["DEFAULT_CONNECT_TIMEOUT_MS", "DEFAULT_REQUEST_TIMEOUT_MS", "KafkaClient", "parse_bootstrap_servers"]

log = logging.getLogger("odradek.client")

METADATA = 3
FIND_COORDINATOR = 10
DEFAULT_CONNECT_TIMEOUT_MS = 10_000
DEFAULT_REQUEST_TIMEOUT_MS = 30_000
DEFAULT_PORT = 9092
COORDINATOR_RETRY_S = 0.1
COORDINATOR_KEY_GROUP = 0

# Newer versions of these APIs name topics by id only; the client speaks names.
NAME_BASED_MAX_VERSIONS = {0: 12, 1: 12, 8: 9, 9: 9}


def parse_bootstrap_servers(value: str | Sequence[str]) -> list[tuple[str, int]]:
    """`host:port,host2:port2` (or a list of them) to (host, port) pairs; ValueError if malformed."""
    items = value.split(",") if isinstance(value, str) else list(value)
    addresses = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if "://" in item:
            item = item.split("://", 1)[1]
        if item.startswith("["):  # [ipv6]:port
            host, _, rest = item[1:].partition("]")
            port_text = rest.lstrip(":") or str(DEFAULT_PORT)
        else:
            host, sep, port_text = item.rpartition(":")
            if not sep:
                host, port_text = item, str(DEFAULT_PORT)
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad bootstrap server '{item}': expected host:port")
        addresses.append((host, int(port_text)))
    if not addresses:
        raise ValueError("no bootstrap server given")
    return addresses


class KafkaClient:
    """Connections to a Kafka cluster, found through `bootstrap_servers`.

    `connect_timeout_ms` bounds reaching a broker (BrokerUnreachableError past it);
    `request_timeout_ms` bounds waiting for one answer.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] = "localhost:9092",
        *,
        client_id: str | None = DEFAULT_CLIENT_ID,
        connect_timeout_ms: int = DEFAULT_CONNECT_TIMEOUT_MS,
        request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
        clock: Clock | None = None,
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self.security = security
        self.bootstrap = parse_bootstrap_servers(bootstrap_servers)
        self.client_id = client_id
        self.connect_timeout_ms = connect_timeout_ms
        self.request_timeout_ms = request_timeout_ms
        self.clock = clock or Clock()
        self.cluster: ClusterMetadata | None = None
        self._bootstrap_connection: BrokerConnection | None = None
        self._connections: dict[int, BrokerConnection] = {}
        self._connecting: dict[int, asyncio.Future] = {}
        self._coordinators: dict[str, int] = {}

    async def __aenter__(self) -> "KafkaClient":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    @property
    def request_timeout_s(self) -> float:
        return self.request_timeout_ms / 1000

    async def start(self) -> None:
        """Connect to the first bootstrap server that answers and load the broker list."""
        deadline = self.clock.monotonic() + self.connect_timeout_ms / 1000
        problems = []
        while True:
            for host, port in self.bootstrap:
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    break
                try:
                    self._bootstrap_connection = await BrokerConnection(host, port, client_id=self.client_id, security=self.security).connect(remaining)
                    await self.refresh_metadata(topics=[])
                    return
                except BrokerUnreachableError as e:
                    problems.append(str(e))
            if deadline - self.clock.monotonic() <= 0:
                break
            await asyncio.sleep(min(0.2, max(0.0, deadline - self.clock.monotonic())))
        servers = ",".join(f"{h}:{p}" for h, p in self.bootstrap)
        telling = [p for p in problems if not p.endswith("timed out")]
        last = (telling or problems or ["no attempt finished"])[-1]
        raise BrokerUnreachableError(
            f"no broker reachable at {servers} within {self.connect_timeout_ms} ms ({last})"
        )

    async def close(self) -> None:
        connections = list(self._connections.values())
        if self._bootstrap_connection is not None and self._bootstrap_connection not in connections:
            connections.append(self._bootstrap_connection)
        self._connections.clear()
        self._bootstrap_connection = None
        for connection in connections:
            await connection.close()

    # --- routing ------------------------------------------------------------------------------

    async def any_connection(self) -> BrokerConnection:
        if self._bootstrap_connection is not None and self._bootstrap_connection.connected:
            return self._bootstrap_connection
        if self.cluster is not None:
            for node_id in self.cluster.brokers:
                try:
                    connection = await self.connection(node_id)
                except BrokerUnreachableError:
                    continue
                self._bootstrap_connection = connection
                return connection
        await self.start()
        assert self._bootstrap_connection is not None
        return self._bootstrap_connection

    async def connection(self, node_id: int) -> BrokerConnection:
        """The connection to broker `node_id` (opened on first use)."""
        existing = self._connections.get(node_id)
        if existing is not None and existing.connected:
            return existing
        pending = self._connecting.get(node_id)
        if pending is not None:
            return await asyncio.shield(pending)
        if self.cluster is None or node_id not in self.cluster.brokers:
            await self.refresh_metadata(topics=[])
        assert self.cluster is not None
        broker = self.cluster.brokers.get(node_id)
        if broker is None:
            raise ClientError(f"broker {node_id} is not in the cluster metadata (brokers: {sorted(self.cluster.brokers)})")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._connecting[node_id] = future
        try:
            connection = await BrokerConnection(broker.host, broker.port, client_id=self.client_id, node_id=node_id,
                                              security=self.security).connect(
                self.connect_timeout_ms / 1000
            )
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self._connecting.pop(node_id, None)
        self._connections[node_id] = connection
        future.set_result(connection)
        return connection

    async def request(self, api_key: int, values: Mapping[str, Any], *, node_id: int | None = None, **options: Any) -> Any:
        """Send to `node_id` (any broker if None) at the negotiated version; the response entity."""
        connection = await (self.connection(node_id) if node_id is not None else self.any_connection())
        options.setdefault("timeout_s", self.request_timeout_s)
        if api_key in NAME_BASED_MAX_VERSIONS:
            limit = NAME_BASED_MAX_VERSIONS[api_key]
            options["max_version"] = min(limit, options.get("max_version") or limit)
        return await connection.request(api_key, values, **options)

    # --- metadata -----------------------------------------------------------------------------

    async def refresh_metadata(self, topics: Iterable[str] | None = None, *, allow_auto_topic_creation: bool = False) -> ClusterMetadata:
        """Ask for `topics` (None: every topic; []: brokers only) and remember the answer."""
        names = None if topics is None else list(topics)
        connection = self._bootstrap_connection if self._bootstrap_connection is not None and self._bootstrap_connection.connected else await self.any_connection()
        version = connection.version_for(METADATA, max_version=12, min_version=1)
        values: dict[str, Any] = {
            "topics": None if names is None else [{"name": name} for name in names],
            "allow_auto_topic_creation": allow_auto_topic_creation,
        }
        response = await connection.request(METADATA, values, max_version=version, timeout_s=self.request_timeout_s)
        cluster = ClusterMetadata.from_response(response)
        self.cluster = cluster
        return cluster

    async def topic_metadata(self, topics: Iterable[str], *, allow_auto_topic_creation: bool = False) -> ClusterMetadata:
        """Metadata for `topics`; KafkaError(UNKNOWN_TOPIC_OR_PARTITION) naming any that do not exist."""
        names = list(topics)
        cluster = await self.refresh_metadata(names, allow_auto_topic_creation=allow_auto_topic_creation)
        for name in names:
            topic = cluster.topics.get(name)
            if topic is None or topic.error == ErrorCode.unknown_topic_or_partition:
                raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
            if topic.error == ErrorCode.leader_not_available and allow_auto_topic_creation:
                continue
            if topic.error != ErrorCode.none:
                raise KafkaError(topic.error, f"topic '{name}': {topic.error.name.upper()}")
        return cluster

    async def leaders(self, partitions: Iterable[TopicPartition]) -> dict[int, list[TopicPartition]]:
        """Partitions grouped by their leader's node id; metadata is refreshed for their topics."""
        partitions = list(partitions)
        topics = sorted({tp.topic for tp in partitions})
        cluster = await self.topic_metadata(topics)
        leader_of = {(name, p.partition): p.leader_id for name in topics for p in cluster.topics[name].partitions}
        by_leader: dict[int, list[TopicPartition]] = {}
        for tp in partitions:
            leader = leader_of.get((tp.topic, tp.partition))
            if leader is None:
                count = len(cluster.topics[tp.topic].partitions)
                raise KafkaError(
                    ErrorCode.unknown_topic_or_partition,
                    f"topic '{tp.topic}' has no partition {tp.partition} (partitions 0..{count - 1})",
                )
            if leader < 0:
                raise KafkaError(ErrorCode.leader_not_available, f"partition {tp} has no leader")
            by_leader.setdefault(leader, []).append(tp)
        return by_leader

    # --- coordinators --------------------------------------------------------------------------

    async def coordinator(self, group_id: str, *, refresh: bool = False) -> int:
        """Node id of the group coordinator of `group_id`, retrying while it is being loaded."""
        if not refresh and group_id in self._coordinators:
            return self._coordinators[group_id]
        deadline = self.clock.monotonic() + self.request_timeout_s
        while True:
            response = await self.request(
                FIND_COORDINATOR,
                {"key": group_id, "key_type": COORDINATOR_KEY_GROUP, "coordinator_keys": [group_id]},
            )
            if int(response.__version__) >= 4:
                entry = response.coordinators[0]
            else:
                entry = response
            code = ErrorCode(int(entry.error_code))
            if code == ErrorCode.none:
                node_id = int(entry.node_id)
                if self.cluster is None or node_id not in self.cluster.brokers:
                    await self.refresh_metadata(topics=[])
                self._coordinators[group_id] = node_id
                return node_id
            retriable = code in (ErrorCode.coordinator_not_available, ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator)
            if not retriable or self.clock.monotonic() > deadline:
                raise KafkaError(code, f"group '{group_id}': no coordinator ({entry.error_message or code.name.upper()})")
            await asyncio.sleep(COORDINATOR_RETRY_S)

    def forget_coordinator(self, group_id: str) -> None:
        self._coordinators.pop(group_id, None)
