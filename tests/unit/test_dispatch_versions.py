"""Every advertised version of every API decodes, is handled and encodes: no sockets, a real broker core.

kio generates one schema per version and required fields differ between versions; this is where
a response missing a field for one version is caught, before a client sees a broken frame.
"""

from __future__ import annotations

import asyncio
import io
import struct
import uuid
from datetime import timedelta

import pytest
from kio.serial import entity_reader, entity_writer

from odradek.broker import BrokerRuntime
from odradek.client.messages import lenient
from odradek.config import BrokerConfig
from odradek.handlers.registry import HANDLERS
from odradek.protocol.schemas import request_class, response_class
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.protocol.records import Record, encode_batch
from odradek.server.dispatcher import Dispatcher
from odradek.server.region_writer import read_regions

TOPIC = "versions"


def _request_header(api_key: int, version: int, correlation_id: int, flexible: bool) -> bytes:
    client_id = b"test"
    head = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    return head + (b"\x00" if flexible else b"")


def _encode(entity, api_key: int, version: int) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return _request_header(api_key, version, 7, type(entity).__flexible__) + buffer.getvalue()


def _request(api_key: int, version: int, topic_id: uuid.UUID):
    cls = request_class(api_key, version)
    n = lambda name: sibling(cls, name)  # noqa: E731
    records = encode_batch([Record(0, 1_700_000_000_000, b"k", b"v", (("h", b"x"),))])
    if api_key == 0:
        partition = build(n("PartitionProduceData"), index=0, records=records)
        topic = build(n("TopicProduceData"), name=TOPIC, topic_id=topic_id, partition_data=(partition,))
        return build(cls, transactional_id=None, acks=-1, timeout=timedelta(seconds=5), topic_data=(topic,))
    if api_key == 1:
        partition = build(
            n("FetchPartition"), partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
            log_start_offset=-1, partition_max_bytes=1 << 20,
        )
        topic = build(n("FetchTopic"), topic=TOPIC, topic_id=topic_id, partitions=(partition,))
        return build(
            cls, replica_id=-1, max_wait=timedelta(milliseconds=0), min_bytes=1, max_bytes=1 << 20,
            isolation_level=0, session_id=0, session_epoch=-1, topics=(topic,), forgotten_topics_data=(), rack_id="",
        )
    if api_key == 2:
        partition = build(n("ListOffsetsPartition"), partition_index=0, current_leader_epoch=-1, timestamp=-1)
        topic = build(n("ListOffsetsTopic"), name=TOPIC, partitions=(partition,))
        return build(cls, replica_id=-1, isolation_level=0, topics=(topic,), timeout=timedelta(seconds=5))
    if api_key == 3:
        topic = build(n("MetadataRequestTopic"), name=TOPIC, topic_id=uuid.UUID(int=0))
        return build(
            cls, topics=(topic,), allow_auto_topic_creation=True, include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
    if api_key == 10:
        return build(cls, key="group", key_type=0, coordinator_keys=("group", "other"))
    if api_key == 18:
        return build(cls, client_software_name="test", client_software_version="1")
    if api_key == 19:
        topic = build(
            n("CreatableTopic"), name=f"created-v{version}", num_partitions=2, replication_factor=1,
            assignments=(), configs=(build(n("CreatableTopicConfig"), name="retention.ms", value="1000"),),
        )
        return build(cls, topics=(topic,), timeout=timedelta(seconds=5), validate_only=False)
    if api_key == 20:
        state = sibling(cls, "DeleteTopicState")
        topics = (build(state, name="missing", topic_id=uuid.UUID(int=0)),) if state else ()
        return build(cls, topic_names=("missing",), topics=topics, timeout=timedelta(seconds=5))
    if api_key == 22:
        return build(cls, transactional_id=None, transaction_timeout=timedelta(seconds=60), producer_id=-1, producer_epoch=-1)
    if api_key == 60:
        return build(cls, include_cluster_authorized_operations=False, endpoint_type=1, include_fenced_brokers=False)
    group = f"group-{api_key}-v{version}"
    if api_key == 8:
        partition = build(
            n("OffsetCommitRequestPartition"), partition_index=0, committed_offset=1, committed_leader_epoch=-1,
            committed_metadata="m",
        )
        topic = build(n("OffsetCommitRequestTopic"), name=TOPIC, partitions=(partition,))
        return build(
            cls, group_id=group, generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
            retention_time=timedelta(milliseconds=-1), topics=(topic,),
        )
    if api_key == 9:
        if version >= 8:
            topic = build(n("OffsetFetchRequestTopics"), name=TOPIC, partition_indexes=(0,))
            entry = build(n("OffsetFetchRequestGroup"), group_id=group, member_id=None, member_epoch=-1, topics=(topic,))
            return build(cls, groups=(entry,), require_stable=False)
        topic = build(n("OffsetFetchRequestTopic"), name=TOPIC, partition_indexes=(0,))
        return build(cls, group_id=group, topics=(topic,), require_stable=False)
    if api_key == 11:
        protocol = build(n("JoinGroupRequestProtocol"), name="range", metadata=b"\x00\x00\x00\x00\x00\x00")
        return build(
            cls, group_id=group, session_timeout=timedelta(seconds=10), rebalance_timeout=timedelta(seconds=10),
            member_id="", group_instance_id=None, protocol_type="consumer", protocols=(protocol,), reason=None,
        )
    if api_key in (12, 14):
        return build(
            cls, group_id=group, generation_id=1, member_id="m", group_instance_id=None, protocol_type=None,
            protocol_name=None, assignments=(),
        )
    if api_key == 13:
        member = sibling(cls, "MemberIdentity")
        members = (build(member, member_id="m", group_instance_id=None, reason=None),) if member else ()
        return build(cls, group_id=group, member_id="m", members=members)
    if api_key == 15:
        return build(cls, groups=(group,), include_authorized_operations=False)
    if api_key == 16:
        return build(cls, states_filter=(), types_filter=())
    if api_key == 42:
        return build(cls, groups_names=(group,))
    if api_key == 47:
        partition = build(n("OffsetDeleteRequestPartition"), partition_index=0)
        topic = build(n("OffsetDeleteRequestTopic"), name=TOPIC, partitions=(partition,))
        return build(cls, group_id=group, topics=(topic,))
    if api_key == 68:
        return build(
            cls, group_id=group, member_id="client-chosen-id", member_epoch=0, instance_id=None, rack_id=None,
            rebalance_timeout=timedelta(seconds=30), subscribed_topic_names=(TOPIC,), subscribed_topic_regex=None,
            server_assignor=None, topic_partitions=(),
        )
    if api_key == 69:
        return build(cls, group_ids=(group, f"group-68-v{version}"), include_authorized_operations=False)
    if api_key == 32:
        resources = (
            build(n("DescribeConfigsResource"), resource_type=2, resource_name=TOPIC, configuration_keys=None),
            build(n("DescribeConfigsResource"), resource_type=4, resource_name="0", configuration_keys=("log.retention.hours",)),
        )
        return build(cls, resources=resources, include_synonyms=True, include_documentation=True)
    if api_key == 33:
        config = build(n("AlterableConfig"), name="retention.ms", value="3600000")
        resource = build(n("AlterConfigsResource"), resource_type=2, resource_name=TOPIC, configs=(config,))
        return build(cls, resources=(resource,), validate_only=True)
    if api_key == 44:
        config = build(n("AlterableConfig"), name="log.retention.ms", config_operation=0, value="3600000")
        resource = build(n("AlterConfigsResource"), resource_type=4, resource_name="", configs=(config,))
        return build(cls, resources=(resource,), validate_only=True)
    if api_key == 37:
        topic = build(n("CreatePartitionsTopic"), name=TOPIC, count=1000 + version, assignments=None)
        return build(cls, topics=(topic,), timeout=timedelta(seconds=5), validate_only=True)
    if api_key == 75:
        return build(cls, topics=(build(n("TopicRequest"), name=TOPIC),), response_partition_limit=10, cursor=None)
    if api_key == 21:
        partition = build(n("DeleteRecordsPartition"), partition_index=0, offset=0)
        return build(cls, topics=(build(n("DeleteRecordsTopic"), name=TOPIC, partitions=(partition,)),), timeout=timedelta(seconds=5))
    if api_key == 43:
        entry = build(n("TopicPartitions"), topic=TOPIC, partitions=(0,))
        return build(cls, election_type=0, topic_partitions=(entry,), timeout=timedelta(seconds=5))
    if api_key == 61:
        return build(cls, topics=(build(n("TopicRequest"), name=TOPIC, partition_indexes=(0,)),))
    if api_key == 35:
        return build(cls, topics=None)
    if api_key == 23:
        partition = build(n("OffsetForLeaderPartition"), partition=0, current_leader_epoch=-1, leader_epoch=0)
        return build(cls, replica_id=-1, topics=(build(n("OffsetForLeaderTopic"), topic=TOPIC, partitions=(partition,)),))
    if api_key == 45:
        partition = build(n("ReassignablePartition"), partition_index=0, replicas=(0,))
        return build(cls, timeout=timedelta(seconds=5), allow_replication_factor_change=True,
                     topics=(build(n("ReassignableTopic"), name=TOPIC, partitions=(partition,)),))
    if api_key == 46:
        return build(cls, timeout=timedelta(seconds=5), topics=None)
    txn = f"txn-{api_key}-v{version}"
    if api_key == 24:
        topic = build(n("AddPartitionsToTxnTopic"), name=TOPIC, partitions=(0,))
        if version >= 4:
            entry = build(n("AddPartitionsToTxnTransaction"), transactional_id=txn, producer_id=1, producer_epoch=0,
                          verify_only=True, topics=(topic,))
            return build(cls, transactions=(entry,))
        return build(cls, v3_and_below_transactional_id=txn, v3_and_below_producer_id=1, v3_and_below_producer_epoch=0,
                     v3_and_below_topics=(topic,))
    if api_key == 25:
        return build(cls, transactional_id=txn, producer_id=1, producer_epoch=0, group_id=group)
    if api_key == 26:
        return build(cls, transactional_id=txn, producer_id=1, producer_epoch=0, committed=True)
    if api_key == 27:
        topic = build(n("WritableTxnMarkerTopic"), name=TOPIC, partition_indexes=(0,))
        marker = build(n("WritableTxnMarker"), producer_id=1, producer_epoch=0, transaction_result=False,
                       topics=(topic,), coordinator_epoch=0, transaction_version=0)
        return build(cls, markers=(marker,))
    if api_key == 28:
        partition = build(n("TxnOffsetCommitRequestPartition"), partition_index=0, committed_offset=1,
                          committed_leader_epoch=-1, committed_metadata=None)
        topic = build(n("TxnOffsetCommitRequestTopic"), name=TOPIC, partitions=(partition,))
        return build(cls, transactional_id=txn, group_id=group, producer_id=1, producer_epoch=0, generation_id=-1,
                     member_id="", group_instance_id=None, topics=(topic,))
    if api_key == 65:
        # none: an unknown id's start time is Kafka's -1, which kio's reader refuses (Java's does not)
        return build(cls, transactional_ids=())
    if api_key == 17:  # on a PLAINTEXT listener: ILLEGAL_SASL_STATE, still a well-formed answer
        return build(cls, mechanism="PLAIN")
    if api_key == 36:
        return build(cls, auth_bytes=b"\0user\0password")
    if api_key == 29:  # without an authorizer: SECURITY_DISABLED, still well-formed
        return build(cls, resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                     principal_filter=None, host_filter=None, operation=1, permission_type=1)
    if api_key == 30:
        creation = build(n("AclCreation"), resource_type=2, resource_name="t", resource_pattern_type=3,
                         principal="User:a", host="*", operation=3, permission_type=3)
        return build(cls, creations=(creation,))
    if api_key == 31:
        each = build(n("DeleteAclsFilter"), resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                     principal_filter=None, host_filter=None, operation=1, permission_type=1)
        return build(cls, filters=(each,))
    if api_key == 48:
        return build(cls, components=(), strict=False)
    if api_key == 49:  # validate_only: checked and answered, nothing stored
        entity = build(n("EntityData"), entity_type="user", entity_name="alice")
        op = build(n("OpData"), key="producer_byte_rate", value=1024.0, remove=False)
        return build(cls, entries=(build(n("EntryData"), entity=(entity,), ops=(op,)),), validate_only=True)
    if api_key == 50:
        return build(cls, users=None)
    if api_key == 51:
        return build(cls, deletions=(), upsertions=())
    if api_key == 66:
        return build(cls, state_filters=(), producer_id_filters=(), duration_filter=-1, transactional_id_pattern=None)
    if api_key == 38:
        return build(cls, renewers=(), max_lifetime=timedelta(milliseconds=-1), owner_principal_type=None,
                     owner_principal_name=None)
    if api_key == 39:
        return build(cls, hmac=b"not a token", renew_period=timedelta(milliseconds=-1))
    if api_key == 40:
        return build(cls, hmac=b"not a token", expiry_time_period=timedelta(milliseconds=-1))
    if api_key == 41:
        return build(cls, owners=None)
    raise AssertionError(f"no request built for API {api_key}")


# Group APIs asked about members or groups that do not exist answer with these, and that is right.
EXPECTED_ERRORS = {
    11: {ErrorCode.none, ErrorCode.member_id_required},
    17: {ErrorCode.illegal_sasl_state},  # a PLAINTEXT listener
    29: {ErrorCode.security_disabled},  # no authorizer configured
    36: {ErrorCode.illegal_sasl_state},
    12: {ErrorCode.unknown_member_id},
    13: {ErrorCode.unknown_member_id, ErrorCode.none},
    14: {ErrorCode.unknown_member_id},
    42: {ErrorCode.none},  # per-group errors are inside the results
    47: {ErrorCode.group_id_not_found},
    25: {ErrorCode.invalid_producer_id_mapping},  # a transactional id never initialized
    26: {ErrorCode.invalid_producer_id_mapping},
    **{key: {ErrorCode.delegation_token_request_not_allowed} for key in (38, 39, 40, 41)},  # PLAINTEXT
}


CASES = [
    (handler.api_key, version)
    for handler in HANDLERS.values()
    for version in range(handler.rejected_below, handler.max_version + 1)
]


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    """A broker core (no listener traffic) with one topic."""
    directory = tmp_path_factory.mktemp("broker")
    config, _ = BrokerConfig.from_properties(
        {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(directory), "group.initial.rebalance.delay.ms": "0",
         "offsets.topic.num.partitions": "3", "transaction.state.log.num.partitions": "3"}
    )
    loop = asyncio.new_event_loop()
    runtime = BrokerRuntime(config)
    loop.run_until_complete(runtime.start())
    services = runtime.servers[0].dispatcher.services
    record = services.controller.create_topic(TOPIC, 1, 1, {})
    services.groups.store.ensure_topic()  # as the first FindCoordinator does: this broker coordinates groups
    services.transactions.store.ensure_topic()  # ... and transactions
    yield loop, Dispatcher(services), record.topic_id
    loop.run_until_complete(runtime.stop())
    loop.close()


@pytest.mark.parametrize(("api_key", "version"), CASES, ids=[f"{k}v{v}" for k, v in CASES])
def test_every_advertised_version_round_trips(core, api_key: int, version: int) -> None:
    loop, dispatcher, topic_id = core
    frame = _encode(_request(api_key, version, topic_id), api_key, version)
    answer = _joined(loop.run_until_complete(dispatcher.dispatch(frame, "test")))
    size, correlation_id = struct.unpack_from(">ii", answer)
    assert size == len(answer) - 4
    assert correlation_id == 7
    response_type = response_class(api_key, version)
    header_size = 4 + 4 + (1 if response_type.__flexible__ and api_key != 18 else 0)
    response, used = entity_reader(lenient(response_type))(answer, header_size)  # Kafka's -1 timestamps too
    assert header_size + used == len(answer), "trailing bytes after the response body"
    assert getattr(response, "error_code", ErrorCode.none) in EXPECTED_ERRORS.get(api_key, {ErrorCode.none})


def test_api_versions_lists_exactly_the_registry(core) -> None:
    loop, dispatcher, _ = core
    frame = _encode(_request(18, 3, uuid.UUID(int=0)), 18, 3)
    answer = _joined(loop.run_until_complete(dispatcher.dispatch(frame, "test")))
    response, _ = entity_reader(response_class(18, 3))(answer, 8)
    advertised = {(k.api_key, k.min_version, k.max_version) for k in response.api_keys}
    assert advertised == {(h.api_key, h.min_version, h.max_version) for h in HANDLERS.values()}
    produce = next(k for k in response.api_keys if k.api_key == 0)
    assert produce.min_version == 0, "Produce must be advertised from v0 (KAFKA-18659)"


@pytest.mark.parametrize(("api_key", "version"), CASES, ids=[f"{k}v{v}" for k, v in CASES])
def test_error_response_is_well_formed_for_every_version(api_key: int, version: int) -> None:
    from odradek.handlers.responses import error_response

    response_type = response_class(api_key, version)
    response = error_response(response_type, ErrorCode.unknown_server_error)
    buffer = io.BytesIO()
    entity_writer(response_type)(buffer, response)
    decoded, used = entity_reader(lenient(response_type))(buffer.getvalue(), 0)
    assert used == len(buffer.getvalue())
    assert getattr(decoded, "error_code", ErrorCode.unknown_server_error) == ErrorCode.unknown_server_error


def _joined(answer) -> bytes:
    """A frame from dispatch(): one buffer, or a Fetch's chunks (records as regions of log files)."""
    return b"".join(bytes(chunk) for chunk in read_regions(answer)) if isinstance(answer, list) else bytes(answer)
