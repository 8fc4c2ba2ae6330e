"""Admin APIs a Kafka operator uses, through real admin clients: configs, partitions, records, log dirs."""

from __future__ import annotations


import confluent_kafka
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
)

from .clients import Record, admin, consume, create_topic, high_watermarks, produce

TIMEOUT_S = 15


def describe(client, resource):
    return client.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)


def test_topic_config_sources_and_synonyms(broker):
    create_topic(broker.bootstrap_servers, "described", partitions=1, config={"retention.ms": "3600000"})
    client = admin(broker.bootstrap_servers)
    configs = describe(client, ConfigResource(ConfigResource.Type.TOPIC, "described"))
    retention = configs["retention.ms"]
    assert retention.value == "3600000"
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    segment = configs["segment.bytes"]
    assert segment.value == "1073741824"
    assert segment.source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"


def test_incremental_alter_topic_config_applies_without_restart(broker):
    create_topic(broker.bootstrap_servers, "altered", partitions=1)
    client = admin(broker.bootstrap_servers)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "altered",
        incremental_configs=[
            ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ],
    )
    client.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
    configs = describe(client, ConfigResource(ConfigResource.Type.TOPIC, "altered"))
    assert configs["max.message.bytes"].value == "2000"
    assert configs["cleanup.policy"].value == "delete,compact"
    # The new limit holds at once: a 5 KB record is refused, a small one accepted.
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers, "message.timeout.ms": 5000})
    results = []
    producer.produce("altered", key=b"k", value=b"x" * 5000, on_delivery=lambda err, msg: results.append(err))
    producer.flush(TIMEOUT_S)  # separately: one batch holding both would be refused whole
    producer.produce("altered", key=b"k", value=b"small", on_delivery=lambda err, msg: results.append(err))
    producer.flush(TIMEOUT_S)
    assert results[0] is not None and results[0].code() == confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE
    assert results[1] is None
    # Delete the override: back to the default.
    reset = ConfigResource(
        ConfigResource.Type.TOPIC, "altered",
        incremental_configs=[ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)],
    )
    client.incremental_alter_configs([reset])[reset].result(timeout=TIMEOUT_S)
    assert describe(client, ConfigResource(ConfigResource.Type.TOPIC, "altered"))["max.message.bytes"].value == "1048588"


