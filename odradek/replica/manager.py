"""The partitions this broker hosts, and the append/read entry points the handlers use.

It maps TopicPartition -> Partition, creates and drops partition logs through the log manager,
applies leadership (leader or follower, epoch, replicas, ISR), keeps the high watermarks and
checkpoints them (`replication-offset-checkpoint` in each log dir), answers followers' fetches,
and wakes parked fetches and acks=all produces when a log grows or a high watermark moves.

In cluster mode `apply_image` follows every new metadata image: it creates the logs of partitions
assigned here (after start-up in a worker thread, then applies the image to them: a topic of
thousands of partitions is seconds of files), makes each partition leader or follower at the
image's leader epoch (never going back to an older one), points the fetchers at the leaders, and
deletes the logs of partitions no longer assigned here. A topic whose TopicImage is the one it
applied last (and brokers unchanged) is skipped. As leader it shrinks and expands ISRs through
`isr_writer` (a conditional write of the partition state; the result comes back in the next image).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from odradek.log.checkpoint import OffsetCheckpointFile
from odradek.log.log_config import LogConfig
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import BATCH_HEADER_SIZE, decode_records, read_batch_header
from odradek.protocol.topic_partition import TopicPartition
from odradek.replica.partition import AppendResult, Partition
from odradek.replica.purgatory import AppendWaiters
from odradek.replica.quota import ReplicationQuota, throttled_partitions
from odradek.replica.topic_stats import BrokerTopicStats

log = logging.getLogger(__name__)

HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint"


class ReplicaManager:
    def __init__(self, log_manager, node_id: int = 0, *, clock=None) -> None:
        self.log_manager = log_manager
        self.node_id = node_id
        self.clock = clock if clock is not None else log_manager.clock
        self.waiters = AppendWaiters()
        self._partitions: dict[TopicPartition, Partition] = {}
        self._checkpointed_high_watermarks: dict[TopicPartition, int] | None = None
        # called with (partition, is_leader) whenever this broker starts or stops leading one
        self.leadership_listeners: list[Callable[[Partition, bool], None]] = []
        # called with (partition, producer id, committed) once a transaction marker is replicated
        self.marker_listeners: list[Callable[[TopicPartition, int, bool], None]] = []
        # cluster mode (configure_cluster): the image, fetchers, topic configs and ISR writes
        self.image = None
        self.fetchers = None
        self.listener_name = "PLAINTEXT"
        self._config_values_for: Callable[[str], dict] | None = None
        self._isr_writer = None
        self._isr_changes_in_flight: set[TopicPartition] = set()
        self._state_reader = None  # reads one partition's state again from the metadata store
        self._state_reads_in_flight: set[TopicPartition] = set()
        self._applied_once = False
        self._creating: set[TopicPartition] = set()  # new replicas whose files a worker thread makes
        self._creations: set[asyncio.Task] = set()
        self._stopping = False  # stop_creating() was called: no new log is made or adopted
        self._changes: dict[str, list] = {"leading": [], "following": []}  # of the image being applied
        self._topic_configs: dict[str, dict] = {}  # the overrides last applied, per topic
        # per topic: the TopicImage applied in full and the partitions it assigns here
        self._applied: dict[str, tuple[object, set[TopicPartition]]] = {}
        self.last_peer_contact = time.monotonic()  # a follower fetched from us, or we from a leader
        self.leader_quota = ReplicationQuota()
        self.follower_quota = ReplicationQuota()
        self.topic_stats = BrokerTopicStats()

    # -- lookup ----------------------------------------------------------------------------

    def partition(self, tp: TopicPartition) -> Partition | None:
        return self._partitions.get(tp)

    def leader_partition(self, tp: TopicPartition, current_leader_epoch: int = -1) -> Partition:
        """The partition if we lead it, checking the client's idea of the leader epoch."""
        partition = self._partitions.get(tp)
        if partition is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"this broker does not host {tp}")
        partition.check_leader(current_leader_epoch)
        return partition

    def readable_partition(self, tp: TopicPartition, current_leader_epoch: int = -1, *, allow_follower: bool) -> Partition:
        """The partition a consumer may read here: the leader's, or (KIP-392, Fetch v11+) a
        follower's up to its high watermark."""
        partition = self._partitions.get(tp)
        if partition is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"this broker does not host {tp}")
        if allow_follower and not partition.is_leader and partition.leader_epoch >= 0:
            if current_leader_epoch >= 0 and current_leader_epoch != partition.leader_epoch:
                code = ErrorCode.unknown_leader_epoch if current_leader_epoch > partition.leader_epoch else ErrorCode.fenced_leader_epoch
                raise KafkaError(code, f"leader epoch {current_leader_epoch} is not ours ({partition.leader_epoch})")
            return partition
        partition.check_leader(current_leader_epoch)
        return partition

    def partitions(self) -> list[Partition]:
        return list(self._partitions.values())

    # -- data path -------------------------------------------------------------------------

    def append_records(self, tp: TopicPartition, records, *, required_acks: int = 1) -> AppendResult:
        partition = self._partitions.get(tp)
        try:
            if partition is None:
                raise KafkaError(ErrorCode.unknown_topic_or_partition, f"this broker does not host {tp}")
            result = partition.append_records(records, required_acks=required_acks)
        except KafkaError:
            self.topic_stats.produce_failed(tp.topic if partition is not None else None)
            raise
        self.topic_stats.appended(tp.topic, result.last_offset - result.base_offset + 1, len(records))
        self.waiters.notify(tp)
        return result

    def first_transactional_write(self, tp: TopicPartition, records) -> tuple[int, int] | None:
        """(producer id, epoch) when `records` open a producer's transaction on a partition this
        broker leads (its first transactional batch there): the write needs verifying (KIP-890)."""
        partition = self._partitions.get(tp)
        if partition is None or not partition.is_leader or records is None or len(records) < BATCH_HEADER_SIZE:
            return None
        header = read_batch_header(records, 0)
        if not header.is_transactional or header.is_control or header.producer_id < 0:
            return None
        entry = partition.producers.entry(header.producer_id)
        if entry is not None and entry.current_txn_first_offset >= 0 and entry.epoch == header.producer_epoch:
            return None  # its transaction here is open already (a new epoch is verified again, as in Kafka)
        return header.producer_id, header.producer_epoch

    def is_replicated(self, tp: TopicPartition, offset: int) -> bool:
        """acks=all: whether the ISR has everything below `offset` (the high watermark reached it).
        NOT_LEADER_OR_FOLLOWER if leadership moved; NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR
        shrank below min.insync.replicas meanwhile."""
        partition = self._partitions.get(tp)
        if partition is None or not partition.is_leader:
            raise KafkaError(ErrorCode.not_leader_or_follower, f"leadership of {tp} moved before the write was replicated")
        if partition.high_watermark < offset:
            return False
        if len(partition.isr) < partition.min_insync_replicas:
            raise KafkaError(
                ErrorCode.not_enough_replicas_after_append,
                f"{tp} was written but has {len(partition.isr)} in-sync replicas, below min.insync.replicas "
                f"{partition.min_insync_replicas}",
            )
        return True

    async def wait_for_high_watermark(self, tp: TopicPartition, offset: int, timeout_s: float) -> None:
        """Return once is_replicated(tp, offset); REQUEST_TIMED_OUT after `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.is_replicated(tp, offset):
            remaining = deadline - loop.time()
            if remaining <= 0 or self.waiters.closed:
                raise KafkaError(ErrorCode.request_timed_out, f"{tp}: the in-sync replicas did not acknowledge offset {offset - 1} in time")
            await self.waiters.wait([tp], remaining)

    def read_records(self, tp: TopicPartition, *, chunk_bytes: int = 1 << 20):
        """Every record of a partition up to its log end, decoded (tools)."""
        for header, records in self.read_batches(tp, chunk_bytes=chunk_bytes):
            if not header.is_control:
                yield from records

    def read_batches(self, tp: TopicPartition, *, chunk_bytes: int = 1 << 20):
        """(header, decoded records) of every batch of a partition up to its log end, control
        batches included: a coordinator's replay when this broker becomes the partition's leader.
        The leader's whole log counts, as in Kafka: a new leader's high watermark may lag behind
        records its predecessor had already acknowledged (it learns it from followers' fetches),
        and a replay stopping there would lose them (a transaction seen as never begun)."""
        partition = self._partitions.get(tp)
        if partition is None:
            return
        offset = partition.log_start_offset
        while offset < partition.log_end_offset:
            data = partition.log.read(offset, chunk_bytes, partition.log_end_offset)
            if not data:
                return
            position = 0
            while position + BATCH_HEADER_SIZE <= len(data):
                header = read_batch_header(data, position)
                if position + header.size > len(data):
                    break
                records = [record for record in decode_records(data, header) if record.offset >= offset]
                yield header, records
                position += header.size
                offset = header.next_offset

    async def write_txn_marker(self, tp: TopicPartition, producer_id: int, producer_epoch: int, committed: bool,
                               coordinator_epoch: int, timeout_s: float) -> None:
        """End a producer's transaction on a partition this broker leads: append the marker, wait
        until the in-sync replicas have it, then tell `marker_listeners` (the group coordinator
        makes transactional offset commits visible). KafkaError if it cannot be written."""
        partition = self._partitions.get(tp)
        if partition is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"this broker does not host {tp}")
        result = partition.append_marker(producer_id, producer_epoch, committed, coordinator_epoch, self.clock.now_ms())
        self.waiters.notify(tp)
        await self.wait_for_high_watermark(tp, result.last_offset + 1, timeout_s)
        for listener in list(self.marker_listeners):
            listener(tp, producer_id, committed)

    def fetch_for_follower(self, tp: TopicPartition, replica_id: int, fetch_offset: int, max_bytes: int,
                           current_leader_epoch: int = -1, last_fetched_epoch: int = -1,
                           min_one_batch: bool = True) -> tuple[Partition, bytes, tuple[int, int] | None]:
        """A follower's fetch: (partition, records, diverging epoch). A follower whose log left
        ours (last_fetched_epoch) is told where (and nothing is recorded of it); otherwise its
        position is recorded (which may move the high watermark and wake acks=all produces, or
        bring it back into the ISR) and it gets batches up to the log end."""
        partition = self.leader_partition(tp, current_leader_epoch)
        self.last_peer_contact = time.monotonic()
        diverging = partition.diverging_epoch(last_fetched_epoch, fetch_offset)
        if diverging is not None:
            return partition, b"", diverging
        if partition.update_follower_fetch_state(replica_id, fetch_offset, self.clock.now_ms()):
            self.waiters.notify(tp)
        if partition.can_join_isr(replica_id) and self._registered(replica_id):
            self._change_isr(partition, partition.isr | {replica_id}, f"broker {replica_id} caught up")
        if partition.leader_throttled and replica_id not in partition.isr and self.leader_quota.is_exceeded():
            return partition, b"", None  # a throttled replica waits for the rate to come down
        records = partition.read_for_follower(fetch_offset, max_bytes, min_one_batch)
        if partition.leader_throttled:
            self.leader_quota.record(len(records))
        return partition, records, None

    def _registered(self, node_id: int) -> bool:
        """A broker the cluster knows alive (Kafka adds only those to an ISR; a broker between
        sessions would be removed again by the controller at once)."""
        return self.image is None or node_id in self.image.brokers

    # -- followers (cluster mode) ------------------------------------------------------------

    def heard_from_leader(self) -> None:
        self.last_peer_contact = time.monotonic()

    def append_from_leader(self, partition: Partition, records) -> None:
        partition.append_as_follower(records)
        self.topic_stats.replicated_in(partition.topic_partition.topic, len(records))
        self.waiters.notify(partition.topic_partition)

    def truncate_diverged(self, partition: Partition, epoch: int, end_offset: int) -> None:
        """The leader says our log left its history at `epoch`, which ends at `end_offset` there:
        cut ours where our copy of that epoch ends, or at the leader's end if that is smaller."""
        local_epoch, local_end = partition.log.leader_epochs.end_offset_for(epoch, partition.log_end_offset)
        target = min(end_offset, local_end) if local_end >= 0 else min(end_offset, partition.high_watermark)
        target = max(target, 0)
        if target < partition.log_end_offset:
            log.info("Truncating %s from %d to %d: it diverged from the leader at epoch %d",
                     partition.topic_partition, partition.log_end_offset, target, epoch)
            partition.log.truncate_to(target)
            partition.make_follower(partition.leader_id, partition.leader_epoch, partition.replicas, partition.isr,
                                    partition_epoch=partition.partition_epoch)

    def handle_out_of_range(self, partition: Partition, leader_log_start: int, leader_high_watermark: int) -> None:
        """Our fetch offset is outside the leader's log: below its start (retention), restart
        empty there; above its end (after an unclean election), cut back to its high watermark."""
        if partition.log_end_offset < leader_log_start:
            log.info("Restarting %s at the leader's log start %d (ours ended at %d)",
                     partition.topic_partition, leader_log_start, partition.log_end_offset)
            partition.log.truncate_fully_and_start_at(leader_log_start)
        elif leader_high_watermark >= 0 and partition.log_end_offset > leader_high_watermark:
            log.warning("Truncating %s from %d to the leader's high watermark %d",
                        partition.topic_partition, partition.log_end_offset, leader_high_watermark)
            partition.log.truncate_to(leader_high_watermark)

    # -- ISR (cluster mode leaders) ----------------------------------------------------------

    def shrink_isrs(self, lag_time_max_ms: int) -> None:
        """Drop followers that have not caught up within replica.lag.time.max.ms from the ISRs
        this broker leads (call periodically)."""
        now = self.clock.now_ms()
        for partition in list(self._partitions.values()):
            if partition.is_leader:
                lagging = partition.lagging_followers(now, lag_time_max_ms)
                if lagging:
                    self._change_isr(partition, partition.isr - lagging, f"{sorted(lagging)} fell behind")

    def _change_isr(self, partition: Partition, isr: frozenset, reason: str) -> None:
        tp = partition.topic_partition
        if self._isr_writer is None or tp in self._isr_changes_in_flight or not isr:
            return
        self._isr_changes_in_flight.add(tp)
        task = asyncio.get_running_loop().create_task(self._write_isr(partition, frozenset(isr), reason))
        task.add_done_callback(lambda _t: self._isr_changes_in_flight.discard(tp))

    async def _write_isr(self, partition: Partition, isr: frozenset, reason: str) -> None:
        epoch, expected = partition.leader_epoch, partition.partition_epoch
        try:
            version = await self._isr_writer(partition.topic_partition, partition.node_id, epoch, sorted(isr), expected)
        except Exception as exc:  # noqa: BLE001 - ZooKeeper unreachable: the ISR stays, so does the high watermark
            log.warning("Could not change the ISR of %s (%s): %s", partition.topic_partition, reason, exc)
            return
        if version is None:
            log.info("ISR change of %s refused: its state moved on (a new leader or ISR); waiting for it", partition.topic_partition)
            return
        if partition.is_leader and partition.leader_epoch == epoch and partition.partition_epoch == expected:
            log.info("ISR of %s is now %s (%s)", partition.topic_partition, sorted(isr), reason)
            if len(isr) < len(partition.isr):
                self.topic_stats.isr_shrinks += 1
            elif len(isr) > len(partition.isr):
                self.topic_stats.isr_expands += 1
            partition.set_isr(isr, version)
            self.waiters.notify(partition.topic_partition)

    async def flush_if_due(self, tp: TopicPartition) -> None:
        """`flush.messages` reached: fsync in a worker thread before the append is acknowledged."""
        partition = self._partitions.get(tp)
        if partition is not None and partition.log.flush_due:
            await asyncio.to_thread(partition.log.flush)

    def delete_records(self, tp: TopicPartition, offset: int) -> int:
        return self.leader_partition(tp).delete_records(offset)

    async def wait_for_append(self, partitions: list[TopicPartition], timeout_s: float) -> set[TopicPartition]:
        """The partitions appended to (or whose high watermark moved) while waiting."""
        return await self.waiters.wait(partitions, timeout_s)

    # -- log dirs --------------------------------------------------------------------------

    def log_dir_stats(self):
        """DescribeLogDirs: see LogManager.log_dir_stats."""
        return self.log_manager.log_dir_stats()

    async def checkpoint_offsets(self) -> None:
        """Persist log start offsets, recovery points and high watermarks now (in a worker
        thread): DeleteRecords answers only after this."""
        await asyncio.to_thread(self.checkpoint_all)

    def checkpoint_all(self) -> None:
        self.log_manager.checkpoint_recovery_points()
        self.checkpoint_high_watermarks()

    def checkpoint_high_watermarks(self) -> None:
        """`replication-offset-checkpoint` of every online log dir (Kafka's format and name)."""
        by_dir: dict[Path, dict[TopicPartition, int]] = {d: {} for d in self.log_manager.log_dirs}
        for tp, partition in list(self._partitions.items()):
            log_dir = self.log_manager.log_dir_of(tp)
            if log_dir is not None:
                by_dir.setdefault(log_dir, {})[tp] = partition.high_watermark
        for log_dir, offsets in by_dir.items():
            if log_dir in self.log_manager.offline_dirs:
                continue
            try:
                OffsetCheckpointFile(log_dir / HIGH_WATERMARK_CHECKPOINT).write(offsets)
            except OSError as exc:
                log.error("writing %s in %s failed: %s", HIGH_WATERMARK_CHECKPOINT, log_dir, exc)

    def _checkpointed_high_watermark(self, tp: TopicPartition) -> int | None:
        if self._checkpointed_high_watermarks is None:
            values: dict[TopicPartition, int] = {}
            for log_dir in self.log_manager.log_dirs:
                try:
                    values.update(OffsetCheckpointFile(log_dir / HIGH_WATERMARK_CHECKPOINT).read())
                except (OSError, ValueError) as exc:
                    log.warning("ignoring %s in %s: %s", HIGH_WATERMARK_CHECKPOINT, log_dir, exc)
            self._checkpointed_high_watermarks = values
        return self._checkpointed_high_watermarks.get(tp)

    # -- cluster mode ------------------------------------------------------------------------

    def configure_cluster(self, *, fetchers, config_values_for, isr_writer, listener_name: str,
                          state_reader=None) -> None:
        self.fetchers = fetchers
        self._config_values_for = config_values_for
        self._isr_writer = isr_writer
        self.listener_name = listener_name
        self._state_reader = state_reader

    def metadata_behind(self, tp: TopicPartition) -> None:
        """A leader answered this follower FENCED_LEADER_EPOCH or NOT_LEADER_OR_FOLLOWER: our image
        is older than the partition's state. Read that state again (once at a time per partition)
        so that the fetcher comes back even if the change's notification was missed."""
        if self._state_reader is None or tp in self._state_reads_in_flight:
            return
        self._state_reads_in_flight.add(tp)

        async def read() -> None:
            try:
                await asyncio.sleep(0.2)  # the notification usually arrives first
                await self._state_reader(tp)
            except Exception as exc:  # noqa: BLE001 - ZooKeeper unreachable: the next answer retries
                log.info("Could not read the state of %s again: %s", tp, exc)
            finally:
                self._state_reads_in_flight.discard(tp)

        asyncio.get_running_loop().create_task(read())

    def apply_image(self, image) -> None:
        """Follow a new metadata image (see the module docstring). The first one, at start-up,
        sets aside logs of unknown topics as strays; later ones delete what the cluster deleted."""
        same_brokers = self.image is not None and self.image.brokers == image.brokers
        self.image = image
        first = not self._applied_once
        self._applied_once = True
        self._changes = {"leading": [], "following": []}
        assigned: set[TopicPartition] = set()
        uncreated: list[TopicPartition] = []
        for topic in image.topics.values():
            applied = self._applied.get(topic.name)
            if same_brokers and applied is not None and applied[0] is topic:
                assigned |= applied[1]  # an image shares the TopicImage of a topic that did not change
                continue
            if self._topic_configs.get(topic.name, topic.configs) != topic.configs:
                self._reconfigure_topic(topic.name)
            self._topic_configs[topic.name] = dict(topic.configs)
            here: set[TopicPartition] = set()
            complete = True
            for index, registration in enumerate(topic.partitions):
                if self.node_id not in registration.replicas:
                    continue
                tp = TopicPartition(topic.name, index)
                here.add(tp)
                if not first and tp not in self._partitions and self.log_manager.get_log(tp) is None:
                    uncreated.append(tp)
                    complete = False
                    continue
                try:
                    self._apply_partition(tp, registration, image)
                except Exception:
                    complete = False
                    log.exception("Applying the metadata of %s failed", tp)
            assigned |= here
            if complete:
                self._applied[topic.name] = (topic, here)
            else:
                self._applied.pop(topic.name, None)
        for name in [name for name in self._applied if name not in image.topics]:
            del self._applied[name]
        for tp in [tp for tp in self._partitions if tp not in assigned]:
            self._drop(tp)
        uncreated = [tp for tp in uncreated if tp not in self._creating]
        if uncreated:
            self._creating.update(uncreated)
            task = asyncio.get_running_loop().create_task(self._create_replicas(uncreated))
            self._creations.add(task)
            task.add_done_callback(self._creations.discard)
        for name in [name for name in self._topic_configs if name not in image.topics]:
            del self._topic_configs[name]
        for role, changed in self._changes.items():
            if changed:
                names = ", ".join(f"{tp} (epoch {epoch})" for tp, epoch in changed[:5]) + (", ..." if len(changed) > 5 else "")
                log.info("Now %s %d partition(s): %s", role, len(changed), names)
        if first:
            strays = [tp for tp in self.log_manager.logs if tp not in self._partitions]
            for tp in strays:
                self.log_manager.mark_stray(tp)
            if strays:
                log.warning("Kept %d partition logs the cluster does not assign here, renamed *-stray and not loaded",
                            len(strays))

    def _apply_partition(self, tp: TopicPartition, registration, image) -> None:
        partition = self._partitions.get(tp)
        if partition is None:
            config_values = self._config_values_for(tp.topic)
            partition_log = self.log_manager.get_log(tp) or self.log_manager.create_log(tp, LogConfig.from_topic_config(config_values))
            partition = Partition(tp, partition_log, self.node_id, leader_epoch=-1)
            self._apply_topic_configs(partition, config_values)
            partition.make_follower(-1, -1, registration.replicas, registration.isr,
                                    high_watermark=self._checkpointed_high_watermark(tp))
            self._partitions[tp] = partition
        if registration.leader_epoch < partition.leader_epoch:
            return  # an older image than what we acted on
        newer = registration.leader_epoch > partition.leader_epoch
        if registration.leader == self.node_id:
            if newer or not partition.is_leader:
                self.fetchers.unfollow(tp)
                partition.make_leader(
                    registration.leader_epoch, registration.replicas, registration.isr,
                    partition_epoch=registration.partition_epoch, now_ms=self.clock.now_ms(),
                )
                self._changes["leading"].append((tp, registration.leader_epoch))
                self._tell_leadership(partition, True)
                self.waiters.notify(tp)
            else:
                if tuple(registration.replicas) != partition.replicas:
                    partition.set_replicas(registration.replicas, self.clock.now_ms())
                if registration.partition_epoch != partition.partition_epoch:
                    partition.set_isr(registration.isr, registration.partition_epoch)
                    self.waiters.notify(tp)
            return
        was_leader = partition.is_leader
        leader_broker = image.brokers.get(registration.leader)
        endpoint = leader_broker.endpoint(self.listener_name) if leader_broker is not None else None
        # Stopped fetchers (a controlled shutdown) follow nothing: that is no reason to follow again.
        refollow = not self.fetchers.stopped and self.fetchers.following(tp) != (registration.leader if endpoint else None)
        if newer or was_leader or refollow:
            partition.make_follower(registration.leader, registration.leader_epoch, registration.replicas,
                                    registration.isr, partition_epoch=registration.partition_epoch)
            self._changes["following"].append((tp, registration.leader_epoch))
            if was_leader:
                self._tell_leadership(partition, False)
                self.waiters.notify(tp)
            if endpoint is not None:
                self.fetchers.follow(tp, registration.leader, registration.leader_epoch, endpoint.host, endpoint.port)
            else:
                self.fetchers.unfollow(tp)
        else:
            partition.replicas = tuple(registration.replicas)
            partition.isr = frozenset(registration.isr)
            partition.partition_epoch = registration.partition_epoch

    async def _create_replicas(self, tps: list[TopicPartition]) -> None:
        """Make the logs of new replicas in a worker thread, then apply the latest image to them.
        A log whose partition the image no longer assigns here (its topic was deleted meanwhile)
        is deleted again."""
        opened, error = [], None
        try:
            configs = {topic: LogConfig.from_topic_config(self._config_values_for(topic))
                       for topic in {tp.topic for tp in tps}}
            opened, error = await self._open_new_logs(tps, lambda tp: configs[tp.topic])
        except KafkaError as exc:  # every log dir offline
            error = exc
        except Exception:
            log.exception("Creating the logs of %d new partition(s) failed", len(tps))
        finally:
            self._creating.difference_update(tps)
        adopted = [tp for tp, _ in opened]
        if error is not None:
            log.error("Could not create the logs of %d new partition(s): %s", len(tps) - len(adopted), error)
        if self._stopping:
            return
        unassigned = [tp for tp in adopted if not self._assigned_here(tp)]
        for tp in unassigned:
            self.log_manager.delete_log(tp)
        if unassigned:
            self._remove_deleted_in_background()
        if len(adopted) > len(unassigned):
            self.apply_image(self.image)

    async def stop_creating(self) -> None:
        """Before the log manager shuts down: the worker threads stop making new logs (the next
        start makes the rest, as empty logs) and nothing more is adopted."""
        self._stopping = True
        if self._creations:
            await asyncio.wait(set(self._creations))

    def _assigned_here(self, tp: TopicPartition) -> bool:
        registration = self.image.partition(tp) if self.image is not None else None
        return registration is not None and self.node_id in registration.replicas

    async def _open_new_logs(self, tps: list[TopicPartition], config_of: Callable[[TopicPartition], LogConfig]):
        """The logs of new partitions, their files made in a worker thread and adopted by the log
        manager on the loop: [(tp, log)] for those made, and the error that stopped the rest."""
        log_manager = self.log_manager
        placed = log_manager.place(tps)

        def open_all():
            opened = []
            try:
                for tp, log_dir in placed:
                    if self._stopping:
                        break
                    opened.append((tp, log_dir, log_manager.open_new_log(tp, log_dir, config_of(tp))))
            except KafkaError as error:
                return opened, error
            return opened, None

        opened, error = await asyncio.to_thread(open_all)
        if self._stopping:
            for _, _, partition_log in opened:
                partition_log.close()
            return [], None
        return [(tp, log_manager.adopt(tp, partition_log, log_dir)) for tp, log_dir, partition_log in opened], error

    def _reconfigure_topic(self, topic: str) -> None:
        """A topic's configs changed (AlterConfigs on any broker): apply them to its partitions here."""
        config_values = self._config_values_for(topic)
        config = LogConfig.from_topic_config(config_values)
        for tp, partition in list(self._partitions.items()):
            if tp.topic == topic:
                partition.log.set_config(config)
                self._apply_topic_configs(partition, config_values)
        log.info("Applied the new configs of topic %s to its partitions here", topic)

    def _drop(self, tp: TopicPartition) -> None:
        """This broker no longer hosts `tp` (topic deleted, or reassigned away): stop and delete."""
        partition = self._partitions.pop(tp)
        if self.fetchers is not None:
            self.fetchers.unfollow(tp)
        if partition.is_leader:
            self._tell_leadership(partition, False)
        self.log_manager.delete_log(tp)
        self.waiters.notify(tp)
        self._remove_deleted_in_background()
        log.info("Deleted the log of %s: it is no longer assigned to this broker", tp)

    # -- lifecycle -------------------------------------------------------------------------

    def create_partitions(self, record, config_values: dict) -> None:
        config = LogConfig.from_topic_config(config_values)
        for index in range(record.partitions):
            tp = TopicPartition(record.name, index)
            if tp not in self._partitions:
                self._add(tp, self.log_manager.create_log(tp, config), config_values)

    async def create_partitions_off_loop(self, record, config_values: dict) -> None:
        """create_partitions with the logs' files made in a worker thread: 10,000 new partitions
        are many seconds of directories and files, and the broker keeps serving meanwhile."""
        config = LogConfig.from_topic_config(config_values)
        new = [tp for tp in (TopicPartition(record.name, index) for index in range(record.partitions))
               if tp not in self._partitions]
        if not new:
            return
        opened, error = await self._open_new_logs(new, lambda tp: config)
        for tp, partition_log in opened:
            if tp not in self._partitions:
                self._add(tp, partition_log, config_values)
        if error is not None:
            raise error

    def update_configs(self, record, config_values: dict) -> None:
        """Apply a topic's new effective configs to its live partitions."""
        config = LogConfig.from_topic_config(config_values)
        for index in range(record.partitions):
            partition = self._partitions.get(TopicPartition(record.name, index))
            if partition is not None:
                partition.log.set_config(config)
                self._apply_topic_configs(partition, config_values)

    def delete_partitions(self, record) -> None:
        for index in range(record.partitions):
            tp = TopicPartition(record.name, index)
            partition = self._partitions.pop(tp, None)
            if partition is not None:
                self._tell_leadership(partition, False)
                self.log_manager.delete_log(tp)
            self.waiters.notify(tp)
        self.topic_stats.forget(record.name)
        self._remove_deleted_in_background()

    def _remove_deleted_in_background(self) -> None:
        """Renamed `-delete` directories are removed off the event loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.log_manager.remove_deleted()
            return
        loop.run_in_executor(None, self.log_manager.remove_deleted)

    def reconcile(self, topics: dict, config_values_for) -> None:
        """Start-up: adopt loaded logs of known topics, create missing ones, and set aside (never
        delete) logs whose topic or partition the metadata does not know, as Kafka's stray logs."""
        strays = [
            tp for tp in self.log_manager.logs
            if (record := topics.get(tp.topic)) is None or tp.partition >= record.partitions
        ]
        for tp in strays:
            self.log_manager.mark_stray(tp)
        if strays:
            names = ", ".join(str(tp) for tp in sorted(strays)[:5]) + (", ..." if len(strays) > 5 else "")
            log.warning(
                "Kept %d partition logs whose topics are not in the metadata, renamed *-stray and not loaded (%s)",
                len(strays), names,
            )
        for record in topics.values():
            config_values = config_values_for(record.name)
            config = LogConfig.from_topic_config(config_values)
            for index in range(record.partitions):
                tp = TopicPartition(record.name, index)
                partition_log = self.log_manager.get_log(tp) or self.log_manager.create_log(tp, config)
                self._add(tp, partition_log, config_values)

    def _add(self, tp: TopicPartition, partition_log, config_values: dict) -> None:
        """A partition this broker alone hosts: its leader, the only replica and ISR member."""
        partition = Partition(tp, partition_log, self.node_id)
        self._apply_topic_configs(partition, config_values)
        partition.make_leader(
            0, (self.node_id,), (self.node_id,),
            high_watermark=self._checkpointed_high_watermark(tp), now_ms=self.clock.now_ms(),
        )
        self._partitions[tp] = partition
        self._tell_leadership(partition, True)

    def _tell_leadership(self, partition: Partition, is_leader: bool) -> None:
        for listener in list(self.leadership_listeners):
            listener(partition, is_leader)

    def _apply_topic_configs(self, partition: Partition, config_values: dict) -> None:
        partition.max_message_bytes = int(config_values.get("max.message.bytes", partition.max_message_bytes))
        partition.min_insync_replicas = int(config_values.get("min.insync.replicas", partition.min_insync_replicas))
        index = partition.topic_partition.partition
        for attribute, config in (("leader_throttled", "leader.replication.throttled.replicas"),
                                  ("follower_throttled", "follower.replication.throttled.replicas")):
            throttled = throttled_partitions(config_values.get(config), self.node_id)
            setattr(partition, attribute, throttled is None or index in throttled)

    # -- replication throttles (kafka-reassign-partitions --throttle) -------------------------

    def configure_throttles(self, config) -> None:
        """The broker's `*.replication.throttled.rate` (dynamic) and quota window."""
        samples, sample_s = config["replication.quota.window.num"], config["replication.quota.window.size.seconds"]
        self.leader_quota.configure(config["leader.replication.throttled.rate"], samples, sample_s)
        self.follower_quota.configure(config["follower.replication.throttled.rate"], samples, sample_s)

    def follower_fetch_throttled(self, partition: Partition) -> bool:
        """Leave this partition out of the next fetch: a throttled replica, out of the ISR, with
        the follower quota used up."""
        return (partition.follower_throttled and self.node_id not in partition.isr
                and self.follower_quota.is_exceeded())

    def fetched_as_follower(self, partition: Partition, size: int) -> None:
        if partition.follower_throttled:
            self.follower_quota.record(size)
