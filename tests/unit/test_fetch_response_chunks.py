"""Fetch answers written as chunks (records not copied) are byte for byte what kio writes for the
same response, in every version the broker serves."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer

from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.protocol.fetch_response import FetchAnswer, FetchedPartition
from odradek.protocol.schemas import response_class


def _partition(cls, index: int, records: bytes, error: int, aborted: list, diverging: bool):
    fields = {}
    epoch_end = sibling(cls, "EpochEndOffset")
    if diverging and epoch_end is not None:
        fields["diverging_epoch"] = build(epoch_end, epoch=3, end_offset=257)
    aborted_class = sibling(cls, "AbortedTransaction")
    return build(sibling(cls, "PartitionData"), partition_index=index, error_code=ErrorCode(error), high_watermark=1000 + index,
                 last_stable_offset=900, log_start_offset=7,
                 aborted_transactions=tuple(build(aborted_class, producer_id=p, first_offset=o) for p, o in aborted)
                 if aborted is not None else None,
                 preferred_read_replica=index % 3 - 1, records=records, **fields)


partitions = st.lists(st.tuples(
    st.binary(max_size=300), st.sampled_from([0, 6]),
    st.one_of(st.none(), st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)), max_size=3)),
    st.booleans()), max_size=4)


@pytest.mark.parametrize("version", range(4, 18))
@settings(max_examples=40, deadline=None)
@given(topics=st.lists(partitions, max_size=3), throttle=st.integers(0, 5000), session=st.integers(0, 2**31 - 1))
def test_chunks_join_to_kios_encoding(version, topics, throttle, session):
    cls = response_class(1, version)
    topic_class = sibling(cls, "FetchableTopicResponse")
    by_id = version >= 13
    keys = [uuid.UUID(int=t + 1) if by_id else f"topic-{t}" for t in range(len(topics))]
    responses = tuple(
        build(topic_class, topic=key, topic_id=key, partitions=tuple(
            _partition(cls, i, records, error, aborted, diverging and not records)
            for i, (records, error, aborted, diverging) in enumerate(parts)))
        for key, parts in zip(keys, topics))
    response = build(cls, throttle_time=timedelta(milliseconds=throttle), error_code=ErrorCode.none, session_id=session,
                     responses=responses)
    expected = io.BytesIO()
    entity_writer(cls)(expected, response)
    answer = FetchAnswer(throttle, ErrorCode.none, session, [
        (key, [FetchedPartition(i, ErrorCode(error), 1000 + i, 900, 7, aborted, i % 3 - 1, records,
                                (3, 257) if diverging and not records and version >= 12 else None)
               for i, (records, error, aborted, diverging) in enumerate(parts)])
        for key, parts in zip(keys, topics)])
    chunks = answer.chunks(version)
    assert b"".join(bytes(chunk) for chunk in chunks) == expected.getvalue()
