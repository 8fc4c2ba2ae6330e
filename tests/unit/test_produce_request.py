"""Produce requests decoded without kio read what kio reads (as tuples with kio's field names), in every version the broker serves,
with each partition's records a view of the request (no copy), writable when the frame is; and a
request cut short, declaring more than it holds, or null where Kafka's schema says not null is
refused with FrameError, as the guard refuses them before kio decodes other requests."""

from __future__ import annotations

import io
import sys
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader, entity_writer

from odradek.handlers.responses import sibling
from odradek.protocol.frames import FrameError
from odradek.protocol.produce_request import is_produce_request, produce_request_reader
from odradek.protocol.schemas import request_class

partitions = st.lists(st.tuples(st.integers(-2**31, 2**31 - 1), st.one_of(st.none(), st.binary(max_size=300))), max_size=4)
topics = st.lists(st.tuples(st.text(min_size=1, max_size=20), partitions), max_size=3)


def _encoded(version, transactional_id, acks, timeout_ms, topic_list) -> bytes:
    cls = request_class(0, version)
    topic_class, partition_class = sibling(cls, "TopicProduceData"), sibling(cls, "PartitionProduceData")
    request = cls(transactional_id=transactional_id, acks=acks, timeout=timedelta(milliseconds=timeout_ms),
                  topic_data=tuple(topic_class(name=name, partition_data=tuple(
                      partition_class(index=index, records=records) for index, records in entries))
                      for name, entries in topic_list))
    out = io.BytesIO()
    entity_writer(cls)(out, request)
    return out.getvalue()


def _as_kio(cls, request):
    """Our request as kio's entity `cls`, records as bytes, to compare with what kio reads."""
    module = sys.modules[cls.__module__]
    return cls(
        transactional_id=request.transactional_id, acks=request.acks, timeout=request.timeout,
        topic_data=tuple(module.TopicProduceData(name=topic.name, partition_data=tuple(
            module.PartitionProduceData(index=p.index, records=None if p.records is None else bytes(p.records))
            for p in topic.partition_data)) for topic in request.topic_data))


@pytest.mark.parametrize("version", range(3, 13))
@settings(max_examples=60, deadline=None)
@given(transactional_id=st.one_of(st.none(), st.text(max_size=12)), acks=st.sampled_from([-1, 0, 1, 7]),
       timeout_ms=st.integers(0, 2**31 - 1), topic_list=topics)
def test_reads_what_kio_reads(version, transactional_id, acks, timeout_ms, topic_list):
    cls = request_class(0, version)
    data = _encoded(version, transactional_id, acks, timeout_ms, topic_list)
    expected, expected_end = entity_reader(cls)(memoryview(data), 0)
    request, end = produce_request_reader(cls)(memoryview(data), 0)
    assert end == expected_end == len(data)
    assert _as_kio(cls, request) == expected


@pytest.mark.parametrize("version", [3, 9, 12])
def test_records_are_writable_views_of_a_bytearray_frame(version):
    frame = bytearray(_encoded(version, None, 1, 1000, [("t", [(0, b"batch bytes")])]))
    request, _ = produce_request_reader(request_class(0, version))(memoryview(frame), 0)
    records = request.topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and not records.readonly
    records[:5] = b"BATCH"
    assert b"BATCH bytes" in frame


@pytest.mark.parametrize("version", [3, 9, 12])
def test_a_request_cut_short_is_a_frame_error(version):
    cls = request_class(0, version)
    data = _encoded(version, "tx", 1, 1000, [("topic", [(0, b"x" * 40), (1, None)])])
    for end in range(len(data)):
        with pytest.raises(FrameError):
            produce_request_reader(cls)(memoryview(data[:end]), 0)


def test_only_produce_is_read_here():
    assert is_produce_request(request_class(0, 3)) and is_produce_request(request_class(0, 12))
    assert not is_produce_request(request_class(1, 12))


def test_null_where_the_schema_says_not_null_is_refused():
    """As Kafka's parser (and the guard, for kio-decoded requests): topic_data, a topic's name and
    its partition_data cannot be null; transactional_id and records can."""
    cls = request_class(0, 8)  # not flexible: int16/int32 lengths, -1 for null
    head = b"\xff\xff" + b"\xff\xff" + b"\x00\x00\x13\x88"  # transactional_id null, acks -1, timeout
    read = produce_request_reader(cls)
    with pytest.raises(FrameError, match="non-nullable field topic_data"):
        read(memoryview(head + b"\xff\xff\xff\xff"), 0)
    with pytest.raises(FrameError, match="non-nullable field name"):
        read(memoryview(head + b"\x00\x00\x00\x01" + b"\xff\xff" + b"\x00\x00\x00\x00"), 0)
    with pytest.raises(FrameError, match="non-nullable field partition_data"):
        read(memoryview(head + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\xff\xff\xff\xff"), 0)
    request, end = read(memoryview(head + b"\x00\x00\x00\x00"), 0)
    assert request.topic_data == () and end == 12


@pytest.mark.parametrize("version", [3, 9])
def test_an_array_declared_longer_than_the_request_is_refused_at_once(version):
    """2**31-1 topics declared in a few bytes: refused at the first missing one, nothing reserved."""
    cls = request_class(0, version)
    data = bytearray(_encoded(version, None, 1, 1000, [("t", [(0, b"x")])]))
    if version >= 9:  # compact array: varint count + 1 after the null transactional_id and acks, timeout
        at = 1 + 2 + 4
        data[at:at + 1] = b"\xff\xff\xff\xff\x07"
    else:
        at = 2 + 2 + 4
        data[at:at + 4] = b"\x7f\xff\xff\xff"
    with pytest.raises(FrameError):
        produce_request_reader(cls)(memoryview(bytes(data)), 0)


def test_unknown_tagged_fields_are_skipped():
    """Kafka's protocol: a field tag the reader does not know is skipped (Produce v9+ defines none)."""
    cls = request_class(0, 9)
    data = _encoded(9, None, 1, 1000, [("t", [(0, b"records")])])
    assert data.endswith(b"\x00")  # the request's own (empty) tagged-field section
    tagged = data[:-1] + b"\x01" + b"\x05" + b"\x03" + b"abc"  # one field, tag 5, 3 bytes
    request, end = produce_request_reader(cls)(memoryview(tagged), 0)
    assert end == len(tagged)
    assert bytes(request.topic_data[0].partition_data[0].records) == b"records"
