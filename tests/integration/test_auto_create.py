"""Producing to an unknown topic creates it with num.partitions, unless auto-creation is off."""

import confluent_kafka
import pytest

from .clients import CLIENTS, Record, consume, produce, topic_partitions


@pytest.mark.parametrize("client", CLIENTS)
def test_producing_to_unknown_topic_creates_it_with_num_partitions(start_broker, client):
    broker = start_broker(**{"num.partitions": 3})
    topic = f"auto-created-{client}"
    records = [Record(key=f"key-{i}".encode(), value=f"value-{i}".encode()) for i in range(30)]

    deliveries = produce(client, broker.bootstrap_servers, topic, records)

    assert sorted(topic_partitions(broker.bootstrap_servers, topic)) == [0, 1, 2]
    assert {d.partition for d in deliveries} <= {0, 1, 2}
    consumed = consume(client, broker.bootstrap_servers, topic, range(3), len(records))
    assert sorted(m.value for m in consumed) == sorted(r.value for r in records)


def test_producing_to_unknown_topic_fails_when_auto_create_is_disabled(start_broker):
    broker = start_broker(**{"auto.create.topics.enable": "false"})
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "message.timeout.ms": 3000}
    )
    errors = []
    producer.produce("not-auto-created", value=b"lost", on_delivery=lambda err, msg: errors.append(err))
    assert producer.flush(10) == 0

    assert len(errors) == 1 and errors[0] is not None, "the message was acknowledged"
    assert errors[0].code() in (
        confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART,
        confluent_kafka.KafkaError._UNKNOWN_TOPIC,
        confluent_kafka.KafkaError._MSG_TIMED_OUT,
    ), errors[0]
    assert topic_partitions(broker.bootstrap_servers, "not-auto-created") is None


def test_produce_request_never_creates_a_topic(broker):
    """Kafka creates topics on Metadata only: a Produce for an unknown topic is refused with
    UNKNOWN_TOPIC_OR_PARTITION (retriable; clients then ask Metadata, which creates it)."""
    from .test_bad_input import UNKNOWN_TOPIC_OR_PARTITION, batch, produce_partition
    from .wire import WireClient

    with WireClient(broker.bootstrap_servers) as client:
        answer = produce_partition(client, "created-by-produce", 0, batch(b"lost"))

    assert answer.error_code == UNKNOWN_TOPIC_OR_PARTITION
    assert topic_partitions(broker.bootstrap_servers, "created-by-produce") is None
