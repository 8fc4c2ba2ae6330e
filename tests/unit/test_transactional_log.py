"""Transactions in a partition's log: open transactions hold the last stable offset, ABORT markers
land in Kafka's `.txnindex`, and all of it survives a restart, a crash, a truncation and compaction."""

from __future__ import annotations

import struct

import pytest

from odradek.clock import FakeClock
from odradek.log.cleaner import LogCleaner
from odradek.log.log_config import LogConfig
from odradek.log.manager import LogManager
from odradek.log.partition_log import PartitionLog
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import Record, decode_records, encode_batch, read_batch_header
from odradek.protocol.topic_partition import TopicPartition
from odradek.replica.partition import Partition

TP = TopicPartition("t", 0)


@pytest.fixture
def clock():
    return FakeClock()


def txn_batch(producer_id: int, sequence: int, count: int = 2, *, epoch: int = 0, key: bytes | None = None) -> bytes:
    records = [Record(i, 1_700_000_000_000, key, b"v%d" % i) for i in range(count)]
    return encode_batch(records, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence, transactional=True)


def plain_batch(count: int = 1, *, key: bytes | None = None) -> bytes:
    return encode_batch([Record(i, 1_700_000_000_000, key, b"p%d" % i) for i in range(count)])


def leader(tmp_path, clock, config: LogConfig | None = None, *, clean: bool = True) -> Partition:
    log = PartitionLog.open(tmp_path / "t-0", config or LogConfig(), clock, clean_shutdown=clean)
    partition = Partition(TP, log, 1)
    partition.make_leader(0, (1,), (1,))
    return partition


def test_open_transaction_holds_the_last_stable_offset_until_its_commit(tmp_path, clock):
    p = leader(tmp_path, clock)
    p.append_records(plain_batch(2))
    p.append_records(txn_batch(7, 0))
    p.append_records(plain_batch(1))
    assert (p.high_watermark, p.last_stable_offset) == (5, 2)
    region, aborted = p.read_committed(0, 1 << 20)
    data = region.read()
    assert read_batch_header(data, 0).next_offset == 2 and len(data) == read_batch_header(data, 0).size
    assert aborted == []
    p.append_marker(7, 0, True, 0, clock.now_ms())
    assert p.last_stable_offset == 6
    assert p.log.aborted_transactions(0, 6) == []


def test_abort_marker_is_indexed_in_kafkas_txnindex_layout(tmp_path, clock):
    p = leader(tmp_path, clock)
    p.append_records(txn_batch(7, 0, 3))  # offsets 0-2
    p.append_records(txn_batch(8, 0, 1))  # offset 3, still open when 7 aborts
    p.append_marker(7, 0, False, 5, clock.now_ms())  # offset 4
    data, aborted = p.read_committed(0, 1 << 20)
    assert aborted == [(7, 0)]
    raw = (tmp_path / "t-0" / "00000000000000000000.txnindex").read_bytes()
    assert struct.unpack(">hqqqq", raw) == (0, 7, 0, 4, 3)  # version, pid, first, last (marker), stable offset
    assert p.last_stable_offset == 3, "producer 8 is still open"


def test_non_transactional_write_during_an_open_transaction_is_refused(tmp_path, clock):
    p = leader(tmp_path, clock)
    p.append_records(txn_batch(7, 0))
    idempotent = encode_batch([Record(0, 1, None, b"x")], producer_id=7, producer_epoch=0, base_sequence=2)
    with pytest.raises(KafkaError) as refused:
        p.append_records(idempotent)
    assert refused.value.code == ErrorCode.invalid_txn_state


def test_a_marker_from_an_older_coordinator_is_fenced(tmp_path, clock):
    p = leader(tmp_path, clock)
    p.append_records(txn_batch(7, 0))
    p.append_marker(7, 0, True, 3, clock.now_ms())
    p.append_records(txn_batch(7, 2))
    with pytest.raises(KafkaError) as fenced:
        p.append_marker(7, 0, False, 2, clock.now_ms())
    assert fenced.value.code == ErrorCode.transaction_coordinator_fenced


