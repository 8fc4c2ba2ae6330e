"""Replication throttles: the measured rate, which replicas a throttle list names, and the
configs kafka-reassign-partitions --throttle writes."""

from __future__ import annotations

import pytest

from odradek.config import ConfigError, topic_config_defs
from odradek.replica.quota import UNLIMITED, ReplicationQuota, throttled_partitions


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_quota_is_exceeded_once_the_rate_over_the_window_passes_the_limit():
    clock = Ticks()
    quota = ReplicationQuota(rate=1000, samples=11, sample_s=1.0, clock=clock)
    quota.record(900)
    assert not quota.is_exceeded()  # 900 B in the first second
    quota.record(200)
    assert quota.is_exceeded()  # 1,100 B/s
    clock.now += 2.0
    assert not quota.is_exceeded()  # 1,100 B over 2 s


def test_old_samples_leave_the_window():
    clock = Ticks()
    quota = ReplicationQuota(rate=100, samples=3, sample_s=1.0, clock=clock)
    quota.record(10_000)
    assert quota.is_exceeded()
    clock.now += 3.0
    quota.record(1)
    assert not quota.is_exceeded()


def test_the_default_rate_never_throttles():
    quota = ReplicationQuota(rate=UNLIMITED)
    quota.record(1 << 40)
    assert quota.unlimited and not quota.is_exceeded()


def test_a_throttle_list_names_partitions_per_broker():
    entries = ["0:1", "0:2", "1:2", " 2 : 3 "]
    assert throttled_partitions(entries, 2) == {0, 1}
    assert throttled_partitions(entries, 3) == {2}
    assert throttled_partitions(entries, 4) == frozenset()
    assert throttled_partitions(["*"], 7) is None  # every partition
    assert throttled_partitions([], 1) == frozenset()


@pytest.mark.parametrize("value", ["0:1,1:2", "*", "", " 3:101 , 4:102 "])
def test_throttle_lists_kafka_accepts(value):
    topic_config_defs()["leader.replication.throttled.replicas"].parse(value)


@pytest.mark.parametrize("value", ["0-1", "a:1", "*,0:1", "1:"])
def test_throttle_lists_kafka_refuses(value):
    with pytest.raises(ConfigError, match="partitionId:brokerId"):
        topic_config_defs()["follower.replication.throttled.replicas"].parse(value)
