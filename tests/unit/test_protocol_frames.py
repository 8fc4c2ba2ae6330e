"""Bytes-only checks of the protocol layer's bad-input handling: request headers, the Produce
v0-v2 refusal, and RecordBatch validation. No sockets."""

from __future__ import annotations

import struct

import pytest

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.frames import (
    FrameError,
    error_only_frame,
    parse_request_header,
    read_unsigned_varint,
    response_header,
)
from odradek.protocol.legacy_produce import rejected_produce_body
from odradek.protocol.records import encode_batch, patch_base_offsets, validate_batches

UNSUPPORTED_VERSION = 35


def header_v1(api_key=3, version=12, correlation_id=7, client_id: bytes | None = b"client") -> bytes:
    if client_id is None:
        return struct.pack(">hhih", api_key, version, correlation_id, -1)
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


# --- request headers -----------------------------------------------------------------------------


def test_header_v1_parses_fields_and_body_offset():
    frame = header_v1() + b"BODY"
    header = parse_request_header(frame, flexible=False)
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (3, 12, 7, "client")
    assert frame[header.body_offset :] == b"BODY"


def test_header_v1_null_client_id():
    header = parse_request_header(header_v1(client_id=None) + b"B", flexible=False)
    assert header.client_id is None
    assert header.body_offset == 10


def test_header_v2_without_tagged_fields():
    frame = header_v1() + b"\x00" + b"BODY"
    header = parse_request_header(frame, flexible=True)
    assert frame[header.body_offset :] == b"BODY"


def test_header_v2_skips_tagged_fields():
    # Two tagged fields: tag 0 with 3 bytes, tag 300 (a two-byte varint) with 1 byte.
    tags = b"\x02" + b"\x00\x03abc" + b"\xac\x02\x01z"
    frame = header_v1() + tags + b"BODY"
    header = parse_request_header(frame, flexible=True)
    assert frame[header.body_offset :] == b"BODY"


def test_routing_parse_does_not_read_tagged_fields():
    frame = header_v1() + b"\x05"  # a tag count with nothing after it: only a v2 parse reads it
    assert parse_request_header(frame).body_offset == len(frame) - 1


@pytest.mark.parametrize(
    "frame, flexible, message",
    [
        (b"", None, "shorter than a request header"),
        (b"\x00\x03\x00\x0c\x00\x00\x00", None, "shorter than a request header"),
        (struct.pack(">hhih", 3, 12, 7, 10) + b"abc", None, "client_id runs past the end"),
        (header_v1(), True, "truncated unsigned varint"),
        (header_v1() + b"\x01", True, "truncated unsigned varint"),
        (header_v1() + b"\x01\x00", True, "truncated unsigned varint"),
        (header_v1() + b"\x01\x00\x05ab", True, "tagged field runs past the end"),
        (header_v1() + b"\xff\xff\xff\xff\xff\x01", True, "longer than 5 bytes"),
    ],
    ids=[
        "empty", "fixed-part-cut", "client-id-cut", "no-tag-count", "tag-cut", "tag-size-cut",
        "tag-value-cut", "overlong-varint",
    ],
)
def test_truncated_or_malformed_header_raises_frame_error(frame, flexible, message):
    with pytest.raises(FrameError, match=message):
        parse_request_header(frame, flexible)


def test_frame_error_is_a_value_error():
    # The dispatcher and connection rely on this to close the connection, not crash.
    assert issubclass(FrameError, ValueError)


def test_read_unsigned_varint_values():
    assert read_unsigned_varint(b"\x00", 0) == (0, 1)
    assert read_unsigned_varint(b"\x7f", 0) == (127, 1)
    assert read_unsigned_varint(b"\x80\x01", 0) == (128, 2)
    assert read_unsigned_varint(b"\xff\xff\xff\xff\x0f", 0) == (2**32 - 1, 5)


def test_response_headers_and_error_only_frame():
    assert response_header(5, False) == struct.pack(">i", 5)
    assert response_header(5, True) == struct.pack(">i", 5) + b"\x00"
    assert error_only_frame(9, UNSUPPORTED_VERSION) == struct.pack(">iih", 6, 9, UNSUPPORTED_VERSION)


# --- Produce v0-v2 refusal -------------------------------------------------------------------------


def legacy_produce_body(topics) -> bytes:
    body = struct.pack(">hii", 1, 1000, len(topics))
    for name, partitions in topics:
        body += struct.pack(">h", len(name)) + name + struct.pack(">i", len(partitions))
        for partition, message_set in partitions:
            body += struct.pack(">ii", partition, len(message_set)) + message_set
    return body


TOPICS = [(b"alpha", [(0, b"x" * 20), (4, b"")]), (b"b", [(1, b"y" * 3)])]


