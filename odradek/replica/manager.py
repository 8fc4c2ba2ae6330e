"""The partitions this broker hosts, and the append/read entry points the handlers use.

It maps TopicPartition -> Partition, creates and drops partition logs through the log
manager, and wakes parked fetches after each append.
"""

from __future__ import annotations

import asyncio
import logging

from odradek.log.log_config import LogConfig
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import BATCH_HEADER_SIZE, decode_records, read_batch_header
from odradek.protocol.topic_partition import TopicPartition
from odradek.replica.partition import AppendResult, Partition
from odradek.replica.purgatory import AppendWaiters

log = logging.getLogger(__name__)


class ReplicaManager:
    def __init__(self, log_manager) -> None:
        self.log_manager = log_manager
        self.waiters = AppendWaiters()
        self._partitions: dict[TopicPartition, Partition] = {}

    # -- lookup ----------------------------------------------------------------------------

    def partition(self, tp: TopicPartition) -> Partition | None:
        return self._partitions.get(tp)

    def leader_partition(self, tp: TopicPartition, current_leader_epoch: int = -1) -> Partition:
        """The partition if we lead it, checking the client's idea of the leader epoch."""
        partition = self._partitions.get(tp)
        if partition is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"this broker does not host {tp}")
        if current_leader_epoch >= 0 and current_leader_epoch != partition.leader_epoch:
            if current_leader_epoch > partition.leader_epoch:
                raise KafkaError(ErrorCode.unknown_leader_epoch, f"leader epoch {current_leader_epoch} is ahead of ours")
            raise KafkaError(ErrorCode.fenced_leader_epoch, f"leader epoch {current_leader_epoch} is stale")
        return partition

    def leader_epoch(self, topic: str, index: int) -> int:
        partition = self._partitions.get(TopicPartition(topic, index))
        return partition.leader_epoch if partition is not None else 0

    def partitions(self) -> list[Partition]:
        return list(self._partitions.values())

    # -- data path -------------------------------------------------------------------------

    def append_records(self, tp: TopicPartition, records) -> AppendResult:
        partition = self._partitions.get(tp)
        if partition is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"this broker does not host {tp}")
        result = partition.append_records(records)
        self.waiters.notify(tp)
        return result

    def read_records(self, tp: TopicPartition, *, chunk_bytes: int = 1 << 20):
        """Every record of a partition up to its high watermark, decoded (coordinator replay, tools)."""
        partition = self._partitions.get(tp)
        if partition is None:
            return
        offset = partition.log_start_offset
        while offset < partition.high_watermark:
            data = partition.read(offset, chunk_bytes)
            if not data:
                return
            position = 0
            while position + BATCH_HEADER_SIZE <= len(data):
                header = read_batch_header(data, position)
                if position + header.size > len(data):
                    break
                if not header.is_control:
                    for record in decode_records(data, header):
                        if record.offset >= offset:
                            yield record
                position += header.size
                offset = header.next_offset

    async def flush_if_due(self, tp: TopicPartition) -> None:
        """`flush.messages` reached: fsync in a worker thread before the append is acknowledged."""
        partition = self._partitions.get(tp)
        if partition is not None and partition.log.flush_due:
            await asyncio.to_thread(partition.log.flush)

    def delete_records(self, tp: TopicPartition, offset: int) -> int:
        return self.leader_partition(tp).delete_records(offset)

    async def wait_for_append(self, partitions: list[TopicPartition], timeout_s: float) -> None:
        await self.waiters.wait(partitions, timeout_s)

    # -- lifecycle -------------------------------------------------------------------------

    def create_partitions(self, record, config_values: dict) -> None:
        config = LogConfig.from_topic_config(config_values)
        for index in range(record.partitions):
            tp = TopicPartition(record.name, index)
            if tp not in self._partitions:
                self._add(tp, self.log_manager.create_log(tp, config), config_values)

    def update_configs(self, record, config_values: dict) -> None:
        """Apply a topic's new effective configs to its live partitions."""
        config = LogConfig.from_topic_config(config_values)
        for index in range(record.partitions):
            partition = self._partitions.get(TopicPartition(record.name, index))
            if partition is not None:
                partition.log.set_config(config)
                partition.max_message_bytes = int(config_values.get("max.message.bytes", partition.max_message_bytes))

    def delete_partitions(self, record) -> None:
        for index in range(record.partitions):
            tp = TopicPartition(record.name, index)
            if self._partitions.pop(tp, None) is not None:
                self.log_manager.delete_log(tp)
            self.waiters.notify(tp)
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
        partition = Partition(tp, partition_log)
        partition.max_message_bytes = int(config_values.get("max.message.bytes", partition.max_message_bytes))
        self._partitions[tp] = partition
