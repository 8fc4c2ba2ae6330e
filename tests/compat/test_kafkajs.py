"""KafkaJS (Node.js) against odradek: the script node/kafkajs-compat.js, run by the machine's node
with KafkaJS installed into the cache by the fetch script.

KafkaJS has no groupless consumer, so its consume scenario is a group consume. What KafkaJS
produced is read back by confluent-kafka; what confluent-kafka produced is read by KafkaJS.
"""

from __future__ import annotations

import base64
import json

import pytest

from .conftest import COMPAT_DIR, Message, consume, create_topic, produce

SCRIPT = COMPAT_DIR / "node" / "kafkajs-compat.js"
RECORDS = 2_000
PARTITIONS = 3
BASE_TIMESTAMP_MS = 1_700_000_000_000


def _expected() -> list[Message]:
    records = [
        Message(i % PARTITIONS, i // PARTITIONS, f"key-{i}".encode(), f"value-{i}".encode() + b"\x00\xff",
                (("index", str(i).encode()),), BASE_TIMESTAMP_MS + i)
        for i in range(RECORDS)
    ]
    return sorted(records, key=lambda m: (m.partition, m.offset))


@pytest.mark.parametrize("idempotent", [False, True], ids=["acks-all", "idempotent"])
def test_kafkajs_produces_what_another_client_reads(broker, kafkajs, idempotent):
    bootstrap = broker.bootstrap_servers
    topic = f"kafkajs-produce-{'idempotent' if idempotent else 'plain'}"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    args = ["produce", bootstrap, topic, RECORDS, PARTITIONS] + (["idempotent"] if idempotent else [])
    result = kafkajs.run(SCRIPT, *args)
    acknowledged = sorted((a["partition"], a["baseOffset"]) for a in map(json.loads, result.stdout.splitlines()))
    # sent in batches of 500 records, each spread over the 3 partitions: one acknowledgement per
    # batch and partition, at the count of that partition's records in the batches before it
    assert acknowledged == sorted(
        (p, sum(1 for i in range(start) if i % PARTITIONS == p))
        for start in range(0, RECORDS, 500) for p in range(PARTITIONS)
    )
    stored = consume(bootstrap, topic, range(PARTITIONS), RECORDS)
    assert sorted(stored, key=lambda m: (m.partition, m.offset)) == _expected()


def test_kafkajs_consumes_in_a_group(group_broker, kafkajs):
    bootstrap = group_broker.bootstrap_servers
    create_topic(bootstrap, "kafkajs-group", partitions=PARTITIONS)
    produce(bootstrap, "kafkajs-group", _expected())
    result = kafkajs.run(SCRIPT, "consume", bootstrap, "kafkajs-group", RECORDS, "kafkajs-compat-group")
    received = []
    for line in result.stdout.splitlines():
        data = json.loads(line)
        received.append(Message(
            data["partition"], data["offset"],
            base64.b64decode(data["key"]) if data["key"] is not None else None,
            base64.b64decode(data["value"]) if data["value"] is not None else None,
            tuple((k, base64.b64decode(v)) for k, v in data["headers"].items()),
            data["timestamp_ms"],
        ))
    assert sorted(received, key=lambda m: (m.partition, m.offset)) == _expected()
