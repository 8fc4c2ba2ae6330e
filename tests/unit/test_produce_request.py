"""Produce requests decoded without kio read what kio reads, in every version the broker serves,
with each partition's records a view of the request (no copy), writable when the frame is; and a
request cut short is refused with FrameError, as kio's decoding errors are."""

from __future__ import annotations

import io
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


def _with_bytes(request):
    """The request with each partition's records as bytes, to compare with kio's."""
    return type(request)(
        transactional_id=request.transactional_id, acks=request.acks, timeout=request.timeout,
        topic_data=tuple(type(topic)(name=topic.name, partition_data=tuple(
            type(p)(index=p.index, records=None if p.records is None else bytes(p.records)) for p in topic.partition_data))
            for topic in request.topic_data))


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
    assert _with_bytes(request) == expected


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
