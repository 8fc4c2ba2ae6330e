"""The request guard: lengths checked before kio decodes, unknown tagged fields skipped."""

from __future__ import annotations

import io
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from odradek.protocol.schemas import request_class
from odradek.protocol.frames import FrameError
from odradek.protocol.request_guard import guard_request
from test_dispatch_versions import CASES, _request

ALL_CLASSES = [request_class(key, version) for key, version in CASES]


def _body(entity) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


@pytest.mark.parametrize(("api_key", "version"), CASES, ids=[f"{k}v{v}" for k, v in CASES])
def test_valid_request_passes_unchanged(api_key: int, version: int) -> None:
    body = _body(_request(api_key, version, uuid.uuid4()))
    assert guard_request(body, request_class(api_key, version)) is body


def test_huge_array_count_is_refused_before_decoding() -> None:
    metadata_v12 = request_class(3, 12)
    with pytest.raises(FrameError, match="declares 4294967294 elements"):
        guard_request(bytes.fromhex("ffffffff0f"), metadata_v12)


def test_unknown_tagged_field_is_removed_and_known_fields_kept() -> None:
    metadata_v12 = request_class(3, 12)
    body = b"\x00\x01\x00" + b"\x01" + b"\x63\x02hi"  # topics null, auto-create true, one unknown tag
    cleaned = guard_request(body, metadata_v12)
    assert cleaned == b"\x00\x01\x00\x00"
    request, _ = entity_reader(metadata_v12)(cleaned, 0)
    assert request.topics is None and request.allow_auto_topic_creation is True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(ALL_CLASSES) - 1), body=st.binary(max_size=64))
def test_random_bodies_never_reach_kio_with_impossible_lengths(index: int, body: bytes) -> None:
    cls = ALL_CLASSES[index]
    try:
        cleaned = guard_request(body, cls)
    except FrameError:
        return
    try:
        entity_reader(cls)(cleaned, 0)  # an abort here would kill the test process
    except (SerialError, ValueError, KeyError, UnicodeDecodeError):
        pass


def test_null_for_a_non_nullable_array_or_string_is_refused() -> None:
    """Found by the fuzzer: a Produce whose topic_data array (not nullable) came as null reached
    the handler as None and crashed it (UNKNOWN_SERVER_ERROR and a traceback in the log). Kafka's
    parser refuses such a request; so does the guard."""
    cls = request_class(0, 8)  # not flexible: int16/int32 lengths, -1 for null
    # transactional_id null (nullable: fine), acks, timeout, topic_data count -1 (not nullable)
    null_topics = b"\xff\xff" + b"\xff\xff" + b"\x00\x00\x13\x88" + b"\xff\xff\xff\xff"
    with pytest.raises(FrameError, match="non-nullable field topic_data was serialized as null"):
        guard_request(null_topics, cls)
    # a null topic name inside it (strings are not nullable there either)
    null_name = b"\xff\xff" + b"\xff\xff" + b"\x00\x00\x13\x88" + b"\x00\x00\x00\x01" + b"\xff\xff" + b"\x00\x00\x00\x00"
    with pytest.raises(FrameError, match="non-nullable field name"):
        guard_request(null_name, cls)
    empty = b"\xff\xff" + b"\xff\xff" + b"\x00\x00\x13\x88" + b"\x00\x00\x00\x00"
    assert guard_request(empty, cls) == empty


def test_an_array_of_fixed_size_elements_is_checked_whole() -> None:
    """Fetch v11's partitions are 28 bytes each, checked as one length: ten partitions declared as
    a hundred are refused, although a hundred bytes remain."""
    import struct
    import sys
    from datetime import timedelta

    fetch_v11 = request_class(1, 11)
    schema = sys.modules[fetch_v11.__module__]
    partitions = tuple(schema.FetchPartition(partition=i, current_leader_epoch=0, fetch_offset=0, log_start_offset=-1,
                                             partition_max_bytes=1 << 20) for i in range(10))
    request = fetch_v11(replica_id=-1, max_wait=timedelta(milliseconds=500), min_bytes=1, max_bytes=1 << 20,
                        isolation_level=0, session_id=0, session_epoch=-1,
                        topics=(schema.FetchTopic(topic="t", partitions=partitions),), forgotten_topics_data=(), rack_id="")
    body = _body(request)
    assert guard_request(body, fetch_v11) is body
    count_at = body.index(struct.pack(">h", 1) + b"t") + 3
    assert struct.unpack_from(">i", body, count_at)[0] == 10
    lying = body[:count_at] + struct.pack(">i", 100) + body[count_at + 4 :]
    with pytest.raises(FrameError, match="100 elements of array partitions"):
        guard_request(lying, fetch_v11)
