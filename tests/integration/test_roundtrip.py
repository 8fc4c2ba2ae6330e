"""Every message comes back with the key, value, headers, timestamp and partition it was sent with."""

import pytest

from .clients import CLIENTS, CREATE_TIME, Record, by_partition, consume, create_topic, produce

MESSAGES = 10_000
PARTITIONS = 3
BASE_TIMESTAMP_MS = 1_700_000_000_000


def roundtrip_records(client: str) -> list[Record]:
    return [
        Record(
            key=f"key-{i}".encode(),
            value=f"value-{i}-".encode() * (i % 7 + 1),
            partition=i % PARTITIONS,
            # A repeated key and an empty value: headers are a list, not a map.
            headers=(("index", str(i).encode()), ("client", client.encode()), ("index", b"")),
            timestamp_ms=BASE_TIMESTAMP_MS + 17 * i,
        )
        for i in range(MESSAGES)
    ]


@pytest.mark.parametrize("client", CLIENTS)
def test_roundtrip_returns_every_field_in_order_per_partition(broker, client):
    topic = f"roundtrip-{client}"
    create_topic(broker.bootstrap_servers, topic, partitions=PARTITIONS)
    records = roundtrip_records(client)

    deliveries = produce(client, broker.bootstrap_servers, topic, records)
    consumed = consume(client, broker.bootstrap_servers, topic, range(PARTITIONS), MESSAGES)

    assert len(consumed) == MESSAGES
    got = by_partition(consumed)
    assert sorted(got) == list(range(PARTITIONS))
    for partition in range(PARTITIONS):
        sent = [(r, d) for r, d in zip(records, deliveries) if r.partition == partition]
        received = got[partition]
        assert [d.partition for _, d in sent] == [partition] * len(sent)
        assert [d.offset for _, d in sent] == list(range(len(sent))), "acknowledged offsets not contiguous from 0"
        assert [m.offset for m in received] == list(range(len(sent))), "consumed offsets not contiguous from 0"
        for (record, _), message in zip(sent, received):
            assert message.as_record() == record, f"partition {partition} offset {message.offset}"
            assert message.timestamp_type == CREATE_TIME
