"""Kafka's Java client (kafka-clients 4.x) and Kafka's kafka-dump-log against odradek.

The Java program (java/src/JavaClientRoundTrip.java, compiled into the cache by the fetch script)
produces 10,000 records with the Java producer's defaults — idempotent, acks=all — and reads them
all back, comparing key, value, header, timestamp and offset of each; confluent-kafka then reads
the same records as a second, independent client.
"""

from __future__ import annotations

import re

import pytest

from .conftest import Message, by_partition, consume, create_topic, produce

ROUND_TRIP = "JavaClientRoundTrip"
DUMP_LOG = "org.apache.kafka.tools.DumpLogSegments"
RECORDS = 10_000
PARTITIONS = 3


def _check_second_client(bootstrap: str, topic: str) -> None:
    messages = by_partition(consume(bootstrap, topic, range(PARTITIONS), RECORDS, timeout_s=60))
    for partition, received in messages.items():
        for position, message in enumerate(received):
            i = position * PARTITIONS + partition
            assert (message.offset, message.key, message.value, message.headers, message.timestamp_ms) == (
                position, f"key-{i}".encode(), f"value-{i}".encode() + b"\x00\xff", (("index", str(i).encode()),),
                1_700_000_000_000 + i,
            )


def test_java_idempotent_producer_and_assigned_consumer_round_trip(broker, java_tools):
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "java-assign", partitions=PARTITIONS)
    result = java_tools.run(ROUND_TRIP, bootstrap, "java-assign", PARTITIONS, RECORDS, "assign", quick=False, timeout_s=180)
    assert result.stdout.split("\n")[:2] == [f"produced {RECORDS}", f"verified {RECORDS}"]
    _check_second_client(bootstrap, "java-assign")


def test_java_idempotent_producer_and_group_consumer_round_trip(group_broker, java_tools):
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, "java-group", partitions=PARTITIONS)
    result = java_tools.run(
        ROUND_TRIP, bootstrap, "java-group", PARTITIONS, RECORDS, "group", "java-compat-group", quick=False, timeout_s=180
    )
    assert result.stdout.split("\n")[:2] == [f"produced {RECORDS}", f"verified {RECORDS}"]
    _check_second_client(bootstrap, "java-group")


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_java_compressed_batches_round_trip(broker, java_tools, codec):
    """The Java producer's compression codecs (snappy, lz4 and zstd from their JNI/Java libraries)."""
    bootstrap = broker.bootstrap_servers
    topic = f"java-{codec}"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    result = java_tools.run(ROUND_TRIP, bootstrap, topic, PARTITIONS, 3_000, "assign",
                            properties={"compression": codec}, timeout_s=180)
    assert result.stdout.split("\n")[:2] == ["produced 3000", "verified 3000"]
    batches = batch_codecs(broker.log_dir / f"{topic}-0")
    assert batches and set(batches) == {codec}, batches


def batch_codecs(partition_dir) -> list[str]:
    """The compression codec of every batch in a partition's segments, from the v2 batch headers."""
    codecs = []
    for segment in sorted(partition_dir.glob("*.log")):
        data = segment.read_bytes()
        position = 0
        while position + 61 <= len(data):
            batch_length = int.from_bytes(data[position + 8:position + 12], "big", signed=True)
            if batch_length <= 0:
                break
            attributes = int.from_bytes(data[position + 21:position + 23], "big")
            codecs.append({0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}[attributes & 0x7])
            position += 12 + batch_length
    return codecs


