"""Kafka's own 4.4 admin tools against odradek: kafka-configs, kafka-topics --alter,
kafka-delete-records, kafka-get-offsets and kafka-log-dirs, each with the output a user reads
checked exactly. The tools all go through Kafka's AdminClient (IncrementalAlterConfigs,
DescribeConfigs, CreatePartitions, DeleteRecords, ListOffsets, DescribeLogDirs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from odradek.config import broker_config_defs

from .conftest import Message, consume, create_topic, produce

TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
DELETE_RECORDS_COMMAND = "org.apache.kafka.tools.DeleteRecordsCommand"
GET_OFFSET_SHELL = "org.apache.kafka.tools.GetOffsetShell"
LOG_DIRS_COMMAND = "org.apache.kafka.tools.LogDirsCommand"

# "  name=value sensitive=false synonyms={SOURCE:name=value, ...}", one line per config entry
CONFIG_LINE = re.compile(r"^  (?P<name>[^=\s]+)=(?P<value>.*) sensitive=(?P<sensitive>true|false) synonyms=\{(?P<synonyms>.*)\}$")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _configs(java_tools, bootstrap: str, entity_type: str, entity_name: str, *args: object, **kwargs):
    return java_tools.run(
        CONFIG_COMMAND, "--bootstrap-server", bootstrap, "--entity-type", entity_type, "--entity-name", entity_name,
        *args, **kwargs,
    )


SENSITIVE_CONFIGS = {d.name for d in broker_config_defs().values() if d.type == "password"}


def _described(text: str, header: str) -> dict[str, tuple[str, str]]:
    """The entries `kafka-configs --describe` printed under `header`: name -> (value, synonyms)."""
    lines = _lines(text)
    assert lines[0] == header, text
    entries = {}
    for line in lines[1:]:
        match = CONFIG_LINE.match(line)
        assert match, f"not a config entry line: {line!r}\n{text}"
        # secrets (ssl.keystore.password, sasl.jaas.config, ...) are sensitive and never shown, as in Kafka
        sensitive = match["name"] in SENSITIVE_CONFIGS
        assert match["sensitive"] == ("true" if sensitive else "false"), line
        if sensitive:
            assert match["value"] == "null", line
        entries[match["name"]] = (match["value"], match["synonyms"])
    return entries


def _values(entries: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, (value, _synonyms) in entries.items()}


# --- 1. kafka-configs: topics -----------------------------------------------------------------


def test_kafka_configs_topic_overrides_add_describe_delete(broker, java_tools):
    bootstrap, topic = broker.bootstrap_servers, "configured"
    created = java_tools.run(
        TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--create", "--topic", topic,
        "--partitions", 1, "--replication-factor", 1, "--config", "retention.ms=86400000",
    )
    assert _lines(created.stdout) == [f"Created topic {topic}."]

    header = f"Dynamic configs for topic {topic} are:"
    at_creation = _described(_configs(java_tools, bootstrap, "topics", topic, "--describe").stdout, header)
    assert at_creation == {
        "retention.ms": ("86400000", "DYNAMIC_TOPIC_CONFIG:retention.ms=86400000"),
    }

    altered = _configs(
        java_tools, bootstrap, "topics", topic, "--alter", "--add-config", "retention.ms=3600000,max.message.bytes=2000",
    )
    assert _lines(altered.stdout) == [f"Completed updating config for topic {topic}."]
    after_add = _described(_configs(java_tools, bootstrap, "topics", topic, "--describe").stdout, header)
    assert after_add == {
        "max.message.bytes": ("2000", "DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000, DEFAULT_CONFIG:message.max.bytes=1048588"),
        "retention.ms": ("3600000", "DYNAMIC_TOPIC_CONFIG:retention.ms=3600000"),
    }

    deleted = _configs(java_tools, bootstrap, "topics", topic, "--alter", "--delete-config", "max.message.bytes")
    assert _lines(deleted.stdout) == [f"Completed updating config for topic {topic}."]
    after_delete = _described(_configs(java_tools, bootstrap, "topics", topic, "--describe").stdout, header)
    assert _values(after_delete) == {"retention.ms": "3600000"}

    # kafka-topics --describe shows the same overrides, and (as Kafka 4.1+) the cluster-wide
    # min.insync.replicas, a dynamic default since KIP-966
    summary = _lines(java_tools.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--topic", topic).stdout)[0]
    assert re.split(r"\t+", summary.strip())[-1] == "Configs: min.insync.replicas=1,retention.ms=3600000"


def test_kafka_configs_topic_describe_all_lists_defaults_with_values(broker, java_tools):
    bootstrap, topic = broker.bootstrap_servers, "all-configs"
    create_topic(bootstrap, topic)
    _configs(java_tools, bootstrap, "topics", topic, "--alter", "--add-config", "cleanup.policy=compact")

    described = _configs(java_tools, bootstrap, "topics", topic, "--describe", "--all")
    entries = _described(described.stdout, f"All configs for topic {topic} are:")
    values = _values(entries)
    assert {
        "cleanup.policy": "compact",
        "compression.type": "producer",
        "delete.retention.ms": "86400000",
        "max.message.bytes": "1048588",
        "message.timestamp.type": "CreateTime",
        "min.insync.replicas": "1",
        "retention.bytes": "-1",
        "retention.ms": "604800000",
        "segment.bytes": "1073741824",
        "segment.ms": "604800000",
    }.items() <= values.items(), described.stdout
    assert entries["cleanup.policy"][1] == "DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, DEFAULT_CONFIG:log.cleanup.policy=delete"
    assert entries["segment.bytes"][1] == "DEFAULT_CONFIG:log.segment.bytes=1073741824"
    # Kafka 4.4 lists a synonym chain only from its first name on: log.retention.ms is not set,
    # so retention.ms shows no synonym at all (log.retention.hours=168 is dropped)
    assert entries["retention.ms"] == ("604800000", "")
    assert entries["min.insync.replicas"][1] == "DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1, DEFAULT_CONFIG:min.insync.replicas=1"
    # every entry has a value: none is left out as null; the throttled replica lists are empty by
    # default and, having no broker config behind them, list no synonym (as Kafka shows them)
    throttled = {"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"}
    assert all(value and value != "null" for name, value in values.items() if name not in throttled), described.stdout
    assert all(entries[name] == ("", "") for name in throttled), described.stdout


# --- 1. kafka-configs: brokers ----------------------------------------------------------------


def test_kafka_configs_broker_dynamic_config_set_inherited_and_deleted(broker, java_tools):
    bootstrap, topic = broker.bootstrap_servers, "inherits"
    create_topic(bootstrap, topic)
    header = "Dynamic configs for broker 0 are:"
    assert _lines(_configs(java_tools, bootstrap, "brokers", "0", "--describe").stdout) == [header]

    altered = _configs(java_tools, bootstrap, "brokers", "0", "--alter", "--add-config", "log.retention.ms=7200000")
    assert _lines(altered.stdout) == ["Completed updating config for broker 0."]
    entries = _described(_configs(java_tools, bootstrap, "brokers", "0", "--describe").stdout, header)
    assert list(entries) == ["log.retention.ms"]
    value, synonyms = entries["log.retention.ms"]
    assert value == "7200000"
    assert synonyms.startswith("DYNAMIC_BROKER_CONFIG:log.retention.ms=7200000"), synonyms

    # a topic without an override now has the broker's retention
    topic_all = _described(
        _configs(java_tools, bootstrap, "topics", topic, "--describe", "--all").stdout, f"All configs for topic {topic} are:"
    )
    assert topic_all["retention.ms"][0] == "7200000"
    assert topic_all["retention.ms"][1].startswith("DYNAMIC_BROKER_CONFIG:log.retention.ms=7200000"), topic_all["retention.ms"]

    deleted = _configs(java_tools, bootstrap, "brokers", "0", "--alter", "--delete-config", "log.retention.ms")
    assert _lines(deleted.stdout) == ["Completed updating config for broker 0."]
    assert _lines(_configs(java_tools, bootstrap, "brokers", "0", "--describe").stdout) == [header]


def test_kafka_configs_broker_describe_synonyms_as_kafka_prints_them(broker, java_tools):
    bootstrap = broker.bootstrap_servers
    _configs(java_tools, bootstrap, "brokers", "0", "--alter", "--add-config", "log.retention.ms=7200000")
    described = _configs(java_tools, bootstrap, "brokers", "0", "--describe")
    assert _lines(described.stdout) == [
        "Dynamic configs for broker 0 are:",
        "  log.retention.ms=7200000 sensitive=false "
        "synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=7200000, DEFAULT_CONFIG:log.retention.hours=168}",
    ]


def test_cluster_wide_min_insync_replicas_is_a_dynamic_default_that_cannot_be_removed(broker, java_tools):
    """KIP-966 as Kafka 4.1+ has it: the cluster-wide min.insync.replicas is written once as a dynamic
    default; kafka-configs --entity-default shows it, refuses to delete it, and changes every topic."""
    bootstrap = broker.bootstrap_servers

    def cluster_default(*args, **kwargs):
        return java_tools.run(CONFIG_COMMAND, "--bootstrap-server", bootstrap, "--entity-type", "brokers",
                              "--entity-default", *args, **kwargs)

    assert _described(cluster_default("--describe").stdout, "Default configs for brokers in the cluster are:") == {
        "min.insync.replicas": ("1", "DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1"),
    }
    refused = cluster_default("--alter", "--delete-config", "min.insync.replicas", check=False)
    assert refused.returncode == 1
    assert "InvalidConfigurationException: Cluster-level min.insync.replicas cannot be removed" in refused.stderr, refused

    cluster_default("--alter", "--add-config", "min.insync.replicas=2")
    create_topic(bootstrap, "after-min-isr-change")
    entries = _described(_configs(java_tools, bootstrap, "topics", "after-min-isr-change", "--describe", "--all").stdout,
                         "All configs for topic after-min-isr-change are:")
    assert entries["min.insync.replicas"] == (
        "2", "DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=2, DEFAULT_CONFIG:min.insync.replicas=1")


@pytest.mark.parametrize("static", ["listeners=PLAINTEXT://127.0.0.1:1", "log.dirs=/nonexistent"])
def test_kafka_configs_refuses_static_broker_config(broker, java_tools, static):
    bootstrap = broker.bootstrap_servers
    name = static.split("=", 1)[0]
    refused = _configs(java_tools, bootstrap, "brokers", "0", "--alter", "--add-config", static, check=False)
    assert refused.returncode == 1
    assert f"InvalidConfigurationException: cannot update these configs dynamically: {name}" in refused.stderr, refused
    assert "Completed updating config" not in refused.stdout
    # nothing changed
    assert _lines(_configs(java_tools, bootstrap, "brokers", "0", "--describe").stdout) == ["Dynamic configs for broker 0 are:"]
    entries = _described(
        _configs(java_tools, bootstrap, "brokers", "0", "--describe", "--all").stdout, "All configs for broker 0 are:"
    )
    expected = {"listeners": f"PLAINTEXT://{bootstrap}", "log.dirs": str(broker.log_dir)}[name]
    assert entries[name][0] == expected
    assert entries[name][1].startswith(f"STATIC_BROKER_CONFIG:{name}={expected}")


# --- 2. kafka-topics --alter --partitions -----------------------------------------------------


def _partition_lines(java_tools, bootstrap: str, topic: str) -> tuple[str, list[list[str]]]:
    lines = _lines(java_tools.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--topic", topic).stdout)
    return lines[0], [re.split(r"\t+", line.strip())[:5] for line in lines[1:]]


def test_kafka_topics_alter_adds_partitions_and_refuses_shrinking(broker, java_tools):
    bootstrap, topic = broker.bootstrap_servers, "growing"
    create_topic(bootstrap, topic, partitions=1)
    altered = java_tools.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--alter", "--topic", topic, "--partitions", 4)
    assert altered.stdout.strip() == ""

    summary, partitions = _partition_lines(java_tools, bootstrap, topic)
    assert "\tPartitionCount: 4\t" in summary
    assert partitions == [[f"Topic: {topic}", f"Partition: {p}", "Leader: 0", "Replicas: 0", "Isr: 0"] for p in range(4)]

    for count in (2, 4):
        refused = java_tools.run(
            TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--alter", "--topic", topic, "--partitions", count, check=False,
        )
        assert refused.returncode == 1, refused
        assert "Error while executing topic command : " in refused.stdout, refused
        assert "org.apache.kafka.common.errors.InvalidPartitionsException: " in refused.stderr, refused
    assert "\tPartitionCount: 4\t" in _partition_lines(java_tools, bootstrap, topic)[0]

    # the new partitions take records
    produced = produce(bootstrap, topic, [Message(3, 0, b"k", b"v", (), 1_700_000_000_000)])
    assert produced == [(3, 0)]


def test_kafka_topics_shrink_refusal_has_kafkas_wording(broker, java_tools):
    bootstrap, topic = broker.bootstrap_servers, "growing"
    create_topic(bootstrap, topic, partitions=4)
    messages = {}
    for count in (2, 4):
        refused = java_tools.run(
            TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--alter", "--topic", topic, "--partitions", count, check=False,
        )
        messages[count] = _lines(refused.stdout)
    assert messages == {
        2: [f"Error while executing topic command : The topic {topic} currently has 4 partition(s); 2 would not be an increase."],
        4: ["Error while executing topic command : Topic already has 4 partition(s)."],
    }


# --- 3. kafka-delete-records and kafka-get-offsets ---------------------------------------------


def _offsets(java_tools, bootstrap: str, topic: str, time: int) -> list[str]:
    return _lines(java_tools.run(GET_OFFSET_SHELL, "--bootstrap-server", bootstrap, "--topic", topic, "--time", time).stdout)


def test_kafka_delete_records_then_get_offsets(broker, java_tools, tmp_path: Path):
    bootstrap, topic = broker.bootstrap_servers, "trimmed"
    create_topic(bootstrap, topic, partitions=2)
    produce(bootstrap, topic, [Message(0, 0, f"k{i}".encode(), f"v{i}".encode(), (), 1_700_000_000_000 + i) for i in range(10)])
    assert _offsets(java_tools, bootstrap, topic, -2) == [f"{topic}:0:0", f"{topic}:1:0"]
    assert _offsets(java_tools, bootstrap, topic, -1) == [f"{topic}:0:10", f"{topic}:1:0"]

    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 0, "offset": 5}], "version": 1}))
    deleted = java_tools.run(DELETE_RECORDS_COMMAND, "--bootstrap-server", bootstrap, "--offset-json-file", offsets)
    assert _lines(deleted.stdout) == [
        "Executing records delete operation",
        "Records delete operation completed:",
        f"partition: {topic}-0\tlow_watermark: 5",
    ]

    assert _offsets(java_tools, bootstrap, topic, -2) == [f"{topic}:0:5", f"{topic}:1:0"]
    assert _offsets(java_tools, bootstrap, topic, -1) == [f"{topic}:0:10", f"{topic}:1:0"]
    one = java_tools.run(GET_OFFSET_SHELL, "--bootstrap-server", bootstrap, "--topic", topic, "--partitions", 0, "--time", -2)
    assert _lines(one.stdout) == [f"{topic}:0:5"]

    # a second client reading from the beginning starts at 5
    remaining = consume(bootstrap, topic, [0], 5)
    assert [(m.offset, m.value) for m in remaining] == [(i, f"v{i}".encode()) for i in range(5, 10)]


# --- 4. kafka-log-dirs --------------------------------------------------------------------------


def test_kafka_log_dirs_describe_shows_dir_and_partition_sizes(broker, java_tools):
    bootstrap, topic = broker.bootstrap_servers, "sized"
    create_topic(bootstrap, topic, partitions=2)
    produce(bootstrap, topic, [Message(0, 0, b"key", b"x" * 100, (), 1_700_000_000_000) for _ in range(20)])

    described = java_tools.run(LOG_DIRS_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--topic-list", topic)
    lines = _lines(described.stdout)
    assert lines[:2] == ["Querying brokers for log directories information", "Received log directory information from brokers 0"]
    report = json.loads(lines[2])
    assert len(lines) == 3
    assert report["version"] == 1
    [only_broker] = report["brokers"]
    assert only_broker["broker"] == 0
    [log_dir] = only_broker["logDirs"]
    assert log_dir["logDir"] == str(broker.log_dir)
    assert log_dir["error"] is None
    sizes = {p["partition"]: p["size"] for p in log_dir["partitions"]}
    on_disk = sum(f.stat().st_size for f in (broker.log_dir / f"{topic}-0").glob("*.log"))
    assert sizes == {f"{topic}-0": on_disk, f"{topic}-1": 0}
    assert on_disk > 20 * 100
    assert all(p["offsetLag"] == 0 and p["isFuture"] is False for p in log_dir["partitions"])
