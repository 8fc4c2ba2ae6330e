"""One partition this broker hosts, as leader or follower: its log, role, leader epoch, ISR and
high watermark.

A leader validates and appends producers' batches, tracks every follower's log end offset from
its fetches, keeps the ISR (followers caught up within replica.lag.time.max.ms) and moves the high
watermark to the smallest log end offset in the ISR; consumers read below the high watermark. A
follower appends what its fetcher copies from the leader and learns the high watermark from it.
On a single node the ISR is this broker alone, so the high watermark follows the log end offset
after each append.

Appends run on the event loop and complete synchronously (validate, patch, one write), which
serializes them per partition without a lock. Not thread-safe otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from odradek.log.producer_state import ProducerStateManager
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.file_region import FileRegion
from odradek.protocol.records import decode_records, encode_marker_batch, validate_batches
from odradek.protocol.topic_partition import TopicPartition


class AppendResult(NamedTuple):
    base_offset: int
    last_offset: int
    log_append_time_ms: int
    log_start_offset: int


class Role(enum.Enum):
    LEADER = "leader"
    FOLLOWER = "follower"


@dataclass
class FollowerState:
    """What the leader knows of one follower, from its fetches."""

    log_end_offset: int = -1
    last_caught_up_ms: int = 0


class Partition:
    def __init__(self, tp: TopicPartition, log, node_id: int, *, leader_epoch: int = 0) -> None:
        self.topic_partition = tp
        self.log = log
        self.node_id = node_id
        self.role = Role.LEADER
        self.leader_id = node_id
        self.leader_epoch = leader_epoch
        self.partition_epoch = 0
        self.replicas: tuple[int, ...] = (node_id,)
        self.isr: frozenset[int] = frozenset((node_id,))
        self.max_message_bytes = 1048588
        self.min_insync_replicas = 1
        # named in the topic's leader/follower.replication.throttled.replicas for this broker
        self.leader_throttled = False
        self.follower_throttled = False
        self._high_watermark = 0
        self._leader_epoch_start_offset = 0
        self._followers: dict[int, FollowerState] = {}

    # --- roles --------------------------------------------------------------------------------

    def make_leader(
        self, leader_epoch: int, replicas, isr, *, partition_epoch: int = 0, high_watermark: int | None = None, now_ms: int = 0
    ) -> None:
        """Lead from `leader_epoch` on. The high watermark starts at the checkpointed one (never
        above the log end) and moves once the ISR's log end offsets are known."""
        self.role = Role.LEADER
        self.leader_id = self.node_id
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.replicas = tuple(replicas)
        self.isr = frozenset(isr)
        self._leader_epoch_start_offset = self.log.log_end_offset
        if high_watermark is not None:
            self._high_watermark = min(max(high_watermark, self.log.log_start_offset), self.log.log_end_offset)
        self._followers = {
            replica: FollowerState(last_caught_up_ms=now_ms) for replica in self.replicas if replica != self.node_id
        }
        self.maybe_advance_high_watermark()

    def make_follower(self, leader_id: int, leader_epoch: int, replicas, isr, *, partition_epoch: int = 0,
                      high_watermark: int | None = None) -> None:
        """Follow `leader_id` from `leader_epoch` on; the fetcher truncates and copies."""
        self.role = Role.FOLLOWER
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.replicas = tuple(replicas)
        self.isr = frozenset(isr)
        self._followers = {}
        if high_watermark is not None:
            self._high_watermark = min(high_watermark, self.log.log_end_offset)
        self._high_watermark = min(self._high_watermark, self.log.log_end_offset)

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def check_leader(self, current_leader_epoch: int = -1) -> None:
        """NOT_LEADER_OR_FOLLOWER unless we lead; FENCED/UNKNOWN_LEADER_EPOCH for a client whose
        idea of the leader epoch differs from ours."""
        if current_leader_epoch >= 0 and current_leader_epoch != self.leader_epoch:
            if current_leader_epoch > self.leader_epoch:
                raise KafkaError(ErrorCode.unknown_leader_epoch, f"leader epoch {current_leader_epoch} is ahead of ours ({self.leader_epoch})")
            raise KafkaError(ErrorCode.fenced_leader_epoch, f"leader epoch {current_leader_epoch} is stale (ours is {self.leader_epoch})")
        if self.role is not Role.LEADER:
            raise KafkaError(
                ErrorCode.not_leader_or_follower,
                f"this broker is not the leader of {self.topic_partition} (broker {self.leader_id} is)",
            )

    # --- offsets ------------------------------------------------------------------------------

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def last_stable_offset(self) -> int:
        """Where read_committed consumers stop: the first offset of the oldest transaction not yet
        decided on every in-sync replica, or the high watermark."""
        first_unstable = self.log.first_unstable_offset(self._high_watermark)
        if first_unstable is None:
            return self._high_watermark
        return min(first_unstable, self._high_watermark)

    def maybe_advance_high_watermark(self) -> bool:
        """Leader: the high watermark becomes the smallest log end offset in the ISR (never moving
        back). Returns whether it moved."""
        if self.role is not Role.LEADER:
            return False
        new = self.log.log_end_offset
        for replica in self.isr:
            if replica != self.node_id and replica in self.replicas:  # one being reassigned away does not count
                follower = self._followers.get(replica)
                new = min(new, follower.log_end_offset if follower is not None else -1)
        if new > self._high_watermark:
            self._high_watermark = new
            return True
        return False

    def set_high_watermark_from_leader(self, leader_high_watermark: int) -> None:
        """Follower: the leader's high watermark, bounded by what we have."""
        self._high_watermark = max(self._high_watermark, min(leader_high_watermark, self.log.log_end_offset))

    # --- appends ------------------------------------------------------------------------------

    @property
    def producers(self) -> ProducerStateManager:
        """The log's idempotent-producer state (loaded from its snapshot when the log opened)."""
        return self.log.producer_state

    def append_records(self, records, *, required_acks: int = 1) -> AppendResult:
        """Validate and append a produce request's records for this partition, as leader."""
        self.check_leader()
        if records is None or len(records) == 0:
            raise KafkaError(ErrorCode.corrupt_message, "produce request carried no records for this partition")
        headers = validate_batches(records)
        for header in headers:
            if header.is_control:
                raise KafkaError(ErrorCode.invalid_record, "clients may not write control batches (transaction markers)")
            if header.size > self.max_message_bytes:
                raise KafkaError(
                    ErrorCode.message_too_large,
                    f"batch of {header.size} bytes exceeds max.message.bytes {self.max_message_bytes}",
                )
        if len(records) > self.log.config.segment_bytes:
            raise KafkaError(
                ErrorCode.record_list_too_large,
                f"{len(records)} bytes of records exceed segment.bytes {self.log.config.segment_bytes}",
            )
        if self.log.config.compacts:
            self._check_keys(records, headers)
        if required_acks == -1 and len(self.isr) < self.min_insync_replicas:
            raise KafkaError(
                ErrorCode.not_enough_replicas,
                f"{self.topic_partition} has {len(self.isr)} in-sync replicas, below min.insync.replicas {self.min_insync_replicas}",
            )
        if headers[0].producer_id >= 0:
            duplicate = self._check_producers(headers)
            if duplicate is not None:
                return AppendResult(duplicate.base_offset, duplicate.last_offset, -1, self.log.log_start_offset)
        result = self.log.append(_patchable(records), headers, self.leader_epoch)
        self.maybe_advance_high_watermark()
        return AppendResult(result.base_offset, result.last_offset, result.log_append_time_ms, self.log.log_start_offset)

    def append_marker(self, producer_id: int, producer_epoch: int, committed: bool, coordinator_epoch: int,
                      now_ms: int) -> AppendResult:
        """Write the COMMIT or ABORT marker that ends a producer's transaction here, as leader."""
        self.check_leader()
        self.log.producer_state.check_marker(producer_id, producer_epoch, coordinator_epoch)
        buffer = bytearray(encode_marker_batch(producer_id, producer_epoch, committed, coordinator_epoch, now_ms))
        result = self.log.append(buffer, validate_batches(buffer), self.leader_epoch)
        self.maybe_advance_high_watermark()
        return AppendResult(result.base_offset, result.last_offset, -1, self.log.log_start_offset)

    def append_as_follower(self, records) -> int:
        """Append batches the fetcher copied from the leader, as they came (nothing in them changes);
        returns the new log end offset."""
        if self.role is not Role.FOLLOWER:
            raise KafkaError(ErrorCode.not_leader_or_follower, f"{self.topic_partition} is not a follower here")
        headers = validate_batches(records)
        self.log.append_as_follower(records, headers)
        return self.log.log_end_offset

    @staticmethod
    def _check_keys(records, headers) -> None:
        """A compacted topic keeps the latest value per key, so every record needs one (Kafka's rule).

        The only produce path that decodes records: compacted topics are rare and small-volume.
        """
        for header in headers:
            if header.is_control:
                continue
            if any(record.key is None for record in decode_records(records, header)):
                raise KafkaError(ErrorCode.invalid_record, "compacted topic cannot accept a message without a key")

    def _check_producers(self, headers) -> "_Span | None":
        """The offsets the batches got the first time if every one is a duplicate; raise if one
        is refused."""
        duplicates = [self.producers.check(header) for header in headers]
        if all(duplicate is not None for duplicate in duplicates):
            return _Span(duplicates[0].base_offset, duplicates[-1].last_offset)
        return None

    # --- followers ----------------------------------------------------------------------------

    def update_follower_fetch_state(self, replica_id: int, fetch_offset: int, now_ms: int) -> bool:
        """A follower fetched from `fetch_offset` (its log end offset): record it and advance the
        high watermark. Returns whether the high watermark moved."""
        self.check_leader()
        follower = self._followers.get(replica_id)
        if follower is None:
            raise KafkaError(
                ErrorCode.not_leader_or_follower,
                f"broker {replica_id} is not a replica of {self.topic_partition} (replicas {list(self.replicas)})",
            )
        follower.log_end_offset = fetch_offset
        if fetch_offset >= self.log.log_end_offset:
            follower.last_caught_up_ms = now_ms
        return self.maybe_advance_high_watermark()

    def can_join_isr(self, replica_id: int) -> bool:
        """Kafka's rule for adding a follower back: it is not in the ISR, and has caught up to the
        high watermark and to where this leader epoch began."""
        follower = self._followers.get(replica_id)
        return (
            replica_id not in self.isr
            and replica_id in self.replicas
            and follower is not None
            and follower.log_end_offset >= self._high_watermark
            and follower.log_end_offset >= self._leader_epoch_start_offset
        )

    def set_replicas(self, replicas, now_ms: int) -> None:
        """The replica set changed (a reassignment): track new followers, forget removed ones."""
        self.replicas = tuple(replicas)
        if self.role is Role.LEADER:
            for replica in self.replicas:
                if replica != self.node_id and replica not in self._followers:
                    self._followers[replica] = FollowerState(last_caught_up_ms=now_ms)
            for replica in list(self._followers):
                if replica not in self.replicas:
                    del self._followers[replica]

    def set_isr(self, isr, partition_epoch: int) -> None:
        """The ISR the metadata store accepted (a conditional write by the leader or the
        controller); the high watermark may move when a lagging member left it."""
        self.isr = frozenset(isr)
        self.partition_epoch = partition_epoch
        self.maybe_advance_high_watermark()

    def lagging_followers(self, now_ms: int, lag_time_max_ms: int) -> set[int]:
        """ISR members that have not caught up to the log end within lag_time_max_ms, and those
        that are no replica any more (reassigned away)."""
        return {
            replica for replica in self.isr
            if replica != self.node_id
            and (
                replica not in self.replicas
                or ((follower := self._followers.get(replica)) is not None and now_ms - follower.last_caught_up_ms > lag_time_max_ms)
            )
        }

    def follower_log_end_offset(self, replica_id: int) -> int:
        follower = self._followers.get(replica_id)
        return follower.log_end_offset if follower is not None else -1

    def diverging_epoch(self, last_fetched_epoch: int, fetch_offset: int) -> tuple[int, int] | None:
        """(epoch, end offset) where a fetcher's log leaves ours, judged from the epoch of its
        last batch (KIP-320/595): None when its log is a prefix of ours."""
        if last_fetched_epoch < 0:
            return None
        epoch, end_offset = self.log.leader_epochs.end_offset_for(last_fetched_epoch, self.log.log_end_offset)
        if epoch < 0 or end_offset < 0:
            # We cannot tell where its epoch ends (we have no epochs): let it resolve its
            # position as Kafka's followers do, from our log start and high watermark.
            raise KafkaError(ErrorCode.offset_out_of_range,
                             f"could not determine the end offset of epoch {last_fetched_epoch} here")
        if epoch != last_fetched_epoch or end_offset < fetch_offset:
            return (epoch, end_offset)
        return None

    # --- reads and admin ----------------------------------------------------------------------

    def delete_records(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to `offset` (-1: the high watermark); returns it."""
        self.check_leader()
        if offset == -1:
            offset = self.high_watermark
        if offset < 0 or offset > self.high_watermark:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"cannot delete records before offset {offset}: it must be between 0 and the high watermark {self.high_watermark}",
            )
        if offset > self.log.log_start_offset:
            self.log.advance_log_start_offset(offset)
        return self.log.log_start_offset

    # The reads below answer Fetch requests: the records come as a region of a segment file, sent
    # to the socket from the page cache (protocol/file_region.py), or b"" when there are none.

    def read(self, offset: int, max_bytes: int, min_one_batch: bool = True) -> FileRegion | bytes:
        """What a consumer may see: whole batches below the high watermark."""
        found = self.log.read_region(offset, max_bytes, self.high_watermark, min_one_batch)
        return found[0] if found is not None else b""

    def read_committed(self, offset: int, max_bytes: int, min_one_batch: bool = True,
                       stable: int | None = None) -> tuple[FileRegion | bytes, list]:
        """What a read_committed consumer may see: whole batches below the last stable offset
        (`stable`, when the caller has it already), and the aborted transactions among them
        ((producer id, first offset) pairs) so it drops them."""
        if stable is None:
            stable = self.last_stable_offset
        found = self.log.read_region(offset, max_bytes, stable, min_one_batch)
        if found is None:
            return b"", []
        region, upper = found
        aborted = self.log.aborted_transactions(offset, stable)
        if aborted:
            aborted = [(txn.producer_id, txn.first_offset) for txn in aborted if txn.first_offset < upper]
        return region, aborted

    def read_for_follower(self, offset: int, max_bytes: int, min_one_batch: bool = True) -> FileRegion | bytes:
        """What a follower copies: whole batches up to the log end."""
        found = self.log.read_region(offset, max_bytes, self.log.log_end_offset, min_one_batch)
        return found[0] if found is not None else b""


class _Span(NamedTuple):
    base_offset: int
    last_offset: int


def _patchable(records):
    """`records` itself when it is a writable view of a request frame the broker received into
    (server/frame_protocol.py) and may patch offsets into, else a copy that is."""
    if isinstance(records, memoryview) and not records.readonly:
        return records
    return bytearray(records)
