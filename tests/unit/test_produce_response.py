"""The handler's Produce answer (ProduceAnswer), encoded with struct, is byte for byte what kio
writes for the same response, in every version the broker serves."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer

from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.protocol.produce_response import ProduceAnswer, ProducedPartition
from odradek.protocol.schemas import response_class

answers = st.lists(st.tuples(st.text(min_size=1, max_size=20), st.lists(st.tuples(
    st.integers(0, 2**31 - 1), st.sampled_from([0, 6, 10, 87]), st.integers(-1, 2**63 - 1), st.integers(-1, 2**41),
    st.integers(-1, 2**63 - 1), st.one_of(st.none(), st.text(max_size=12))), max_size=4)), max_size=3)


def _kios_encoding(version: int, answer: ProduceAnswer) -> bytes:
    """What kio writes for the kio ProduceResponse saying what `answer` says."""
    cls = response_class(0, version)
    partition_class, topic_class = sibling(cls, "PartitionProduceResponse"), sibling(cls, "TopicProduceResponse")

    def partition(index, error, base, append_ms, start, message):
        return build(partition_class, index=index, error_code=ErrorCode(error), base_offset=base,
                     log_append_time=None if append_ms < 0 else datetime.fromtimestamp(append_ms / 1000, tz=timezone.utc),
                     log_start_offset=start, error_message=message, record_errors=())

    response = build(cls, throttle_time=timedelta(milliseconds=answer.throttle_ms), responses=tuple(
        build(topic_class, name=name, partition_responses=tuple(partition(*entry) for entry in partitions))
        for name, partitions in answer.topics))
    out = io.BytesIO()
    entity_writer(cls)(out, response)
    return out.getvalue()


@pytest.mark.parametrize("version", range(3, 13))
@settings(max_examples=60, deadline=None)
@given(topic_list=answers, throttle=st.integers(0, 5000))
def test_the_handlers_answer_is_kios_encoding(version, topic_list, throttle):
    answer = ProduceAnswer(throttle, [(name, [ProducedPartition(*entry) for entry in entries]) for name, entries in topic_list])
    assert answer.body(version) == _kios_encoding(version, answer)


@pytest.mark.parametrize("version", [3, 7, 8, 9, 12])
def test_the_plain_answer(version):
    """One partition appended at offset 42, CreateTime: what every acks=1 producer gets back."""
    answer = ProduceAnswer(0, [("t", [ProducedPartition(0, ErrorCode.none, 42, -1, 0, None)])])
    assert answer.body(version) == _kios_encoding(version, answer)
