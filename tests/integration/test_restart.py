"""Acknowledged messages survive a clean stop and a kill -9, at the same offsets."""

import pytest

from .clients import Record, by_partition, consume, create_topic, produce, topic_partitions

MESSAGES = 5_000
PARTITIONS = 3


def records(start: int, count: int) -> list[Record]:
    return [
        Record(key=f"k{i}".encode(), value=f"message {i}".encode(), partition=i % PARTITIONS, timestamp_ms=1_700_000_000_000 + i)
        for i in range(start, start + count)
    ]


def assert_log_is(bootstrap: str, topic: str, sent: list[Record]) -> None:
    consumed = consume("confluent", bootstrap, topic, range(PARTITIONS), len(sent))
    assert len(consumed) == len(sent)
    got = by_partition(consumed)
    for partition in range(PARTITIONS):
        expected = [r for r in sent if r.partition == partition]
        assert [m.offset for m in got[partition]] == list(range(len(expected)))
        assert [m.as_record() for m in got[partition]] == expected


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_acknowledged_messages_survive_restart(broker, how):
    topic = f"durable-{how}"
    create_topic(broker.bootstrap_servers, topic, partitions=PARTITIONS)
    before = records(0, MESSAGES)
    produce("confluent", broker.bootstrap_servers, topic, before, acks="all")

    if how == "sigterm":
        assert broker.stop() == 0, "broker did not exit cleanly on SIGTERM"
    else:
        broker.kill()
    broker.start()

    assert_log_is(broker.bootstrap_servers, topic, before)

    after = records(MESSAGES, 300)
    deliveries = produce("confluent", broker.bootstrap_servers, topic, after, acks="all")
    for partition in range(PARTITIONS):
        sent_before = sum(1 for r in before if r.partition == partition)
        offsets = [d.offset for r, d in zip(after, deliveries) if r.partition == partition]
        assert offsets == list(range(sent_before, sent_before + len(offsets))), f"partition {partition}"
    assert_log_is(broker.bootstrap_servers, topic, before + after)


def test_topic_survives_two_restarts_without_data(broker):
    create_topic(broker.bootstrap_servers, "empty-but-kept", partitions=PARTITIONS)
    for _ in range(2):
        assert broker.stop() == 0
        broker.start()

    assert sorted(topic_partitions(broker.bootstrap_servers, "empty-but-kept")) == list(range(PARTITIONS))
