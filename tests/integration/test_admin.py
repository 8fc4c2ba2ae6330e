"""Topic administration through the clients' admin APIs, starting with the seed's kaninitopic."""

import time

import kafka
import kafka.errors
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from .clients import admin, create_topic, topic_partitions


def create_error(bootstrap: str, name: str, partitions: int = 1) -> KafkaError:
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    with pytest.raises(KafkaException) as raised:
        futures[name].result(timeout=30)
    return raised.value.args[0]


def test_create_kaninitopic_with_three_partitions_and_describe(broker):
    client = admin(broker.bootstrap_servers)
    futures = client.create_topics([NewTopic("kaninitopic", num_partitions=3, replication_factor=1)])
    assert futures["kaninitopic"].result(timeout=30) is None

    metadata = client.list_topics(timeout=10)
    assert [(b.id, b.host, b.port) for b in metadata.brokers.values()] == [(0, broker.host, broker.port)]
    topic = metadata.topics["kaninitopic"]
    assert topic.error is None
    assert sorted(topic.partitions) == [0, 1, 2]
    for partition in topic.partitions.values():
        assert partition.error is None
        assert partition.leader == 0
        assert list(partition.replicas) == [0]
        assert list(partition.isrs) == [0]


def test_kafka_python_admin_creates_and_describes(broker):
    client = kafka.KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        client.create_topics({"kaninitopic": {"num_partitions": 3, "replication_factor": 1}})
        assert "kaninitopic" in client.list_topics()
        (described,) = client.describe_topics(["kaninitopic"])
    finally:
        client.close()
    assert described["name"] == "kaninitopic"
    assert described["error_code"] == 0
    partitions = sorted(described["partitions"], key=lambda p: p["partition_index"])
    assert [p["partition_index"] for p in partitions] == [0, 1, 2]
    for partition in partitions:
        assert partition["error_code"] == 0
        assert partition["leader_id"] == 0
        assert list(partition["replica_nodes"]) == [0]


def test_creating_an_existing_topic_fails_with_topic_already_exists(broker):
    create_topic(broker.bootstrap_servers, "kaninitopic", partitions=3)
    assert create_error(broker.bootstrap_servers, "kaninitopic", 3).code() == KafkaError.TOPIC_ALREADY_EXISTS

    client = kafka.KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            client.create_topics({"kaninitopic": {"num_partitions": 3, "replication_factor": 1}})
    finally:
        client.close()
    assert sorted(topic_partitions(broker.bootstrap_servers, "kaninitopic")) == [0, 1, 2]


@pytest.mark.parametrize(
    "name", ["bad/name", ".", "..", "x" * 250, "spaces are bad"], ids=["slash", "dot", "dotdot", "250-chars", "spaces"]
)
def test_invalid_topic_name_fails_with_invalid_topic_exception(broker, name):
    assert create_error(broker.bootstrap_servers, name).code() == KafkaError.TOPIC_EXCEPTION
    assert topic_partitions(broker.bootstrap_servers, name) is None


def test_deleted_topic_disappears_from_metadata(broker):
    create_topic(broker.bootstrap_servers, "short-lived", partitions=2)
    create_topic(broker.bootstrap_servers, "stays", partitions=1)
    client = admin(broker.bootstrap_servers)
    futures = client.delete_topics(["short-lived"], operation_timeout=30)
    assert futures["short-lived"].result(timeout=30) is None

    deadline = time.monotonic() + 10
    while topic_partitions(broker.bootstrap_servers, "short-lived") is not None:
        assert time.monotonic() < deadline, "deleted topic still listed after 10 s"
        time.sleep(0.1)
    assert topic_partitions(broker.bootstrap_servers, "stays") is not None


def test_deleting_an_unknown_topic_fails_with_unknown_topic(broker):
    client = admin(broker.bootstrap_servers)
    futures = client.delete_topics(["never-created"], operation_timeout=30)
    with pytest.raises(KafkaException) as raised:
        futures["never-created"].result(timeout=30)
    assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_other_clients_are_served_while_a_topic_of_thousands_of_partitions_is_created(broker):
    """Creating 5,000 partitions is seconds of directories and files; a producer on another topic
    has its records acknowledged meanwhile instead of waiting for all of them."""
    from confluent_kafka import Producer

    create_topic(broker.bootstrap_servers, "small", 1)
    client = admin(broker.bootstrap_servers)
    big = client.create_topics([NewTopic("thousands", num_partitions=5000, replication_factor=1)],
                               request_timeout=120, operation_timeout=120)["thousands"]
    time.sleep(0.2)  # the request is being served
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all"})
    delivered = []
    producer.produce("small", b"while the big one is created", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(60)
    assert delivered == [None]
    assert not big.done(), "the producer waited for the 5,000 partitions"
    assert big.result(timeout=120) is None
    assert len(client.list_topics(timeout=30).topics["thousands"].partitions) == 5000
