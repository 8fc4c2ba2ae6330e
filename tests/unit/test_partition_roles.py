"""A partition as leader or follower: the high watermark is the ISR's smallest log end offset,
consumers read below it, followers copy up to the log end, and ISR membership follows Kafka's rules."""

from __future__ import annotations

import pytest

from odradek.clock import FakeClock
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import Record, encode_batch, read_batch_header
from odradek.protocol.topic_partition import TopicPartition
from odradek.replica.partition import Partition

TP = TopicPartition("t", 0)


def batch(count: int = 2) -> bytes:
    return encode_batch([Record(i, 1_700_000_000_000 + i, None, b"v%d" % i) for i in range(count)])


def partition(tmp_path, node_id: int, clock) -> Partition:
    log = PartitionLog.open(tmp_path / f"node{node_id}" / "t-0", LogConfig(), clock, clean_shutdown=True)
    return Partition(TP, log, node_id)


@pytest.fixture
def clock():
    return FakeClock()


def test_single_node_high_watermark_follows_appends(tmp_path, clock):
    leader = partition(tmp_path, 1, clock)
    leader.make_leader(0, (1,), (1,))
    leader.append_records(batch(3))
    assert (leader.log_end_offset, leader.high_watermark) == (3, 3)


def test_leader_high_watermark_waits_for_the_isr(tmp_path, clock):
    leader = partition(tmp_path, 1, clock)
    leader.make_leader(1, (1, 2, 3), (1, 2, 3))
    leader.append_records(batch(4), required_acks=-1)
    assert leader.high_watermark == 0
    assert leader.read(0, 1 << 20) == b"", "consumers see nothing above the high watermark"
    assert leader.read_for_follower(0, 1 << 20) != b""
    assert leader.update_follower_fetch_state(2, 4, clock.now_ms()) is False  # 3 still at -1
    assert leader.update_follower_fetch_state(3, 2, clock.now_ms()) is True
    assert leader.high_watermark == 2
    leader.update_follower_fetch_state(3, 4, clock.now_ms())
    assert leader.high_watermark == 4


def test_lagging_follower_is_reported_and_rejoins_when_caught_up(tmp_path, clock):
    leader = partition(tmp_path, 1, clock)
    leader.make_leader(1, (1, 2), (1, 2), now_ms=clock.now_ms())
    leader.append_records(batch(2))
    clock.advance(31_000)
    assert leader.lagging_followers(clock.now_ms(), 30_000) == {2}
    leader.set_isr((1,), partition_epoch=1)
    assert leader.high_watermark == 2, "without the lagging follower the ISR has everything"
    leader.append_records(batch(2))
    leader.update_follower_fetch_state(2, 2, clock.now_ms())
    assert not leader.can_join_isr(2), "behind the high watermark"
    leader.update_follower_fetch_state(2, 4, clock.now_ms())
    assert leader.can_join_isr(2)


def test_min_insync_replicas_refuses_acks_all_when_isr_is_too_small(tmp_path, clock):
    leader = partition(tmp_path, 1, clock)
    leader.make_leader(1, (1, 2, 3), (1,))
    leader.min_insync_replicas = 2
    with pytest.raises(KafkaError) as error:
        leader.append_records(batch(), required_acks=-1)
    assert error.value.code == ErrorCode.not_enough_replicas
    assert leader.log_end_offset == 0
    leader.append_records(batch(), required_acks=1)
    assert leader.log_end_offset == 2


def test_follower_refuses_producers_and_appends_the_leaders_batches(tmp_path, clock):
    leader = partition(tmp_path, 1, clock)
    leader.make_leader(5, (1, 2), (1, 2))
    leader.append_records(batch(3))
    follower = partition(tmp_path, 2, clock)
    follower.make_follower(1, 5, (1, 2), (1, 2))
    with pytest.raises(KafkaError) as error:
        follower.append_records(batch())
    assert error.value.code == ErrorCode.not_leader_or_follower
    data = leader.read_for_follower(0, 1 << 20).read()  # a region of the leader's segment
    assert follower.append_as_follower(data) == 3
    assert read_batch_header(follower.log.read(0, 1 << 20, 3)).partition_leader_epoch == 5
    follower.set_high_watermark_from_leader(3)
    assert follower.high_watermark == 3


def test_stale_or_future_leader_epoch_from_a_client_is_fenced(tmp_path, clock):
    leader = partition(tmp_path, 1, clock)
    leader.make_leader(4, (1,), (1,))
    with pytest.raises(KafkaError) as stale:
        leader.check_leader(3)
    with pytest.raises(KafkaError) as future:
        leader.check_leader(5)
    assert (stale.value.code, future.value.code) == (ErrorCode.fenced_leader_epoch, ErrorCode.unknown_leader_epoch)


def test_follower_whose_whole_log_is_an_epoch_the_leader_never_had_is_told_to_truncate_it_all(tmp_path, clock):
    """A broker led epoch 0, wrote a batch nobody copied and died; the new leader's log starts
    at epoch 1. The old one, now following, must be told its epoch ends at 0 here (not left
    fetching from an offset nobody can answer, never rejoining the ISR)."""
    old = partition(tmp_path, 1, clock)
    old.make_leader(0, (1, 2), (1,))
    old.append_records(batch(3))
    leader = partition(tmp_path, 2, clock)
    leader.make_leader(1, (1, 2), (2,))
    leader.append_records(batch(5))
    assert leader.log.leader_epochs.entries == [(1, 0)]
    assert leader.diverging_epoch(0, old.log_end_offset) == (0, 0)
    assert leader.diverging_epoch(1, 5) is None, "a follower that has the leader's epoch is a prefix"


def test_a_leader_without_epochs_answers_offset_out_of_range_to_a_follower_that_has_some(tmp_path, clock):
    leader = partition(tmp_path, 1, clock)
    leader.make_leader(3, (1, 2), (1, 2))
    with pytest.raises(KafkaError) as error:
        leader.diverging_epoch(2, 4)
    assert error.value.code == ErrorCode.offset_out_of_range
