"""Idempotent-producer state of one partition log, and its `.snapshot` files (Kafka's format).

Per producer id: its epoch, its last batches (sequence range and offsets), the timestamp of its
last write. Kafka's rules, checked by the leader before a batch is appended (`check`):
  - an epoch older than the one we know -> INVALID_PRODUCER_EPOCH;
  - a newer epoch must start at sequence 0, else OUT_OF_ORDER_SEQUENCE_NUMBER;
  - a producer we do not know must start at sequence 0, else UNKNOWN_PRODUCER_ID;
  - a batch equal to one of the last five (same first and last sequence) is a duplicate: it is
    not appended again and is answered with the offset it got the first time;
  - otherwise the first sequence must follow the last one (wrapping at 2**31), else
    OUT_OF_ORDER_SEQUENCE_NUMBER.
A follower appends without checking and only updates (`update`).

Transactions: a producer's first transactional batch opens its transaction at that offset; a
control batch (COMMIT or ABORT marker, written by the transaction coordinator) ends it. While a
producer's transaction is open it may not write outside one (INVALID_TXN_STATE). A marker from a
coordinator older than the last one seen is refused (TRANSACTION_COORDINATOR_FENCED). The
partition's first unstable offset is the first offset of the oldest transaction still open, or
ended by a marker the high watermark has not yet passed: read_committed consumers stop there.

Snapshot file `<20-digit offset>.snapshot` in the partition dir, the state of every producer as
of that offset (exclusive), Kafka's version 1 layout, big-endian:
    version int16 (1) | crc uint32 (CRC32C of everything after it) | count int32 |
    count x (producer_id int64, epoch int16, last_sequence int32, last_offset int64,
             offset_delta int32, timestamp int64, coordinator_epoch int32,
             current_txn_first_offset int64)
A snapshot keeps only each producer's last batch, as Kafka's does, so after a restart only the
last batch of a producer is recognised as a duplicate. Snapshots are taken at each segment roll
and at clean shutdown; loading reads the latest one at or below the log end and replays the batch
headers after it (none after a clean shutdown). Truncation deletes the snapshots above the new
end and reloads. A snapshot with a bad CRC or layout is deleted and an older one (or the log) used.

Not thread-safe: used under the owning PartitionLog's append lock, or before it is shared.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from odradek.protocol.checksum import crc32c

from odradek.log.checkpoint import temp_path, write_atomically
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import BatchHeader

logger = logging.getLogger(__name__)

RETAINED_BATCHES = 5
SEQUENCE_MODULUS = 1 << 31
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1

_HEAD = struct.Struct(">hIi")  # version, crc, entry count
_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_START = 6  # the CRC covers the bytes after the version and the CRC itself


class Marker(NamedTuple):
    """What a control batch says: the transaction committed (or aborted), and by which coordinator epoch."""

    committed: bool
    coordinator_epoch: int


class CompletedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int  # the marker's offset
    aborted: bool


class CorruptSnapshotError(ValueError):
    """A snapshot file that cannot be trusted: unknown version, bad CRC, wrong length."""


@dataclass
class BatchMetadata:
    first_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=RETAINED_BATCHES))
    last_timestamp_ms: int = -1
    coordinator_epoch: int = -1
    current_txn_first_offset: int = -1

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else -1


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"  # not Path(directory): parsing it again costs at start-up


def snapshot_offsets(directory: Path) -> list[int]:
    """Offsets of the snapshot files in a partition dir, ascending."""
    offsets = []
    for name in os.listdir(directory):
        stem = name[: -len(SNAPSHOT_SUFFIX)]
        if name.endswith(SNAPSHOT_SUFFIX) and stem.isdigit():
            offsets.append(int(stem))
    return sorted(offsets)


def encode_snapshot(producers: dict[int, ProducerEntry]) -> bytes:
    entries = bytearray()
    for producer_id, entry in producers.items():
        last = entry.batches[-1] if entry.batches else None
        entries += _ENTRY.pack(
            producer_id,
            entry.epoch,
            last.last_sequence if last else -1,
            last.last_offset if last else -1,
            last.last_sequence - last.first_sequence if last else 0,
            entry.last_timestamp_ms,
            entry.coordinator_epoch,
            entry.current_txn_first_offset,
        )
    body = struct.pack(">i", len(producers)) + bytes(entries)
    return struct.pack(">hI", SNAPSHOT_VERSION, crc32c(body)) + body


def decode_snapshot(data: bytes) -> dict[int, ProducerEntry]:
    if len(data) < _HEAD.size:
        raise CorruptSnapshotError(f"{len(data)} bytes is shorter than a snapshot header")
    version, crc, count = _HEAD.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"unknown snapshot version {version}")
    if crc32c(data[_CRC_START:]) != crc:
        raise CorruptSnapshotError(f"CRC {crc} does not match the contents")
    if count < 0 or len(data) != _HEAD.size + count * _ENTRY.size:
        raise CorruptSnapshotError(f"{count} entries do not fill {len(data)} bytes")
    producers = {}
    for index in range(count):
        (producer_id, epoch, last_sequence, last_offset, offset_delta, timestamp, coordinator_epoch,
         txn_first_offset) = _ENTRY.unpack_from(data, _HEAD.size + index * _ENTRY.size)
        entry = ProducerEntry(epoch, last_timestamp_ms=timestamp, coordinator_epoch=coordinator_epoch,
                              current_txn_first_offset=txn_first_offset)
        if last_offset >= 0:
            entry.batches.append(
                BatchMetadata(last_sequence - offset_delta, last_sequence, last_offset - offset_delta, last_offset)
            )
        producers[producer_id] = entry
    return producers


class ProducerStateManager:
    """The producers of one partition as of `end_offset` (the log end the state reflects)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._producers: dict[int, ProducerEntry] = {}
        self._ongoing: dict[int, int] = {}  # producer id -> first offset of its open transaction
        self._unreplicated: deque[CompletedTxn] = deque()  # ended by a marker the HW has not passed
        self.end_offset = 0

    # --- the rules ----------------------------------------------------------------------------

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Raise for a batch that must be refused; return the original metadata of a duplicate."""
        if header.producer_id < 0:
            return None
        entry = self._producers.get(header.producer_id)
        first = header.base_sequence
        if entry is not None and entry.current_txn_first_offset >= 0 and not header.is_transactional:
            raise KafkaError(
                ErrorCode.invalid_txn_state,
                f"producer {header.producer_id} has a transaction open here and sent a non-transactional batch",
            )
        if header.is_transactional and first < 0:
            # written by a coordinator (TxnOffsetCommit): no sequence, only the epoch is checked
            if entry is not None and header.producer_epoch < entry.epoch:
                raise KafkaError(
                    ErrorCode.invalid_producer_epoch,
                    f"producer {header.producer_id} epoch {header.producer_epoch} is older than the current epoch {entry.epoch}",
                )
            return None
        if entry is None:
            if first != 0:
                raise KafkaError(
                    ErrorCode.unknown_producer_id,
                    f"producer {header.producer_id} is unknown here and its batch starts at sequence {first}, not 0",
                )
            return None
        if header.producer_epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.invalid_producer_epoch,
                f"producer {header.producer_id} epoch {header.producer_epoch} is older than the current epoch {entry.epoch}",
            )
        if header.producer_epoch > entry.epoch:
            if first != 0:
                raise KafkaError(
                    ErrorCode.out_of_order_sequence_number,
                    f"a new epoch {header.producer_epoch} must start at sequence 0, got {first}",
                )
            return None
        for batch in entry.batches:
            if batch.first_sequence == first and batch.last_sequence == header.last_sequence:
                return batch
        expected = (entry.last_sequence + 1) % SEQUENCE_MODULUS
        if first != expected:
            raise KafkaError(
                ErrorCode.out_of_order_sequence_number,
                f"producer {header.producer_id} sent sequence {first}, expected {expected}",
            )
        return None

    def check_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """Raise for a transaction marker that must be refused (leader side, before appending it)."""
        entry = self._producers.get(producer_id)
        if entry is None:
            return
        if coordinator_epoch < entry.coordinator_epoch:
            raise KafkaError(
                ErrorCode.transaction_coordinator_fenced,
                f"marker from coordinator epoch {coordinator_epoch}, older than {entry.coordinator_epoch}",
            )
        if producer_epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.invalid_producer_epoch,
                f"marker for producer {producer_id} epoch {producer_epoch} is older than the current epoch {entry.epoch}",
            )

    def update(self, header: BatchHeader, base_offset: int, marker: Marker | None = None) -> CompletedTxn | None:
        """Record a batch appended at `base_offset` (any batch: the end offset moves too). A control
        batch carries its `marker`; the transaction it ends is returned."""
        self.end_offset = base_offset + header.last_offset_delta + 1
        producer_id = header.producer_id
        if producer_id < 0:
            return None
        entry = self._producers.get(producer_id)
        if entry is None or header.producer_epoch != entry.epoch:
            previous = entry
            entry = ProducerEntry(header.producer_epoch)
            if previous is not None:  # a new epoch does not end an open transaction: its marker does
                entry.current_txn_first_offset = previous.current_txn_first_offset
                entry.coordinator_epoch = previous.coordinator_epoch
            self._producers[producer_id] = entry
        entry.last_timestamp_ms = header.max_timestamp
        last_offset = base_offset + header.last_offset_delta
        if header.is_control:
            if marker is None:
                return None
            first = entry.current_txn_first_offset if entry.current_txn_first_offset >= 0 else last_offset
            entry.current_txn_first_offset = -1
            entry.coordinator_epoch = max(entry.coordinator_epoch, marker.coordinator_epoch)
            self._ongoing.pop(producer_id, None)
            completed = CompletedTxn(producer_id, first, last_offset, not marker.committed)
            self._unreplicated.append(completed)
            return completed
        if header.base_sequence >= 0:
            entry.batches.append(BatchMetadata(header.base_sequence, header.last_sequence, base_offset, last_offset))
        if header.is_transactional and entry.current_txn_first_offset < 0:
            entry.current_txn_first_offset = base_offset
            self._ongoing[producer_id] = base_offset
        return None

    def first_unstable_offset(self, high_watermark: int) -> int | None:
        """The first offset of the oldest transaction still open, or ended by a marker at or above
        `high_watermark` (not yet on every in-sync replica); None when there is none."""
        unreplicated = self._unreplicated
        if not unreplicated and not self._ongoing:
            return None  # no transaction in this log (checked for every partition of every Fetch)
        while unreplicated and unreplicated[0].last_offset < high_watermark:
            unreplicated.popleft()
        first = min(self._ongoing.values(), default=None)
        for txn in unreplicated:
            if first is None or txn.first_offset < first:
                first = txn.first_offset
        return first

    def stable_offset_after(self, completed: CompletedTxn) -> int:
        """For a transaction index entry: where the log is stable once `completed` ended."""
        return min(self._ongoing.values(), default=completed.last_offset + 1)

    def open_transactions(self) -> dict[int, int]:
        """Producer id -> first offset of its open transaction."""
        return dict(self._ongoing)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._producers.get(producer_id)

    def active(self) -> dict[int, ProducerEntry]:
        """Producer id -> state, for DescribeProducers."""
        return dict(self._producers)

    def replay(self, batches: Iterable[tuple[BatchHeader, Marker | None]], on_aborted=None) -> None:
        """Apply batch headers (with the marker of each control batch) read back from the log,
        oldest first; `on_aborted(txn)` is told of every aborted transaction they end."""
        for header, marker in batches:
            completed = self.update(header, header.base_offset, marker)
            if completed is not None and completed.aborted and on_aborted is not None:
                on_aborted(completed, self.stable_offset_after(completed))

    def _set_producers(self, producers: dict[int, ProducerEntry]) -> None:
        self._producers = producers
        self._ongoing = {pid: e.current_txn_first_offset for pid, e in producers.items() if e.current_txn_first_offset >= 0}
        self._unreplicated = deque()

    # --- snapshots ----------------------------------------------------------------------------

    def take_snapshot(self, *, durable: bool) -> None:
        """Write the state as of end_offset, unless a snapshot at that offset exists already.
        `durable=False` skips the fsync (at a roll, where the rolled segment's background flush
        follows; a snapshot torn by a crash fails its CRC and an older one is used)."""
        if self.directory is None:
            return
        path = snapshot_path(self.directory, self.end_offset)
        if path.exists():
            return
        data = encode_snapshot(self._producers)
        if durable:
            write_atomically(path, data)
        else:
            temporary = temp_path(path)
            temporary.write_bytes(data)
            os.replace(temporary, path)

    def load(self, log_start_offset: int, log_end_offset: int, batches_from, on_aborted=None) -> None:
        """Rebuild the state for a log ending at `log_end_offset`: delete snapshots above it, read
        the latest one at or below it (dropping corrupt ones), then replay `batches_from(offset)`
        ((header, marker) pairs; see replay)."""
        self._set_producers({})
        start = log_start_offset
        offsets = snapshot_offsets(self.directory)
        for offset in [o for o in offsets if o > log_end_offset]:
            snapshot_path(self.directory, offset).unlink(missing_ok=True)
        for offset in reversed([o for o in offsets if o <= log_end_offset]):
            path = snapshot_path(self.directory, offset)
            try:
                self._set_producers(decode_snapshot(path.read_bytes()))
            except (CorruptSnapshotError, OSError) as exc:
                logger.warning("ignoring producer snapshot %s: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            start = max(offset, log_start_offset)
            break
        self.end_offset = start
        if start < log_end_offset:
            self.replay(((h, m) for h, m in batches_from(start) if h.last_offset >= start), on_aborted)
        self.end_offset = log_end_offset

    def truncate_fully(self, offset: int) -> None:
        """Forget every producer and delete every snapshot (the log restarts empty at `offset`)."""
        self._set_producers({})
        self.end_offset = offset
        if self.directory is not None:
            for snapshot_offset in snapshot_offsets(self.directory):
                snapshot_path(self.directory, snapshot_offset).unlink(missing_ok=True)

    def delete_snapshots_below(self, offset: int) -> None:
        """Snapshots of segments that retention removed; the latest one is always kept."""
        if self.directory is None:
            return
        offsets = snapshot_offsets(self.directory)
        for snapshot_offset in offsets[:-1]:
            if snapshot_offset < offset:
                snapshot_path(self.directory, snapshot_offset).unlink(missing_ok=True)
