"""Metadata responses encoded with cached topic entries are byte for byte what kio writes, in every
version the broker serves, and a cached entry is reused only for the same entry object."""

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
from odradek.protocol.metadata_response import metadata_response_body
from odradek.protocol.schemas import response_class

node_ids = st.lists(st.integers(0, 2**31 - 1), max_size=4)
partitions = st.lists(st.tuples(st.sampled_from([0, 5, 9]), st.integers(-1, 2**31 - 1), st.integers(-1, 500),
                                node_ids, node_ids, node_ids), max_size=5)
topics = st.lists(st.tuples(st.text(min_size=1, max_size=20), st.booleans(), st.sampled_from([0, 3, 29]), partitions),
                  max_size=4)
brokers = st.lists(st.tuples(st.integers(0, 2**31 - 1), st.text(max_size=30), st.integers(0, 65535),
                             st.one_of(st.none(), st.text(max_size=10))), max_size=3)


def _response(version, broker_list, topic_list, cluster_id, controller, throttle, operations):
    cls = response_class(3, version)
    partition_class, topic_class = sibling(cls, "MetadataResponsePartition"), sibling(cls, "MetadataResponseTopic")
    return build(
        cls, throttle_time=timedelta(milliseconds=throttle), cluster_id=cluster_id, controller_id=controller,
        brokers=tuple(build(sibling(cls, "MetadataResponseBroker"), node_id=n, host=h, port=p, rack=r)
                      for n, h, p, r in broker_list),
        topics=tuple(build(topic_class, error_code=ErrorCode(error), name=name, topic_id=uuid.UUID(int=len(name)),
                           is_internal=internal, topic_authorized_operations=operations, partitions=tuple(
                               build(partition_class, error_code=ErrorCode(pe), partition_index=i, leader_id=leader,
                                     leader_epoch=epoch, replica_nodes=tuple(r), isr_nodes=tuple(isr),
                                     offline_replicas=tuple(off))
                               for i, (pe, leader, epoch, r, isr, off) in enumerate(parts)))
                     for name, internal, error, parts in topic_list),
        cluster_authorized_operations=operations, error_code=ErrorCode.none)


@pytest.mark.parametrize("version", range(0, 13))
@settings(max_examples=40, deadline=None)
@given(broker_list=brokers, topic_list=topics, cluster_id=st.one_of(st.none(), st.text(max_size=22)),
       controller=st.integers(-1, 2**31 - 1), throttle=st.integers(0, 5000), operations=st.integers(-2**31, 2**31 - 1))
def test_body_is_kios_encoding(version, broker_list, topic_list, cluster_id, controller, throttle, operations):
    response = _response(version, broker_list, topic_list, cluster_id, controller, throttle, operations)
    expected = io.BytesIO()
    entity_writer(type(response))(expected, response)
    assert metadata_response_body(response, version) == expected.getvalue()
    assert metadata_response_body(response, version) == expected.getvalue(), "the same again, from the cache"


def test_a_changed_entry_is_encoded_afresh():
    first = _response(12, [], [("t", False, 0, [(0, 1, 1, [1], [1], [])])], "c", 1, 0, -2**31)
    second = _response(12, [], [("t", False, 0, [(0, 2, 2, [1, 2], [2], [])])], "c", 1, 0, -2**31)
    assert metadata_response_body(first, 12) != metadata_response_body(second, 12)