def test_kafka_dump_log_reads_odradek_segments(start_broker, java_tools):
    """Records written by odradek, read from its .log/.index/.timeindex files by kafka-dump-log."""
    # Small segments and a dense index so that there are several segments and many index entries.
    broker = start_broker(**{"log.segment.bytes": 4096, "log.index.interval.bytes": 128})
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "dumped", partitions=1)
    records = [
        Message(0, 0, f"key-{i}".encode(), f"payload-{i}-{'x' * (i % 50)}".encode(), (("h", str(i).encode()),),
                1_700_000_000_000 + 1000 * i)
        for i in range(200)
    ]
    # Several produce calls: several batches, so that offsets inside a segment are batch-aligned.
    for start in range(0, len(records), 20):
        produce(bootstrap, "dumped", records[start:start + 20])
    assert broker.stop() == 0

    partition_dir = broker.log_dir / "dumped-0"
    segments = sorted(partition_dir.glob("*.log"))
    assert len(segments) > 1, f"expected several segments, got {[p.name for p in partition_dir.iterdir()]}"

    # One run for all segments (kafka-dump-log takes a comma-separated list): a JVM start is ~1 s.
    dumped = java_tools.run(DUMP_LOG, "--files", ",".join(map(str, segments)), "--print-data-log", "--deep-iteration")
    for bad in ("Exception", "corrupt", "mismatch", "invalid", "Found"):
        assert bad not in dumped.stdout and bad not in dumped.stderr, dumped.stdout + dumped.stderr
    per_file = re.split(r"^Dumping (\S+)$", dumped.stdout, flags=re.M)[1:]
    assert per_file[::2] == [str(segment) for segment in segments]
    seen: list[tuple[int, str, str]] = []
    for segment, output in zip(segments, per_file[1::2]):
        batch_lines = [line for line in output.splitlines() if line.startswith("baseOffset:")]
        assert batch_lines, output
        assert int(batch_lines[0].split()[1]) == int(segment.stem), f"{segment.name} starts at {batch_lines[0]}"
        assert all("isvalid: true" in line for line in batch_lines), output
        for match in re.finditer(r"^\| offset: (\d+) .*?headerKeys: \[h\] key: (\S+) payload: (\S+)$", output, re.M):
            seen.append((int(match.group(1)), match.group(2), match.group(3)))
    assert seen == [(i, f"key-{i}", f"payload-{i}-{'x' * (i % 50)}") for i in range(len(records))]

    # The indexes: with --index-sanity-check kafka-dump-log checks each index against its segment,
    # and when dumping an index it compares every entry with the record at that position. An index
    # is empty when its segment holds less than index.interval.bytes: then there is nothing to check.
    indexes = [p for p in sorted(partition_dir.glob("*.index")) + sorted(partition_dir.glob("*.timeindex"))
               if p.stat().st_size > 0]
    assert len(indexes) >= len(segments), [p.name for p in partition_dir.iterdir()]
    files = ",".join(map(str, indexes))
    checked = java_tools.run(DUMP_LOG, "--files", files, "--index-sanity-check")
    for index in indexes:
        assert f"{index} passed sanity check." in checked.stdout, checked.stdout + checked.stderr
    dumped = java_tools.run(DUMP_LOG, "--files", files)
    text = dumped.stdout + dumped.stderr
    for bad in ("Mismatches", "mismatch", "Exception", "not in the log", "corrupt"):
        assert bad not in text, text
    offsets = [int(m) for m in re.findall(r"^offset: (\d+) position: \d+$", dumped.stdout, re.M)]
    assert offsets and all(0 < offset < len(records) for offset in offsets), dumped.stdout


def test_kafka_dump_log_reads_odradek_producer_snapshots(start_broker, java_tools):
    """The `.snapshot` files odradek writes at segment roll and shutdown, read by kafka-dump-log."""
    broker = start_broker(**{"log.segment.bytes": 4096})
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "snapshotted", partitions=1)
    records = [Message(0, 0, f"k{i}".encode(), b"v" * 100, (), 1_700_000_000_000 + i) for i in range(300)]
    for start in range(0, len(records), 30):
        produce(bootstrap, "snapshotted", records[start:start + 30])  # idempotent, acks=all
    assert broker.stop() == 0

    partition_dir = broker.log_dir / "snapshotted-0"
    snapshots = sorted(partition_dir.glob("*.snapshot"))
    assert snapshots and snapshots[-1].name == f"{len(records):020d}.snapshot", [p.name for p in partition_dir.iterdir()]
    dumped = java_tools.run(DUMP_LOG, "--files", str(snapshots[-1]))
    text = dumped.stdout + dumped.stderr
    assert "Exception" not in text and "corrupt" not in text.lower(), text
    producers = re.findall(r"producerId: (\d+) producerEpoch: (\d+)", dumped.stdout)
    assert len(producers) == 10, dumped.stdout  # one idempotent producer per produce() call
    assert re.search(rf"lastSequence: 29 lastOffset: {len(records) - 1}\b", dumped.stdout), dumped.stdout
