"""Kafka's own CLI tools (4.x, from Maven Central) against odradek: each scenario is what a Kafka
user types, with the output they would read checked line by line."""

from __future__ import annotations

import re


from .conftest import consume, create_topic, produce, Message

TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

KEYED_LINES = ["k1:v1", "k2:value with spaces", "k3:{\"json\": true}", "k1:v4 again", "k-5:ünïcødé"]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_kafka_topics_creates_and_lists_the_seed_topic(broker, java_tools):
    """The seed's step 3 with kafka-topics: create kaninitopic with 3 partitions, then --list."""
    bootstrap = broker.bootstrap_servers
    created = java_tools.run(
        TOPIC_COMMAND, "--bootstrap-server", bootstrap,
        "--create", "--topic", "kaninitopic", "--partitions", 3, "--replication-factor", 1,
    )
    assert _lines(created.stdout) == ["Created topic kaninitopic."]

    listed = java_tools.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--list")
    assert "kaninitopic" in _lines(listed.stdout)

    again = java_tools.run(
        TOPIC_COMMAND, "--bootstrap-server", bootstrap,
        "--create", "--topic", "kaninitopic", "--partitions", 3, "--replication-factor", 1,
        check=False,
    )
    assert again.returncode != 0
    assert "TopicExistsException" in again.stderr
    assert "kaninitopic' already exists" in again.stdout


def test_kafka_topics_describe_shows_partitions_leader_and_isr(broker, java_tools):
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "kaninitopic", partitions=3)
    described = java_tools.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--topic", "kaninitopic")
    lines = _lines(described.stdout)
    summary = re.split(r"\t+", lines[0].strip())
    assert summary[0] == "Topic: kaninitopic"
    assert summary[1].startswith("TopicId: ") and len(summary[1]) > len("TopicId: ")
    assert summary[2:5] == ["PartitionCount: 3", "ReplicationFactor: 1", summary[4]]
    assert summary[4].startswith("Configs:")
    partitions = [re.split(r"\t+", line.strip()) for line in lines[1:]]
    assert [p[:5] for p in partitions] == [
        ["Topic: kaninitopic", f"Partition: {p}", "Leader: 0", "Replicas: 0", "Isr: 0"] for p in range(3)
    ]


def _console_produce(java_tools, bootstrap: str, topic: str, lines: list[str]) -> None:
    produced = java_tools.run(
        CONSOLE_PRODUCER, "--bootstrap-server", bootstrap, "--topic", topic,
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
        input="\n".join(lines) + "\n",
    )
    assert "ERROR" not in produced.stderr, produced.stderr


def _expected_key_tab_value(lines: list[str]) -> list[str]:
    return [line.replace(":", "\t", 1) for line in lines]


def test_console_producer_to_console_consumer_with_keys_by_partition(broker, java_tools):
    """kafka-console-producer with parse.key, read back by kafka-console-consumer on partition 0
    from the earliest offset (manual assignment), keys printed."""
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "console-keys", partitions=1)
    _console_produce(java_tools, bootstrap, "console-keys", KEYED_LINES)

    consumed = java_tools.run(
        CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", "console-keys",
        "--partition", 0, "--offset", "earliest", "--max-messages", len(KEYED_LINES),
        "--formatter-property", "print.key=true", "--timeout-ms", 30_000,
    )
    assert _lines(consumed.stdout) == _expected_key_tab_value(KEYED_LINES)
    assert f"Processed a total of {len(KEYED_LINES)} messages" in consumed.stderr

    # and the bytes a second client sees are the same
    stored = consume(bootstrap, "console-keys", [0], len(KEYED_LINES))
    assert [(m.key, m.value) for m in stored] == [
        tuple(part.encode() for part in line.split(":", 1)) for line in KEYED_LINES
    ]


def test_console_consumer_in_a_group_from_beginning(group_broker, java_tools):
    """The everyday form: --from-beginning, which subscribes in a (generated) consumer group."""
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, "console-group", partitions=1)
    _console_produce(java_tools, bootstrap, "console-group", KEYED_LINES)

    consumed = java_tools.run(
        CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", "console-group",
        "--from-beginning", "--max-messages", len(KEYED_LINES),
        "--formatter-property", "print.key=true", "--timeout-ms", 30_000,
    )
    assert _lines(consumed.stdout) == _expected_key_tab_value(KEYED_LINES)


def test_consumer_groups_describe_shows_committed_offsets_and_lag(group_broker, java_tools):
    bootstrap = group_broker.bootstrap_servers
    topic, group = "lagging", "lag-group"
    create_topic(bootstrap, topic, partitions=1)
    produce(bootstrap, topic, [Message(0, 0, f"k{i}".encode(), f"v{i}".encode(), (), 1_700_000_000_000) for i in range(10)])

    # Read 3 of the 10 records in the group; the console consumer commits what it printed on exit.
    consumed = java_tools.run(
        CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
        "--from-beginning", "--max-messages", 3, "--timeout-ms", 30_000,
    )
    assert _lines(consumed.stdout) == ["v0", "v1", "v2"]

    listed = java_tools.run(CONSUMER_GROUP_COMMAND, "--bootstrap-server", bootstrap, "--list")
    assert group in _lines(listed.stdout)

    described = java_tools.run(CONSUMER_GROUP_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--group", group)
    rows = [line.split() for line in _lines(described.stdout)]
    header = next(r for r in rows if r[:1] == ["GROUP"])
    assert header[:6] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    assert [r[:6] for r in rows if r[:1] == [group]] == [[group, topic, "0", "3", "10", "7"]], described.stdout


def test_batches_odradek_compresses_are_read_by_kafkas_console_consumer(broker, java_tools, tmp_path):
    """Records odradek itself compresses (its own producer, as its cleaner does when it rebuilds a
    batch) in every codec: Kafka's console consumer reads them all. LZ4 frames with linked blocks,
    cramjam's default, were refused by the Java client ("Dependent block stream is unsupported")."""
    import subprocess
    import sys

    bootstrap = broker.bootstrap_servers
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        topic = f"odradek-{codec}"
        create_topic(bootstrap, topic, partitions=1)
        lines = [f"{codec} line {i} " + "x" * 200 for i in range(50)]
        source = tmp_path / f"{codec}.txt"
        source.write_text("\n".join(lines) + "\n")
        subprocess.run([sys.executable, "-m", "odradek", "produce", "--bootstrap-server", bootstrap, "--topic", topic,
                        "--file", str(source), "--compression", codec], check=True, capture_output=True, timeout=60)
        consumed = java_tools.run(
            CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", topic, "--partition", 0,
            "--offset", "earliest", "--max-messages", len(lines), "--timeout-ms", 30_000,
        )
        assert _lines(consumed.stdout) == lines, consumed.stderr[-2000:]