def test_bad_config_changes_are_refused(broker):
    create_topic(broker.bootstrap_servers, "guarded", partitions=1)
    client = admin(broker.bootstrap_servers)
    for entry in (ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("retension.ms", "1000", incremental_operation=AlterConfigOpType.SET)):
        resource = ConfigResource(ConfigResource.Type.TOPIC, "guarded", incremental_configs=[entry])
        with pytest.raises(confluent_kafka.KafkaException) as failure:
            client.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
        assert failure.value.args[0].code() == confluent_kafka.KafkaError.INVALID_CONFIG
    missing = ConfigResource(ConfigResource.Type.TOPIC, "no-such-topic")
    with pytest.raises(confluent_kafka.KafkaException) as failure:
        describe(client, missing)
    assert failure.value.args[0].code() == confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART
    static = ConfigResource(
        ConfigResource.Type.BROKER, "0",
        incremental_configs=[ConfigEntry("listeners", "PLAINTEXT://:1", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(confluent_kafka.KafkaException) as failure:
        client.incremental_alter_configs([static])[static].result(timeout=TIMEOUT_S)
    assert failure.value.args[0].code() == confluent_kafka.KafkaError.INVALID_CONFIG


def test_dynamic_broker_config_is_persisted_and_becomes_the_topic_default(broker):
    create_topic(broker.bootstrap_servers, "follows-broker", partitions=1)
    client = admin(broker.bootstrap_servers)
    resource = ConfigResource(
        ConfigResource.Type.BROKER, "0",
        incremental_configs=[ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)],
    )
    client.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
    topic = ConfigResource(ConfigResource.Type.TOPIC, "follows-broker")
    entry = describe(client, topic)["retention.ms"]
    assert entry.value == "7200000"
    assert entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    broker.stop()
    broker.start()
    client = admin(broker.bootstrap_servers)
    assert describe(client, topic)["retention.ms"].value == "7200000"
    broker_entry = describe(client, ConfigResource(ConfigResource.Type.BROKER, "0"))["log.retention.ms"]
    assert broker_entry.value == "7200000"
    assert broker_entry.is_read_only is False
    assert describe(client, ConfigResource(ConfigResource.Type.BROKER, "0"))["listeners"].is_read_only is True


def test_create_partitions_grows_the_topic_and_producers_use_them(broker):
    create_topic(broker.bootstrap_servers, "growing", partitions=1)
    client = admin(broker.bootstrap_servers)
    client.create_partitions([NewPartitions("growing", 4)])["growing"].result(timeout=TIMEOUT_S)
    metadata = client.list_topics("growing", timeout=TIMEOUT_S)
    assert sorted(metadata.topics["growing"].partitions) == [0, 1, 2, 3]
    produce("confluent", broker.bootstrap_servers, "growing", [Record(b"k", b"v", partition=3)])
    assert high_watermarks(broker.bootstrap_servers, "growing", [3]) == {3: 1}
    with pytest.raises(confluent_kafka.KafkaException) as failure:
        client.create_partitions([NewPartitions("growing", 2)])["growing"].result(timeout=TIMEOUT_S)
    assert failure.value.args[0].code() == confluent_kafka.KafkaError.INVALID_PARTITIONS


def test_delete_records_moves_the_start_and_consumers_follow(broker):
    create_topic(broker.bootstrap_servers, "trimmed", partitions=1)
    produce("confluent", broker.bootstrap_servers, "trimmed", [Record(None, b"v%d" % i, partition=0) for i in range(10)])
    client = admin(broker.bootstrap_servers)
    result = client.delete_records([TopicPartition("trimmed", 0, 6)])
    (deleted,) = result.values()
    assert deleted.result(timeout=TIMEOUT_S).low_watermark == 6
    consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "trim"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition("trimmed", 0), timeout=TIMEOUT_S)
    finally:
        consumer.close()
    assert (low, high) == (6, 10)
    consumed = consume("confluent", broker.bootstrap_servers, "trimmed", [0], 4)
    assert [m.value for m in consumed] == [b"v6", b"v7", b"v8", b"v9"]


def test_describe_log_dirs_reports_partition_sizes(broker):
    from kafka.admin import KafkaAdminClient

    create_topic(broker.bootstrap_servers, "sized", partitions=2)
    produce("confluent", broker.bootstrap_servers, "sized", [Record(None, b"x" * 1000, partition=0) for _ in range(20)])
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        response = client.describe_log_dirs()
    finally:
        client.close()
    (broker_entry,) = response
    sizes = {
        (topic["name"], partition["partition_index"]): partition["partition_size"]
        for log_dir in broker_entry["log_dirs"]
        for topic in log_dir["topics"]
        for partition in topic["partitions"]
    }
    assert all(log_dir["error_code"] == 0 and log_dir["usable_bytes"] > 0 for log_dir in broker_entry["log_dirs"])
    assert sizes[("sized", 0)] > 20_000
    assert sizes[("sized", 1)] == 0


def test_compacted_topic_refuses_records_without_a_key(broker):
    create_topic(broker.bootstrap_servers, "keyed", partitions=1, config={"cleanup.policy": "compact"})
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers, "message.timeout.ms": 5000})
    errors = []
    producer.produce("keyed", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(TIMEOUT_S)
    producer.produce("keyed", key=b"k", value=b"keyed", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(TIMEOUT_S)
    assert errors[0] is not None and errors[0].code() == confluent_kafka.KafkaError.INVALID_RECORD
    assert errors[1] is None
    assert high_watermarks(broker.bootstrap_servers, "keyed", [0]) == {0: 1}


def test_topic_with_flush_messages_1_acknowledges_and_survives_kill_9(broker):
    """flush.messages=1 makes the produce path fsync (in a worker thread) before answering; the
    fsync itself is covered by the log's unit tests, this checks the path end to end."""
    create_topic(broker.bootstrap_servers, "synced", partitions=1, config={"flush.messages": "1"})
    produce("confluent", broker.bootstrap_servers, "synced", [Record(b"k", b"v%d" % i, partition=0) for i in range(50)])
    broker.kill()
    broker.start()
    consumed = consume("confluent", broker.bootstrap_servers, "synced", [0], 50)
    assert [m.value for m in consumed] == [b"v%d" % i for i in range(50)]
