"""The partition log owns its producer state: Kafka's `.snapshot` files at roll and close, loaded
at open without replaying the log, and rolled back by truncation; and `leader-epoch-checkpoint`."""

from __future__ import annotations

import struct

import pytest

from odradek.clock import FakeClock
from odradek.log.leader_epoch_cache import FILE_NAME as EPOCH_FILE
from odradek.log.leader_epoch_cache import LeaderEpochCache
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog
from odradek.log.producer_state import (
    ProducerEntry,
    decode_snapshot,
    encode_snapshot,
    snapshot_offsets,
)
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import Record, encode_batch, read_batch_header, validate_batches

PRODUCER = 4000


def idempotent_batch(sequence: int, count: int = 2, producer_id: int = PRODUCER, epoch: int = 0) -> bytes:
    records = [Record(i, 1_700_000_000_000 + sequence + i, None, b"v") for i in range(count)]
    return encode_batch(records, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def append(log: PartitionLog, data: bytes, leader_epoch: int = 0):
    buffer = bytearray(data)
    headers = validate_batches(buffer)
    for header in headers:
        assert log.producer_state.check(header) is None
    return log.append(buffer, headers, leader_epoch)


@pytest.fixture
def clock():
    return FakeClock()


def open_log(directory, clock, *, clean=True, **config) -> PartitionLog:
    return PartitionLog.open(directory / "t-0", LogConfig(**config), clock, clean_shutdown=clean)


def test_snapshot_round_trip_keeps_each_producers_last_batch():
    entry = ProducerEntry(epoch=3, last_timestamp_ms=1234)
    from odradek.log.producer_state import BatchMetadata

    entry.batches.append(BatchMetadata(0, 4, 100, 104))
    entry.batches.append(BatchMetadata(5, 9, 105, 109))
    data = encode_snapshot({7: entry, 8: ProducerEntry(epoch=0)})

    assert struct.unpack_from(">h", data, 0) == (1,)
    assert len(data) == 10 + 2 * 46
    decoded = decode_snapshot(data)
    assert decoded[7].epoch == 3 and decoded[7].last_timestamp_ms == 1234
    assert list(decoded[7].batches) == [BatchMetadata(5, 9, 105, 109)]
    assert list(decoded[8].batches) == []


def test_corrupt_snapshot_is_refused():
    data = bytearray(encode_snapshot({7: ProducerEntry(epoch=1)}))
    data[-1] ^= 0xFF
    with pytest.raises(ValueError, match="CRC"):
        decode_snapshot(bytes(data))


def test_clean_close_writes_a_snapshot_and_reopen_needs_no_scan(tmp_path, clock, monkeypatch):
    log = open_log(tmp_path, clock)
    for sequence in range(0, 20, 2):
        append(log, idempotent_batch(sequence))
    log.close()
    assert snapshot_offsets(log.directory) == [20]

    def no_scan(self, from_offset=0):
        raise AssertionError(f"the log was scanned from {from_offset}")

    monkeypatch.setattr(PartitionLog, "iter_batch_headers", no_scan)
    reopened = open_log(tmp_path, clock)

    entry = reopened.producer_state.active()[PRODUCER]
    assert entry.last_sequence == 19
    duplicate = reopened.producer_state.check(read_batch_header(idempotent_batch(18)))
    assert (duplicate.base_offset, duplicate.last_offset) == (18, 19)
    with pytest.raises(KafkaError) as error:
        reopened.producer_state.check(read_batch_header(idempotent_batch(25)))
    assert error.value.code == ErrorCode.out_of_order_sequence_number


def test_unclean_open_replays_from_the_last_roll_snapshot(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=300)
    for sequence in range(0, 40, 2):
        append(log, idempotent_batch(sequence))
    rolled_at = snapshot_offsets(log.directory)
    assert rolled_at and rolled_at[-1] < 40, "rolls took snapshots at segment boundaries"
    # no close: as after kill -9
    reopened = open_log(tmp_path, clock, clean=False, segment_bytes=300)
    assert reopened.producer_state.active()[PRODUCER].last_sequence == 39
    assert reopened.producer_state.end_offset == 40


def test_truncation_rolls_producer_sequences_back(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=300)
    for sequence in range(0, 30, 2):
        append(log, idempotent_batch(sequence))
    log.truncate_to(11)  # keeps offsets 0..9 and the batch ending at 11? no: cut at a batch boundary
    assert log.log_end_offset == 10
    assert log.producer_state.active()[PRODUCER].last_sequence == 9
    assert all(offset <= 10 for offset in snapshot_offsets(log.directory))
    # the producer resends from sequence 10, as it would after a leader change
    assert append(log, idempotent_batch(10)).base_offset == 10


def test_retention_keeps_snapshots_only_for_retained_segments(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=300)
    for sequence in range(0, 40, 2):
        append(log, idempotent_batch(sequence))
    log.advance_log_start_offset(30)
    first_segment = log.segments[0].base_offset
    offsets = snapshot_offsets(log.directory)
    assert offsets and offsets[0] >= first_segment


def test_leader_epochs_are_recorded_and_survive_reopen(tmp_path, clock):
    log = open_log(tmp_path, clock)
    append(log, idempotent_batch(0), leader_epoch=0)
    append(log, idempotent_batch(2), leader_epoch=3)
    append(log, idempotent_batch(4), leader_epoch=3)
    append(log, idempotent_batch(6), leader_epoch=5)
    assert (log.directory / EPOCH_FILE).read_text() == "0\n3\n0 0\n3 2\n5 6\n"
    assert log.leader_epochs.end_offset_for(3, log.log_end_offset) == (3, 6)
    assert log.leader_epochs.end_offset_for(4, log.log_end_offset) == (3, 6)
    assert log.leader_epochs.end_offset_for(5, log.log_end_offset) == (5, 8)
    log.close()
    reopened = open_log(tmp_path, clock)
    assert reopened.leader_epochs.entries == [(0, 0), (3, 2), (5, 6)]
    reopened.truncate_to(4)
    assert reopened.leader_epochs.entries == [(0, 0), (3, 2)]


def test_missing_epoch_checkpoint_is_rebuilt_from_batch_headers(tmp_path, clock):
    log = open_log(tmp_path, clock)
    append(log, idempotent_batch(0), leader_epoch=1)
    append(log, idempotent_batch(2), leader_epoch=2)
    log.close()
    (log.directory / EPOCH_FILE).unlink()
    assert open_log(tmp_path, clock).leader_epochs.entries == [(1, 0), (2, 2)]


def test_follower_append_keeps_the_leaders_offsets_and_epochs(tmp_path, clock):
    leader = open_log(tmp_path / "leader", clock)
    append(leader, idempotent_batch(0), leader_epoch=4)
    append(leader, idempotent_batch(2), leader_epoch=4)
    data = bytearray(leader.read(0, 1 << 20, leader.log_end_offset))

    follower = open_log(tmp_path / "follower", clock)
    follower.append_as_follower(data, validate_batches(data))

    assert follower.log_end_offset == 4
    assert follower.leader_epochs.entries == [(4, 0)]
    assert follower.producer_state.active()[PRODUCER].last_sequence == 3
    with pytest.raises(KafkaError) as error:
        again = bytearray(data)
        follower.append_as_follower(again, validate_batches(again))
    assert error.value.code == ErrorCode.offset_out_of_range


def test_epoch_cache_truncation_from_start(tmp_path):
    cache = LeaderEpochCache(tmp_path, [(0, 0), (2, 10), (5, 20)])
    cache.truncate_from_start(15)
    assert cache.entries == [(2, 15), (5, 20)]
    assert LeaderEpochCache.load(tmp_path).entries == [(2, 15), (5, 20)]
