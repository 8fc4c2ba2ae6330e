"""Follower replication: one fetcher per leader broker copies the partitions this broker follows.

Each fetcher keeps one connection (the project's own client) to its leader and loops: a Fetch
(replica_id = this broker, from v15 in replica_state) for all its partitions, each from the
follower's log end offset with the epoch of its last batch (`last_fetched_epoch`); the leader
records that position, which is how the high watermark moves and acks=all completes. The answer
is appended as it came (offsets and leader epochs kept), and the high watermark learned. When
the leader says the follower's log diverged (`diverging_epoch`), the follower truncates to where
its own copy of that epoch ends, or to the leader's end of it if smaller: no divergent tail
survives a leader change (KIP-595's check, as Kafka's followers do since 2.7). A partition whose
leader answers NOT_LEADER_OR_FOLLOWER or a fenced epoch waits for the next metadata image; a
broken connection is retried after replica.fetch.backoff.ms. A throttled partition out of the ISR
(quota.py) is left out of the fetch while the follower quota is used up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from odradek.client.connection import BrokerConnection
from odradek.client.errors import ClientError, ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

log = logging.getLogger(__name__)

FETCH = 1
CONNECT_TIMEOUT_S = 10.0
THROTTLED_PAUSE_S = 0.1


@dataclass
class FetcherConfig:
    node_id: int
    max_wait_ms: int = 500
    min_bytes: int = 1
    max_bytes: int = 10 * 1024 * 1024
    partition_max_bytes: int = 1024 * 1024
    backoff_ms: int = 1000
    request_timeout_s: float = 30.0
    security: object = None  # the client's ClientSecurity towards the inter-broker listener (None: PLAINTEXT)


class LeaderFetcher:
    """Copies partitions from one leader. Runs as one task on the event loop."""

    def __init__(self, replicas, leader_id: int, host: str, port: int, config: FetcherConfig) -> None:
        self.replicas = replicas
        self.leader_id = leader_id
        self.host = host
        self.port = port
        self.config = config
        self.partitions: dict[TopicPartition, int] = {}  # partition -> the leader epoch we follow
        self._connection: BrokerConnection | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def add(self, tp: TopicPartition, leader_epoch: int) -> None:
        self.partitions[tp] = leader_epoch
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"odradek-fetcher-{self.leader_id}")

    def remove(self, tp: TopicPartition) -> None:
        self.partitions.pop(tp, None)

    async def stop(self) -> None:
        """Stop the task for good. One cancel is not enough on Python 3.11: asyncio.wait_for (every
        request's timeout) swallows a cancellation that arrives as its answer does, and the loop
        would go on fetching; so the loop also checks a flag, and the cancel is repeated."""
        self._stopping = True
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.debug("Fetcher for broker %d ended with %r", self.leader_id, task.exception())
        await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _run(self) -> None:
        """Fetch while there are partitions; idle (no connection held) while there are none. The
        task does not end when the last partition goes: add() right then would find it still
        closing its connection, start no other, and nothing would fetch again."""
        while not self._stopping:
            if not self.partitions:
                await self._close()
                if not self.partitions:  # none came while closing
                    self._wake.clear()
                    await self._wake.wait()
                continue
            try:
                if self._connection is None or not self._connection.connected:
                    self._connection = await BrokerConnection(
                        self.host, self.port, client_id=f"broker-{self.config.node_id}-fetcher-{self.leader_id}",
                        node_id=self.leader_id, security=self.config.security,
                    ).connect(CONNECT_TIMEOUT_S)
                await self._fetch_once()
            except asyncio.CancelledError:
                raise
            except (ClientError, KafkaError, OSError) as exc:
                log.info("Fetching from broker %d (%s:%d) failed: %s; retrying in %d ms",
                         self.leader_id, self.host, self.port, exc, self.config.backoff_ms)
                await self._close()
                await asyncio.sleep(self.config.backoff_ms / 1000)
            except Exception:
                log.exception("Fetcher for broker %d failed; retrying in %d ms", self.leader_id, self.config.backoff_ms)
                await self._close()
                await asyncio.sleep(self.config.backoff_ms / 1000)
        await self._close()

    async def _fetch_once(self) -> None:
        connection = self._connection
        assert connection is not None
        version = connection.version_for(FETCH, max_version=17, min_version=12)
        wanted = []
        throttled = 0
        for tp, leader_epoch in list(self.partitions.items()):
            partition = self.replicas.partition(tp)
            if partition is None or partition.is_leader:
                self.partitions.pop(tp, None)
                continue
            if self.replicas.follower_fetch_throttled(partition):
                throttled += 1
                continue
            wanted.append((tp, leader_epoch, partition))
        if not wanted:
            if throttled:
                await asyncio.sleep(THROTTLED_PAUSE_S)  # every partition waits for the follower quota
            return
        image = self.replicas.image
        by_topic: dict[str, list[dict]] = {}
        ids = {}
        for tp, leader_epoch, partition in wanted:
            by_topic.setdefault(tp.topic, []).append({
                "partition": tp.partition,
                "current_leader_epoch": leader_epoch,
                "fetch_offset": partition.log_end_offset,
                "last_fetched_epoch": partition.log.leader_epochs.latest_epoch,
                "log_start_offset": partition.log_start_offset,
                "partition_max_bytes": self.config.partition_max_bytes,
            })
            topic = image.topic(tp.topic) if image is not None else None
            if topic is not None:
                ids[tp.topic] = topic.topic_id
        if version >= 13 and any(name not in ids for name in by_topic):
            version = 12  # a topic we cannot name by id yet
        values = {
            "replica_id": self.config.node_id,
            "replica_state": {"replica_id": self.config.node_id, "replica_epoch": -1},
            "max_wait": self.config.max_wait_ms,
            "min_bytes": self.config.min_bytes,
            "max_bytes": self.config.max_bytes,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {"topic": name, "topic_id": ids.get(name), "partitions": partitions}
                for name, partitions in by_topic.items()
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        }
        self._wake.clear()
        asked = {tp: leader_epoch for tp, leader_epoch, _ in wanted}
        response = await connection.request(
            FETCH, values, max_version=version, min_version=version,
            timeout_s=self.config.request_timeout_s + self.config.max_wait_ms / 1000,
        )
        top = ErrorCode(int(response.error_code))
        if top != ErrorCode.none:
            raise KafkaError(top, f"fetch from broker {self.leader_id}: {top.name.upper()}")
        self.replicas.heard_from_leader()
        names = {topic_id: name for name, topic_id in ids.items()}
        for topic in response.responses:
            name = getattr(topic, "topic", None) or names.get(getattr(topic, "topic_id", None))
            for data in topic.partitions:
                tp = TopicPartition(name, data.partition_index)
                self._handle(tp, data, asked.get(tp))

    def _handle(self, tp: TopicPartition, data, asked_epoch: int | None = None) -> None:
        partition = self.replicas.partition(tp)
        if partition is None or partition.is_leader or tp not in self.partitions:
            return
        error = ErrorCode(int(data.error_code))
        if error == ErrorCode.none:
            diverging = getattr(data, "diverging_epoch", None)
            if diverging is not None and diverging.epoch >= 0 and diverging.end_offset >= 0:
                self.replicas.truncate_diverged(partition, diverging.epoch, diverging.end_offset)
                return
            if data.records:
                self.replicas.append_from_leader(partition, data.records)
                self.replicas.fetched_as_follower(partition, len(data.records))
            partition.set_high_watermark_from_leader(data.high_watermark)
            self.replicas.waiters.notify(tp)
        elif error == ErrorCode.offset_out_of_range:
            self.replicas.handle_out_of_range(partition, data.log_start_offset, data.high_watermark)
        elif error in (ErrorCode.not_leader_or_follower, ErrorCode.fenced_leader_epoch, ErrorCode.unknown_leader_epoch):
            # The leader moved on, or we are ahead of its metadata: the next image decides.
            if error != ErrorCode.unknown_leader_epoch and self.partitions.get(tp) == asked_epoch:
                self.partitions.pop(tp, None)  # (not if it was followed again, at a newer epoch, meanwhile)
                log.info("Stopped fetching %s from broker %d (%s): waiting for newer metadata", tp, self.leader_id, error.name.upper())
                self.replicas.metadata_behind(tp)
        elif error == ErrorCode.unknown_topic_or_partition:
            pass  # the leader has not created it yet: try again next round
        else:
            log.warning("Fetching %s from broker %d: %s", tp, self.leader_id, error.name.upper())


class ReplicaFetcherManager:
    """The fetchers of this broker, one per leader, created and stopped as leadership moves."""

    def __init__(self, replicas, config: FetcherConfig) -> None:
        self.replicas = replicas
        self.config = config
        self._fetchers: dict[int, LeaderFetcher] = {}
        self._stopped = False

    def follow(self, tp: TopicPartition, leader_id: int, leader_epoch: int, host: str, port: int) -> None:
        if self._stopped:
            return
        for other_id, fetcher in self._fetchers.items():
            if other_id != leader_id:
                fetcher.remove(tp)
        fetcher = self._fetchers.get(leader_id)
        if fetcher is not None and (fetcher.host, fetcher.port) != (host, port):
            fetcher.remove(tp)
            fetcher = None
        if fetcher is None:
            fetcher = self._fetchers[leader_id] = LeaderFetcher(self.replicas, leader_id, host, port, self.config)
        fetcher.add(tp, leader_epoch)

    def unfollow(self, tp: TopicPartition) -> None:
        for fetcher in self._fetchers.values():
            fetcher.remove(tp)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def following(self, tp: TopicPartition) -> int | None:
        for leader_id, fetcher in self._fetchers.items():
            if tp in fetcher.partitions:
                return leader_id
        return None

    async def stop(self) -> None:
        """Stop fetching for good (a broker in controlled shutdown: Kafka's StopReplica). A
        follower that kept fetching would be added back to the ISRs the controller is taking
        it out of, each time bumping the leader epoch, for as long as the shutdown lasts."""
        self._stopped = True
        fetchers, self._fetchers = list(self._fetchers.values()), {}
        for fetcher in fetchers:
            await fetcher.stop()
