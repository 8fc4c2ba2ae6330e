"""franz-go (Go) against odradek: the program in go/main.go, built into the cache by the fetch script.

franz-go produces idempotently with acks=all by default; what it produced is read back by
confluent-kafka, and what confluent-kafka produced is read by franz-go, by direct partition
consumption and in a consumer group.
"""

from __future__ import annotations

import base64
import json

from .conftest import Message, by_partition, consume, create_topic, produce, run

RECORDS = 3_000
PARTITIONS = 3
BASE_TIMESTAMP_MS = 1_700_000_000_000


def _records() -> list[Message]:
    return [
        Message(i % PARTITIONS, i // PARTITIONS, f"key-{i}".encode(), f"value-{i}".encode() + b"\x00\xff",
                (("index", str(i).encode()),), BASE_TIMESTAMP_MS + i)
        for i in range(RECORDS)
    ]


def _decode(stdout: str) -> list[Message]:
    messages = []
    for line in stdout.splitlines():
        data = json.loads(line)
        headers = tuple((k, base64.b64decode(v)) for k, v in sorted(data["headers"].items()))
        messages.append(Message(
            data["partition"], data["offset"],
            base64.b64decode(data["key"]) if data["key"] is not None else None,
            base64.b64decode(data["value"]) if data["value"] is not None else None,
            headers, data["timestamp_ms"],
        ))
    return messages


def _sorted(messages: list[Message]) -> list[Message]:
    return sorted(messages, key=lambda m: (m.partition, m.offset))


def test_franz_go_produces_what_another_client_reads(broker, franz_go):
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "franz-produce", partitions=PARTITIONS)
    result = run([franz_go, "produce", "-brokers", bootstrap, "-topic", "franz-produce",
                  "-count", RECORDS, "-partitions", PARTITIONS])
    acknowledged = _decode(result.stdout)
    assert _sorted(acknowledged) == _sorted(_records())

    stored = consume(bootstrap, "franz-produce", range(PARTITIONS), RECORDS)
    assert _sorted(stored) == _sorted(_records())


def test_franz_go_consumes_partitions_directly(broker, franz_go):
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "franz-consume", partitions=PARTITIONS)
    produce(bootstrap, "franz-consume", _records())
    result = run([franz_go, "consume", "-brokers", bootstrap, "-topic", "franz-consume",
                  "-count", RECORDS, "-partitions", PARTITIONS])
    received = _decode(result.stdout)
    assert len(received) == RECORDS
    for partition, messages in by_partition(received).items():
        assert [m.offset for m in messages] == list(range(len(messages))), f"partition {partition} out of order"
    assert _sorted(received) == _sorted(_records())


def test_franz_go_consumes_in_a_group(group_broker, franz_go):
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, "franz-group", partitions=PARTITIONS)
    produce(bootstrap, "franz-group", _records())
    result = run([franz_go, "group-consume", "-brokers", bootstrap, "-topic", "franz-group",
                  "-count", RECORDS, "-group", "franz-compat-group"])
    assert _sorted(_decode(result.stdout)) == _sorted(_records())
