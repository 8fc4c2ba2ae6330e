"""Online upgrade and downgrade of a consumer group (KIP-848, group.consumer.migration.policy): a
group's members switch from the classic protocol to the consumer protocol and back, one at a
time, and the group keeps every partition assigned once, keeps consuming, and keeps its offsets.
The scenario of confluent-kafka-python's own upgrade/downgrade test, with each of librdkafka's
classic assignors."""

from __future__ import annotations

import time

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from .clients import Record, produce

PARTITIONS = 10
TIMEOUT_S = 60


def _consumer(bootstrap: str, group: str, **config) -> confluent_kafka.Consumer:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                         "auto.offset.reset": "earliest", **config})
    consumer.subscribe([group])
    return consumer


def _settle(consumers, each: int, what: str) -> None:
    """Poll every consumer until each owns `each` partitions and together they own all of them."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for consumer in consumers:
            consumer.poll(0.1)
        owned = [{(tp.topic, tp.partition) for tp in consumer.assignment()} for consumer in consumers]
        if all(len(o) == each for o in owned) and len(set().union(*owned)) == PARTITIONS:
            return
    raise AssertionError(f"{what}: assignments {[sorted(p for _, p in o) for o in owned]}")


def _group_type(bootstrap: str, group: str):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15).type


def _consume(consumers, count: int) -> int:
    read = 0
    deadline = time.monotonic() + TIMEOUT_S
    while read < count and time.monotonic() < deadline:
        for consumer in consumers:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                read += 1
    return read


@pytest.mark.parametrize("assignor", ["roundrobin", "range", "cooperative-sticky"])
def test_rolling_upgrade_and_downgrade_keeps_the_group_consuming(start_broker, assignor):
    broker = start_broker(**{"group.initial.rebalance.delay.ms": 0})
    bootstrap = broker.bootstrap_servers
    group = f"migrating-{assignor}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(group, PARTITIONS, 1)])[group].result(30)

    def seed(start: int) -> None:
        produce("confluent", bootstrap, group, [Record(None, b"v%d" % i, partition=i % PARTITIONS) for i in range(start, start + 100)])

    classic = _consumer(bootstrap, group, **{"group.protocol": "classic", "partition.assignment.strategy": assignor})
    modern = None
    try:
        _settle([classic], PARTITIONS, "the classic member owns every partition")
        assert _group_type(bootstrap, group) == confluent_kafka.ConsumerGroupType.CLASSIC
        seed(0)
        assert _consume([classic], 100) == 100

        modern = _consumer(bootstrap, group, **{"group.protocol": "consumer"})
        _settle([classic, modern], PARTITIONS // 2, "after the upgrade each member owns half")
        assert _group_type(bootstrap, group) == confluent_kafka.ConsumerGroupType.CONSUMER
        seed(100)
        assert _consume([classic, modern], 100) == 100

        modern.close()
        modern = None
        _settle([classic], PARTITIONS, "after the downgrade the classic member owns everything again")
        assert _group_type(bootstrap, group) == confluent_kafka.ConsumerGroupType.CLASSIC
        seed(200)
        assert _consume([classic], 100) == 100
        classic.commit(asynchronous=False)
        committed = classic.committed([confluent_kafka.TopicPartition(group, p) for p in range(PARTITIONS)], timeout=10)
        assert sum(tp.offset for tp in committed) == 300, "every record consumed, and its offset kept"
    finally:
        classic.close()
        if modern is not None:
            modern.close()
    assert "Upgraded group" in broker.output() and "Downgraded group" in broker.output()