def expected_refusal(topics, version: int) -> bytes:
    out = struct.pack(">i", len(topics))
    for name, partitions in topics:
        out += struct.pack(">h", len(name)) + name + struct.pack(">i", len(partitions))
        for partition, _message_set in partitions:
            out += struct.pack(">ihq", partition, UNSUPPORTED_VERSION, -1)
            if version >= 2:
                out += struct.pack(">q", -1)  # log_append_time
    if version >= 1:
        out += struct.pack(">i", 0)  # throttle_time_ms
    return out


@pytest.mark.parametrize("version", [0, 1, 2])
def test_rejected_produce_body_layout(version):
    body = legacy_produce_body(TOPICS)
    assert rejected_produce_body(memoryview(body), version) == expected_refusal(TOPICS, version)


def test_rejected_produce_body_with_null_message_set():
    body = struct.pack(">hii", 1, 1000, 1) + struct.pack(">h", 1) + b"t" + struct.pack(">iii", 1, 0, -1)
    assert rejected_produce_body(body, 0) == expected_refusal([(b"t", [(0, b"")])], 0)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        struct.pack(">hi", 1, 1000),  # no topic count
        struct.pack(">hii", 1, 1000, -1),
        struct.pack(">hii", 1, 1000, 1_000_000),
        struct.pack(">hii", 1, 1000, 1) + struct.pack(">h", 50) + b"short",
        struct.pack(">hii", 1, 1000, 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", -3),
        struct.pack(">hii", 1, 1000, 1) + struct.pack(">h", 1) + b"t" + struct.pack(">iii", 1, 0, 100) + b"abc",
    ],
    ids=["empty", "no-topic-count", "negative-topics", "huge-topics", "name-cut", "negative-partitions", "set-cut"],
)
def test_rejected_produce_body_refuses_malformed_bodies(body):
    # The dispatcher turns these two into FrameError (connection closed); nothing else may escape.
    with pytest.raises((ValueError, struct.error)):
        rejected_produce_body(body, 2)


# --- RecordBatch validation --------------------------------------------------------------------------


def batch(count: int = 3) -> bytes:
    return encode_batch([(1_700_000_000_000 + i, b"k", b"value-%d" % i) for i in range(count)])


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_validate_batches_accepts_consecutive_valid_batches():
    data = batch(3) + batch(1) + batch(2)
    headers = validate_batches(data)
    assert [h.record_count for h in headers] == [3, 1, 2]
    assert [h.position for h in headers] == [0, len(batch(3)), len(batch(3)) + len(batch(1))]


def test_base_offset_and_leader_epoch_are_outside_the_crc():
    data = bytearray(batch(3) + batch(2))
    headers = validate_batches(data)
    assert patch_base_offsets(data, headers, 100, 4) == 105
    assert [(h.base_offset, h.partition_leader_epoch) for h in validate_batches(data)] == [(100, 4), (103, 4)]


def corrupt_cases():
    good = batch(3)
    flipped = bytearray(good)
    flipped[70] ^= 0x01
    return [
        (b"", "no record batch"),
        (bytes(flipped), "CRC32C mismatch"),
        (patched(good, 17, ">I", 0), "CRC32C mismatch"),
        (patched(good, 16, ">b", 1), "magic byte is 1, expected 2"),
        (patched(good, 16, ">b", 0), "magic byte is 0, expected 2"),
        (patched(good, 57, ">i", 5), "record count 5 does not match last offset delta 2 \\+ 1"),
        (patched(good, 23, ">i", 0), "record count 3 does not match last offset delta 0 \\+ 1"),
        (good[:-1], "cut short"),
        (good[:61], "cut short"),
        (good[:60], "too few for a batch header"),
        (good[:20], "magic byte|too few"),
        (patched(good, 8, ">i", 10), "below the minimum"),
        (patched(good, 8, ">i", -1), "below the minimum"),
        (good + good[:30], "too few for a batch header"),
        (good + bytes(flipped), "CRC32C mismatch"),
        (good + b"\x00" * 70, "below the minimum"),
        # A v1 message (offset, size, crc, magic 1, attributes, timestamp, null key, null value).
        (struct.pack(">qiIbbqi", 0, 22, 0, 1, 0, 0, -1) + b"\xff\xff\xff\xff", "magic byte is 1"),
    ]


CORRUPT_IDS = [
    "empty", "flipped-record-byte", "zeroed-crc", "magic-1", "magic-0", "record-count-high",
    "last-offset-delta-low", "last-byte-missing", "records-missing", "header-cut", "header-fragment",
    "batch-length-small", "batch-length-negative", "valid-then-header-fragment", "valid-then-bad-crc",
    "valid-then-zeros", "message-set-v1",
]


@pytest.mark.parametrize("data, message", corrupt_cases(), ids=CORRUPT_IDS)
def test_validate_batches_rejects_corrupt_input_with_corrupt_message(data, message):
    with pytest.raises(KafkaError, match=message) as raised:
        validate_batches(data)
    assert raised.value.code == ErrorCode.corrupt_message


def test_validate_batches_works_on_memoryview():
    data = batch(2)
    assert len(validate_batches(memoryview(data))) == 1
    with pytest.raises(KafkaError):
        validate_batches(memoryview(data)[:-3])