def test_clients_cannot_write_control_batches(tmp_path, clock):
    p = leader(tmp_path, clock)
    marker = encode_batch([Record(0, 1, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00")],
                          producer_id=7, producer_epoch=0, transactional=True, control=True)
    with pytest.raises(KafkaError) as refused:
        p.append_records(marker)
    assert refused.value.code == ErrorCode.invalid_record


def test_open_and_aborted_transactions_survive_a_clean_restart(tmp_path, clock):
    p = leader(tmp_path, clock)
    p.append_records(txn_batch(7, 0))
    p.append_marker(7, 0, False, 0, clock.now_ms())
    p.append_records(txn_batch(9, 0))
    p.log.close()
    again = leader(tmp_path, clock)
    assert again.last_stable_offset == 3, "producer 9's transaction is still open after the restart"
    assert [t.producer_id for t in again.log.aborted_transactions(0, 5)] == [7]


def test_a_crash_rebuilds_open_transactions_and_lost_index_entries(tmp_path, clock):
    config = LogConfig(segment_bytes=200)
    p = leader(tmp_path, clock, config)
    for sequence in range(0, 8, 2):  # several segments of producer 7's transaction
        p.append_records(txn_batch(7, sequence))
    p.append_marker(7, 0, False, 0, clock.now_ms())
    p.append_records(txn_batch(9, 0))
    p.log.flush()
    for index in (tmp_path / "t-0").glob("*.txnindex"):
        index.unlink()  # the crash lost the index write
    for snapshot in (tmp_path / "t-0").glob("*.snapshot"):
        snapshot.unlink()
    crashed = leader(tmp_path, clock, config, clean=False)
    assert [(t.producer_id, t.first_offset) for t in crashed.log.aborted_transactions(0, 100)] == [(7, 0)]
    assert crashed.last_stable_offset == 9


def test_truncation_drops_index_entries_and_reopens_the_transaction(tmp_path, clock):
    p = leader(tmp_path, clock)
    p.append_records(txn_batch(7, 0))
    p.append_marker(7, 0, False, 0, clock.now_ms())  # offset 2
    p.log.truncate_to(2)
    p.make_leader(1, (1,), (1,))
    assert p.log.aborted_transactions(0, 10) == []
    assert p.log.first_unstable_offset(p.high_watermark) == 0, "the marker is gone: the transaction is open again"


def test_cleaner_removes_aborted_records_and_keeps_markers(tmp_path, clock):
    manager = LogManager([tmp_path / "logs"], clock, cluster_id="abc", node_id=1)
    config = LogConfig(segment_bytes=300, cleanup_policy=("compact",), file_delete_delay_ms=0, min_cleanable_dirty_ratio=0.01)
    manager.startup(lambda tp: config)
    log = manager.create_log(TP, config)
    p = Partition(TP, log, 1)
    p.make_leader(0, (1,), (1,))
    p.append_records(plain_batch(1, key=b"k"))  # offset 0: the committed value
    p.append_records(txn_batch(7, 0, 1, key=b"k"))  # offset 1: an aborted overwrite
    p.append_marker(7, 0, False, 0, clock.now_ms())  # offset 2
    for _ in range(6):
        p.append_records(plain_batch(1, key=b"other"))
    log.roll()
    LogCleaner(manager, clock, uncleanable_offset_of=lambda tp: p.last_stable_offset).clean_once(clock.now_ms())
    surviving = {}
    controls = 0
    offset = 0
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20, log.log_end_offset)
        position = 0
        while position < len(data):
            header = read_batch_header(data, position)
            if header.is_control:
                controls += 1
            else:
                for record in decode_records(data, header):
                    surviving[record.key] = (record.offset, record.value)
            position += header.size
            offset = header.next_offset
    assert surviving[b"k"] == (0, b"p0"), "the aborted record neither survives nor erases the committed one"
    assert controls == 1
