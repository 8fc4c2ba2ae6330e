"""odradek.client without sockets: request frames, response headers, version choice, the
consumer protocol, the range assignor, murmur2 partitioning, fetched-record decoding."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.client.client import parse_bootstrap_servers
from odradek.client.connection import BrokerConnection, encode_request_frame, response_body_offset
from odradek.client.consumer import decode_fetched_records
from odradek.client.consumer_protocol import (
    ConsumerProtocolError,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
    range_assign,
)
from odradek.client.errors import ErrorCode, KafkaError
from odradek.client.messages import build_request, decode_response, encode_entity, to_ms
from odradek.client.producer import murmur2, partition_for_key
from odradek.protocol.frames import parse_request_header
from odradek.protocol.records import encode_batch
from odradek.protocol.topic_partition import TopicPartition


def test_request_frame_header_v1_for_non_flexible_versions():
    body = b"\x01\x02"
    frame = encode_request_frame(3, 8, 42, "cli", body, flexible=False)
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    header = parse_request_header(frame[4:], flexible=False)
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (3, 8, 42, "cli")
    assert frame[4 + header.body_offset :] == body


def test_request_frame_header_v2_has_empty_tagged_fields():
    frame = encode_request_frame(3, 12, 7, None, b"", flexible=True)
    header = parse_request_header(frame[4:], flexible=True)
    assert header.client_id is None
    assert header.body_offset == len(frame) - 4  # the tagged-field byte was consumed


def test_response_header_v0_and_v1():
    assert response_body_offset(struct.pack(">i", 9) + b"body", False) == (9, 4)
    assert response_body_offset(struct.pack(">i", 9) + b"\x00body", True) == (9, 5)
    # one tagged field (tag 1, 2 bytes) is skipped
    assert response_body_offset(struct.pack(">i", 9) + b"\x01\x01\x02ab" + b"body", True) == (9, 9)


def test_build_request_drops_fields_a_version_lacks_and_fills_defaults():
    values = {"topics": [{"name": "t"}], "allow_auto_topic_creation": False, "not_a_field": 1}
    v1 = build_request(3, 1, values)
    v12 = build_request(3, 12, values)
    assert v1.topics[0].name == "t" and v12.topics[0].name == "t"
    assert v12.topics[0].topic_id is None or v12.topics[0].topic_id.int == 0
    assert v12.allow_auto_topic_creation is False
    encode_entity(v1), encode_entity(v12)


def test_build_request_converts_milliseconds_to_timedelta():
    request = build_request(19, 7, {"topics": [], "timeout": 1500})
    assert to_ms(request.timeout) == 1500


def test_api_versions_round_trip_through_kio():
    request = build_request(18, 3, {"client_software_name": "odradek", "client_software_version": "0"})
    assert encode_entity(request)
    # A v3 response body: error 0, one api (key 3, 0..12), throttle 0, no tags.
    body = struct.pack(">h", 0) + b"\x02" + struct.pack(">hhh", 3, 0, 12) + b"\x00" + struct.pack(">i", 0) + b"\x00"
    response = decode_response(18, 3, body)
    assert [(a.api_key, a.min_version, a.max_version) for a in response.api_keys] == [(3, 0, 12)]


def test_version_choice_is_the_highest_common_and_unsupported_is_a_kafka_error():
    connection = BrokerConnection("localhost", 9092)
    connection.api_versions = {3: (0, 12), 1: (4, 17)}
    assert connection.version_for(3) == 12
    assert connection.version_for(3, max_version=9) == 9
    assert connection.version_for(1, max_version=12) == 12
    with pytest.raises(KafkaError) as info:
        connection.version_for(32)
    assert info.value.code == ErrorCode.unsupported_version
    assert "does not support describe_configs" in str(info.value)
    with pytest.raises(KafkaError):
        connection.version_for(1, max_version=3)


def test_requests_on_a_closed_connection_fail_cleanly():
    from odradek.client.errors import ClientError

    connection = BrokerConnection("localhost", 9092)
    connection.api_versions = {3: (0, 12)}
    with pytest.raises(ClientError, match="closed"):
        asyncio.run(connection.request(3, {"topics": []}))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("localhost:9092", [("localhost", 9092)]),
        ("a:1,b:2", [("a", 1), ("b", 2)]),
        ("PLAINTEXT://h:9093", [("h", 9093)]),
        ("[::1]:9092", [("::1", 9092)]),
        ("justhost", [("justhost", 9092)]),
    ],
)
def test_parse_bootstrap_servers(text, expected):
    assert parse_bootstrap_servers(text) == expected


@pytest.mark.parametrize("text", ["", "h:port", "h:0", ",", "h:70000"])
def test_parse_bootstrap_servers_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_bootstrap_servers(text)


def test_subscription_v0_layout_matches_kafka():
    data = encode_subscription(["a", "bc"])
    assert data == b"\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x01a" + b"\x00\x02bc" + b"\xff\xff\xff\xff"
    assert decode_subscription(data).topics == ("a", "bc")


def test_assignment_v0_layout_matches_kafka():
    data = encode_assignment([TopicPartition("t", 1), TopicPartition("t", 0)])
    assert data == b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x00\x00\x01" + b"\xff\xff\xff\xff"
    assert decode_assignment(data) == [TopicPartition("t", 0), TopicPartition("t", 1)]
    assert decode_assignment(b"") == []


def test_subscription_of_a_later_version_is_read_for_its_topics():
    v1 = b"\x00\x01" + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00"  # + owned partitions
    assert decode_subscription(v1).topics == ("t",)


def test_truncated_assignment_is_a_consumer_protocol_error():
    with pytest.raises(ConsumerProtocolError, match="needed"):
        decode_assignment(b"\x00\x00\x00\x00\x00\x01\x00\x05ab")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "topic"]), st.integers(0, 100)), unique=True))
def test_assignment_round_trips(pairs):
    partitions = [TopicPartition(t, p) for t, p in pairs]
    assert sorted(decode_assignment(encode_assignment(partitions))) == sorted(partitions)


def test_range_assignor_matches_kafka():
    plan = range_assign({"m2": ["t"], "m1": ["t"], "m3": ["t", "u"]}, {"t": 7, "u": 2})
    assert plan["m1"] == [TopicPartition("t", p) for p in (0, 1, 2)]
    assert plan["m2"] == [TopicPartition("t", p) for p in (3, 4)]
    assert sorted(plan["m3"]) == [TopicPartition("t", 5), TopicPartition("t", 6), TopicPartition("u", 0), TopicPartition("u", 1)]


@given(st.integers(1, 6), st.integers(0, 40))
def test_range_assignor_assigns_every_partition_once(members, partitions):
    plan = range_assign({f"m{i}": ["t"] for i in range(members)}, {"t": partitions})
    assigned = [tp for tps in plan.values() for tp in tps]
    assert sorted(assigned) == [TopicPartition("t", p) for p in range(partitions)]


def test_murmur2_matches_kafkas_utils():
    # Values from Kafka's UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107
    assert 0 <= partition_for_key(b"abc", 3) < 3


def test_decode_fetched_records_skips_below_offset_control_and_partial_batches():
    first = bytearray(encode_batch([(1, b"k", b"a"), (2, None, b"b")], base_offset=10))
    control = bytearray(encode_batch([(3, b"\x00\x00\x00\x00", b"")], base_offset=12, control=True))
    third = bytearray(encode_batch([(4, None, b"c")], base_offset=13))
    data = bytes(first + control + third) + third[:20]
    records, next_offset = decode_fetched_records(data, 11)
    assert [(r.offset, r.value) for r in records] == [(11, b"b"), (13, b"c")]
    assert next_offset == 14


def test_decode_fetched_records_drops_aborted_transactions():
    aborted = encode_batch([(1, None, b"x")], base_offset=0, producer_id=7, producer_epoch=0, transactional=True)
    marker = encode_batch([(2, b"\x00\x00\x00\x00", b"")], base_offset=1, producer_id=7, producer_epoch=0, transactional=True, control=True)
    plain = encode_batch([(3, None, b"y")], base_offset=2)
    records, _next = decode_fetched_records(aborted + marker + plain, 0, aborted=[(7, 0)])
    assert [r.value for r in records] == [b"y"]


def test_decode_fetched_records_keeps_a_committed_transaction_between_two_aborted_ones():
    def txn(offset, value):
        return encode_batch([(1, None, value)], base_offset=offset, producer_id=7, producer_epoch=0, transactional=True)

    def marker(offset, commit):
        key = b"\x00\x00\x00\x01" if commit else b"\x00\x00\x00\x00"
        return encode_batch([(2, key, b"")], base_offset=offset, producer_id=7, producer_epoch=0, transactional=True, control=True)

    data = txn(0, b"a1") + marker(1, False) + txn(2, b"c1") + marker(3, True) + txn(4, b"a2") + marker(5, False)
    records, next_offset = decode_fetched_records(data, 0, aborted=[(7, 4), (7, 0)])
    assert [r.value for r in records] == [b"c1"]
    assert next_offset == 6
