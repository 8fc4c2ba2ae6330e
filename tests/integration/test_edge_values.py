"""Null keys and values stay null, empty stays empty, and a 1 MiB value goes through."""

import os

import pytest

from .clients import CLIENTS, Record, consume, create_topic, produce

TWO_MIB = 2 * 1024 * 1024


@pytest.mark.parametrize("client", CLIENTS)
def test_null_empty_and_large_values_round_trip(start_broker, client):
    broker = start_broker(**{"message.max.bytes": TWO_MIB})
    topic = f"edge-{client}"
    create_topic(broker.bootstrap_servers, topic)
    one_mib = os.urandom(1024 * 1024)
    records = [
        Record(key=None, value=b"value without key", partition=0),
        Record(key=b"key without value", value=None, partition=0),
        Record(key=b"empty value", value=b"", partition=0),
        Record(key=b"", value=b"empty key", partition=0),
        Record(key=b"one MiB", value=one_mib, partition=0),
        Record(key=b"after the big one", value=b"still here", partition=0),
    ]

    produce(client, broker.bootstrap_servers, topic, records, max_request_bytes=TWO_MIB)
    consumed = consume(client, broker.bootstrap_servers, topic, [0], len(records))

    assert [m.offset for m in consumed] == list(range(len(records)))
    assert consumed[0].key is None
    assert consumed[1].value is None
    assert consumed[2].value == b""
    assert consumed[3].key == b""
    assert len(consumed[4].value) == len(one_mib) and consumed[4].value == one_mib
    assert [(m.key, m.value) for m in consumed] == [(r.key, r.value) for r in records]
