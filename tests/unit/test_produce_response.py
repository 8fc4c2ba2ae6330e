"""Produce responses encoded with struct are byte for byte what kio writes, in every version the
broker serves: the handler's answer (ProduceAnswer), and kio responses with plain partition
entries and the rarer ones (record errors, an error message, a current leader, node endpoints)
that go through kio."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer

from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.protocol.produce_response import ProduceAnswer, ProducedPartition, produce_response_body
from odradek.protocol.schemas import response_class

append_times = st.one_of(st.none(), st.integers(0, 2**41).map(lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc)))
record_errors = st.lists(st.tuples(st.integers(0, 2**31 - 1), st.one_of(st.none(), st.text(max_size=10))), max_size=2)
partition_entries = st.lists(
    st.tuples(st.integers(0, 2**31 - 1), st.sampled_from([0, 6, 10, 87]), st.integers(-1, 2**63 - 1), append_times,
              st.integers(-1, 2**63 - 1), st.one_of(st.just([]), record_errors), st.one_of(st.none(), st.text(max_size=12)),
              st.one_of(st.none(), st.tuples(st.integers(-1, 5), st.integers(-1, 9)))),
    max_size=4)
topics = st.lists(st.tuples(st.text(min_size=1, max_size=20), partition_entries), max_size=3)
endpoints = st.lists(st.tuples(st.integers(0, 9), st.text(max_size=10), st.integers(0, 65535), st.one_of(st.none(), st.text(max_size=5))),
                     max_size=2)


def _response(version, topic_list, throttle, endpoint_list):
    cls = response_class(0, version)
    partition_class, topic_class = sibling(cls, "PartitionProduceResponse"), sibling(cls, "TopicProduceResponse")
    leader_class, endpoint_class = sibling(cls, "LeaderIdAndEpoch"), sibling(cls, "NodeEndpoint")
    batch_error_class = sibling(cls, "BatchIndexAndErrorMessage")

    def partition(index, error, base, append_time, start, errors, message, leader):
        fields = dict(index=index, error_code=ErrorCode(error), base_offset=base, log_append_time=append_time,
                      log_start_offset=start, error_message=message,
                      record_errors=tuple(build(batch_error_class, batch_index=i, batch_index_error_message=m)
                                          for i, m in errors) if batch_error_class else ())
        if leader is not None and leader_class is not None:
            fields["current_leader"] = build(leader_class, leader_id=leader[0], leader_epoch=leader[1])
        return build(partition_class, **fields)

    fields = dict(throttle_time=timedelta(milliseconds=throttle), responses=tuple(
        build(topic_class, name=name, partition_responses=tuple(partition(*entry) for entry in entries))
        for name, entries in topic_list))
    if endpoint_class is not None:
        fields["node_endpoints"] = tuple(build(endpoint_class, node_id=n, host=h, port=p, rack=r) for n, h, p, r in endpoint_list)
    return build(cls, **fields)


@pytest.mark.parametrize("version", range(3, 13))
@settings(max_examples=60, deadline=None)
@given(topic_list=topics, throttle=st.integers(0, 5000), endpoint_list=st.one_of(st.just([]), endpoints))
def test_body_is_kios_encoding(version, topic_list, throttle, endpoint_list):
    response = _response(version, topic_list, throttle, endpoint_list)
    expected = io.BytesIO()
    entity_writer(type(response))(expected, response)
    assert produce_response_body(response, version) == expected.getvalue()


@pytest.mark.parametrize("version", [3, 7, 8, 9, 12])
def test_the_plain_answer(version):
    """One partition appended at offset 42, CreateTime: what every acks=1 producer gets back."""
    response = _response(version, [("t", [(0, 0, 42, None, 0, [], None, None)])], 0, [])
    expected = io.BytesIO()
    entity_writer(type(response))(expected, response)
    assert produce_response_body(response, version) == expected.getvalue()


answers = st.lists(st.tuples(st.text(min_size=1, max_size=20), st.lists(st.tuples(
    st.integers(0, 2**31 - 1), st.sampled_from([0, 6, 10, 87]), st.integers(-1, 2**63 - 1), st.integers(-1, 2**41),
    st.integers(-1, 2**63 - 1), st.one_of(st.none(), st.text(max_size=12))), max_size=4)), max_size=3)


@pytest.mark.parametrize("version", range(3, 13))
@settings(max_examples=60, deadline=None)
@given(topic_list=answers, throttle=st.integers(0, 5000))
def test_the_handlers_answer_is_kios_encoding(version, topic_list, throttle):
    """ProduceAnswer.body against kio's encoding of the same response."""
    answer = ProduceAnswer(throttle, [(name, [ProducedPartition(*entry) for entry in entries]) for name, entries in topic_list])
    as_kio = _response(version, [(name, [(index, error, base, None if append_ms < 0 else datetime.fromtimestamp(append_ms / 1000, tz=timezone.utc),
                                          start, [], message, None)
                                         for index, error, base, append_ms, start, message in entries])
                                 for name, entries in topic_list], throttle, [])
    expected = io.BytesIO()
    entity_writer(type(as_kio))(expected, as_kio)
    assert answer.body(version) == expected.getvalue()
