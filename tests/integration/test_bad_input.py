"""Bad input (DESIGN §7): every request that decodes gets a well-formed answer with the right
error code; a frame that does not decode closes only its own connection, with one log line
naming the peer and the reason. After each bad input the broker must still serve a normal
client and its log must hold no traceback.

Requests are sent with `wire.WireClient` because no real client sends these on purpose.
"""

from __future__ import annotations

import random
import socket
import struct
import uuid
from datetime import timedelta

import pytest
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_topics.v7 import request as create_topics_v7
from kio.schema.elect_leaders.v2 import request as elect_leaders_v2
from kio.schema.fetch.v12 import request as fetch_v12
from kio.schema.list_offsets.v7 import request as list_offsets_v7
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.produce.v9 import request as produce_v9
from kio.serial import entity_reader
from kio.static.primitive import i8, i16, i32, i64

from conftest import BrokerProcess
from odradek.protocol.records import encode_batch

from .clients import Record, consume, create_topic, produce
from .wire import WireClient

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUIRED_ACKS = 21
UNSUPPORTED_VERSION = 35
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
INVALID_REQUEST = 42
ELECTION_NOT_NEEDED = 84

LATEST = -1
INVALID_TOPIC_NAMES = ["bad/name", "a" * 250, "."]


# --- brokers -----------------------------------------------------------------------------------
#
# Starting a broker takes about two seconds, so the tests that need no special config share one
# per module; every test checks the shared broker is healthy afterwards, so a test that breaks it
# fails itself, not the next one.


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory):
    broker = BrokerProcess(tmp_path_factory.mktemp("bad-input-broker")).start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(request: pytest.FixtureRequest, shared_broker: BrokerProcess) -> BrokerProcess:
    """The module's broker, attached to the test so that a failure report carries its log."""
    request.node._odradek_brokers = [shared_broker]
    return shared_broker


# --- requests ------------------------------------------------------------------------------


def api_versions(client: WireClient):
    return client.request(
        18, 3, ApiVersionsRequest(client_software_name="odradek-tests", client_software_version="1")
    )


def create_topics(client: WireClient, name: str, partitions: int = 1, replication_factor: int = 1, configs=None):
    request = create_topics_v7.CreateTopicsRequest(
        topics=(
            create_topics_v7.CreatableTopic(
                name=name,
                num_partitions=i32(partitions),
                replication_factor=i16(replication_factor),
                assignments=(),
                configs=tuple(
                    create_topics_v7.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()
                ),
            ),
        ),
        timeout=timedelta(seconds=10),
    )
    (result,) = client.request(19, 7, request).topics
    return result


def new_topic(client: WireClient, partitions: int = 1) -> str:
    name = f"bad-input-{uuid.uuid4().hex[:8]}"
    result = create_topics(client, name, partitions)
    assert result.error_code == NONE, result
    return name


def produce_partition(client: WireClient, topic: str, partition: int, records: bytes | None, acks: int = -1):
    """The answer for the one partition of a Produce v9 request."""
    request = produce_v9.ProduceRequest(
        acks=i16(acks),
        timeout=timedelta(seconds=10),
        topic_data=(
            produce_v9.TopicProduceData(
                name=topic,
                partition_data=(produce_v9.PartitionProduceData(index=i32(partition), records=records),),
            ),
        ),
    )
    (topic_response,) = client.request(0, 9, request).responses
    assert topic_response.name == topic
    (partition_response,) = topic_response.partition_responses
    assert partition_response.index == partition
    return partition_response


def list_offset(client: WireClient, topic: str, partition: int = 0, timestamp: int = LATEST):
    request = list_offsets_v7.ListOffsetsRequest(
        replica_id=i32(-1),
        isolation_level=i8(0),
        topics=(
            list_offsets_v7.ListOffsetsTopic(
                name=topic,
                partitions=(
                    list_offsets_v7.ListOffsetsPartition(partition_index=i32(partition), timestamp=i64(timestamp)),
                ),
            ),
        ),
    )
    (topic_response,) = client.request(2, 7, request).topics
    (partition_response,) = topic_response.partitions
    return partition_response


def fetch_partition(client: WireClient, topic: str, partition: int = 0, offset: int = 0):
    request = fetch_v12.FetchRequest(
        max_wait=timedelta(milliseconds=10),
        min_bytes=i32(0),
        topics=(
            fetch_v12.FetchTopic(
                topic=topic,
                partitions=(
                    fetch_v12.FetchPartition(
                        partition=i32(partition), fetch_offset=i64(offset), partition_max_bytes=i32(1 << 20)
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
    )
    response = client.request(1, 12, request)
    assert response.error_code == NONE, response
    (topic_response,) = response.responses
    (partition_response,) = topic_response.partitions
    return partition_response


def batch(*values: bytes) -> bytes:
    return encode_batch([(1_700_000_000_000 + i, None, value) for i, value in enumerate(values)])


# --- what every test checks afterwards ------------------------------------------------------


def assert_broker_healthy(broker, with_real_client: bool = False) -> None:
    """A fresh connection gets ApiVersions and can produce and read back a message; the log
    holds no traceback. `with_real_client` also round-trips a message with confluent-kafka."""
    with WireClient(broker.bootstrap_servers) as client:
        assert api_versions(client).error_code == NONE
        topic = new_topic(client)
        written = produce_partition(client, topic, 0, batch(b"still alive"))
        assert (written.error_code, written.base_offset) == (NONE, 0)
        read = fetch_partition(client, topic, 0)
        assert (read.error_code, read.high_watermark) == (NONE, 1)
        assert b"still alive" in bytes(read.records)
    if with_real_client:
        topic = f"healthy-{uuid.uuid4().hex[:8]}"
        create_topic(broker.bootstrap_servers, topic)
        produce("confluent", broker.bootstrap_servers, topic, [Record(b"k", b"still alive", 0)])
        (message,) = consume("confluent", broker.bootstrap_servers, topic, [0], 1)
        assert message.value == b"still alive"
    assert_no_traceback(broker)


def assert_no_traceback(broker) -> None:
    assert "Traceback" not in broker.output()


def closing_lines(broker, client: WireClient) -> list[str]:
    host, port = client.sock.getsockname()
    return [line for line in broker.output().splitlines() if f"Closing connection from {host}:{port}:" in line]


# --- API keys and versions -------------------------------------------------------------------


def test_unknown_api_key_answers_unsupported_version_and_keeps_connection(broker):
    with WireClient(broker.bootstrap_servers) as client:
        _correlation_id, body = client.request_raw(9999, 0, b"")
        assert body == struct.pack(">h", UNSUPPORTED_VERSION)
        assert api_versions(client).error_code == NONE
    assert_broker_healthy(broker, with_real_client=True)


@pytest.mark.parametrize(
    "api_key, version, body",
    [
        # Fetch v3: replica_id, max_wait_ms, min_bytes, max_bytes, [topic, [partition, offset, max_bytes]]
        (1, 3, struct.pack(">iiii", -1, 100, 1, 1 << 20) + struct.pack(">ih", 1, 1) + b"t"
         + struct.pack(">iiqi", 1, 0, 0, 1 << 20)),
        # ListOffsets v0: replica_id, [topic, [partition, timestamp, max_num_offsets]]
        (2, 0, struct.pack(">i", -1) + struct.pack(">ih", 1, 1) + b"t" + struct.pack(">iiqi", 1, 0, -1, 1)),
    ],
    ids=["fetch-v3", "list-offsets-v0"],
)
def test_unsupported_version_of_known_api_answers_unsupported_version(broker, api_key, version, body):
    with WireClient(broker.bootstrap_servers) as client:
        _correlation_id, answer = client.request_raw(api_key, version, body)
        assert answer == struct.pack(">h", UNSUPPORTED_VERSION)
        assert api_versions(client).error_code == NONE
    assert_broker_healthy(broker)


def test_api_versions_above_range_answers_v0_layout_with_api_list(broker):
    body = b"\x0eodradek-tests\x021\x00"  # the v3 body: compact strings and tags
    with WireClient(broker.bootstrap_servers) as client:
        correlation_id = client.next_correlation_id()
        header = struct.pack(">hhih", 18, 127, correlation_id, 4) + b"test" + b"\x00"
        client.send_raw(struct.pack(">i", len(header) + len(body)) + header + body)
        frame = client.recv_frame()
        assert struct.unpack_from(">i", frame, 0)[0] == correlation_id
        response, size = entity_reader(ApiVersionsResponseV0)(frame, 4)
        assert 4 + size == len(frame)
        assert response.error_code == UNSUPPORTED_VERSION
        ranges = {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys}
        assert ranges[0][0] == 0
        assert ranges[18] == (0, 4)
        assert api_versions(client).error_code == NONE
    assert_broker_healthy(broker)


def test_produce_v2_answers_unsupported_version_per_partition(broker):
    message_set = b"\x00" * 30  # never looked at
    body = struct.pack(">hi", 1, 1000) + struct.pack(">i", 1)
    body += struct.pack(">h", 5) + b"topic" + struct.pack(">i", 2)
    body += struct.pack(">ii", 0, len(message_set)) + message_set
    body += struct.pack(">ii", 3, len(message_set)) + message_set
    with WireClient(broker.bootstrap_servers) as client:
        _correlation_id, answer = client.request_raw(0, 2, body)
        expected = struct.pack(">i", 1) + struct.pack(">h", 5) + b"topic" + struct.pack(">i", 2)
        expected += struct.pack(">ihqq", 0, UNSUPPORTED_VERSION, -1, -1)
        expected += struct.pack(">ihqq", 3, UNSUPPORTED_VERSION, -1, -1)
        expected += struct.pack(">i", 0)  # throttle_time_ms
        assert answer == expected
        assert api_versions(client).error_code == NONE
    assert_broker_healthy(broker)


# --- broken frames ----------------------------------------------------------------------------


def _garbled_produce_body() -> bytes:
    """A Produce v9 header followed by bytes that are not a Produce body."""
    rng = random.Random(7)
    header = struct.pack(">hhih", 0, 9, 1, 4) + b"test" + b"\x00"
    return header + bytes([0x00, 0x01, 0x00, 0x00, 0x27, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) + rng.randbytes(40)


def assert_closed_with_one_log_line(broker, frame: bytes, reason: str) -> None:
    """`frame` closes its connection with one WARN line naming the peer and `reason`, while a
    connection opened before it keeps working."""
    with WireClient(broker.bootstrap_servers) as before, WireClient(broker.bootstrap_servers) as bad:
        assert api_versions(before).error_code == NONE
        bad.send_raw(frame)
        assert bad.is_closed(), "the broker kept the connection open"
        assert api_versions(before).error_code == NONE
        lines = closing_lines(broker, bad)
        assert len(lines) == 1, broker.output()
        assert " WARN " in lines[0] and reason in lines[0], lines[0]
    assert_broker_healthy(broker, with_real_client=True)


@pytest.mark.parametrize(
    "frame, reason",
    [
        (struct.pack(">i", -5), "negative frame size -5"),
        (struct.pack(">i", len(_garbled_produce_body())) + _garbled_produce_body(), "undecodable produce v9 request"),
        (struct.pack(">i", 3) + b"\x00\x12\x00", "request of 3 bytes is shorter than a request header"),
    ],
    ids=["negative-size", "garbled-body", "shorter-than-header"],
)
def test_broken_frame_closes_only_that_connection_with_one_log_line(broker, frame, reason):
    assert_closed_with_one_log_line(broker, frame, reason)


def test_frame_above_socket_request_max_bytes_closes_only_that_connection(start_broker):
    broker = start_broker(**{"socket.request.max.bytes": "1024"})
    assert_closed_with_one_log_line(
        broker,
        struct.pack(">i", 2048) + b"\0" * 16,
        "frame of 2048 bytes is larger than socket.request.max.bytes 1024",
    )


def test_truncated_frame_does_not_stall_others_and_is_dropped_on_close(broker):
    with WireClient(broker.bootstrap_servers) as before, WireClient(broker.bootstrap_servers) as bad:
        assert api_versions(before).error_code == NONE
        bad.send_raw(struct.pack(">i", 100) + b"\x00\x12\x00\x03\x00\x00")
        # The broker waits for the rest of the frame; that must not hold up anyone else.
        assert api_versions(before).error_code == NONE
        with WireClient(broker.bootstrap_servers) as after:
            assert api_versions(after).error_code == NONE
        bad.sock.shutdown(socket.SHUT_WR)
        assert bad.is_closed(), "the broker kept a half-closed connection with a truncated frame"
        assert api_versions(before).error_code == NONE
    assert_broker_healthy(broker)


# --- Produce: corrupt batches ------------------------------------------------------------------


def _bad_crc(data: bytes) -> bytes:
    patched = bytearray(data)
    patched[70] ^= 0xFF
    return bytes(patched)


def _wrong_magic(data: bytes) -> bytes:
    patched = bytearray(data)
    patched[16] = 1
    return bytes(patched)


def _count_mismatch(data: bytes) -> bytes:
    patched = bytearray(data)
    struct.pack_into(">i", patched, 57, 5)
    return bytes(patched)


def _truncated(data: bytes) -> bytes:
    return data[:-7]


def _valid_then_corrupt(data: bytes) -> bytes:
    return data + _bad_crc(data)


def _header_only_fragment(data: bytes) -> bytes:
    return data[:40]


@pytest.mark.parametrize(
    "corrupt",
    [_bad_crc, _wrong_magic, _count_mismatch, _truncated, _valid_then_corrupt, _header_only_fragment],
    ids=["bad-crc", "wrong-magic", "count-mismatch", "truncated", "valid-then-corrupt", "header-fragment"],
)
def test_corrupt_batch_is_rejected_and_nothing_is_appended(broker, corrupt):
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client)
        assert produce_partition(client, topic, 0, batch(b"first")).error_code == NONE
        bad = corrupt(batch(b"corrupt-1", b"corrupt-2", b"corrupt-3"))
        answer = produce_partition(client, topic, 0, bad)
        assert answer.error_code == CORRUPT_MESSAGE, answer
        assert answer.base_offset == -1
        latest = list_offset(client, topic)
        assert (latest.error_code, latest.offset) == (NONE, 1)
        assert produce_partition(client, topic, 0, batch(b"second")).base_offset == 1
    messages = consume("confluent", broker.bootstrap_servers, topic, [0], 2)
    assert [(m.offset, m.value) for m in messages] == [(0, b"first"), (1, b"second")]
    assert_broker_healthy(broker)


@pytest.mark.parametrize("records", [b"", None], ids=["empty", "null"])
def test_produce_without_a_batch_is_rejected(broker, records):
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client)
        answer = produce_partition(client, topic, 0, records)
        assert answer.error_code == CORRUPT_MESSAGE, answer
        assert list_offset(client, topic).offset == 0
    assert_broker_healthy(broker)


def test_batch_above_message_max_bytes_is_message_too_large(start_broker):
    broker = start_broker(**{"message.max.bytes": "1000"})
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client)
        big = batch(random.Random(1).randbytes(5000))
        answer = produce_partition(client, topic, 0, big)
        assert answer.error_code == MESSAGE_TOO_LARGE, answer
        assert list_offset(client, topic).offset == 0
        assert produce_partition(client, topic, 0, batch(b"small")).error_code == NONE
    assert_broker_healthy(broker, with_real_client=True)


# --- names, partitions, settings -------------------------------------------------------------


@pytest.mark.parametrize("name", INVALID_TOPIC_NAMES, ids=["slash", "250-chars", "dot"])
def test_invalid_topic_name_is_rejected_by_produce_metadata_and_create_topics(broker, name):
    with WireClient(broker.bootstrap_servers) as client:
        # Produce never creates a topic, so to it (as to Kafka) this is just an unknown one.
        assert produce_partition(client, name, 0, batch(b"x")).error_code == UNKNOWN_TOPIC_OR_PARTITION

        metadata = client.request(
            3,
            12,
            metadata_v12.MetadataRequest(
                topics=(metadata_v12.MetadataRequestTopic(topic_id=None, name=name),),
                allow_auto_topic_creation=True,
                include_topic_authorized_operations=False,
            ),
        )
        (topic,) = metadata.topics
        assert (topic.name, topic.error_code) == (name, INVALID_TOPIC_EXCEPTION)

        result = create_topics(client, name)
        assert result.error_code == INVALID_TOPIC_EXCEPTION, result
        assert result.error_message

        everything = client.request(
            3,
            12,
            metadata_v12.MetadataRequest(
                topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
            ),
        )
        assert name not in {t.name for t in everything.topics}
    assert_broker_healthy(broker)


def test_unknown_partition_in_produce_fetch_and_list_offsets(broker):
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client, partitions=1)
        assert produce_partition(client, topic, 7, batch(b"x")).error_code == UNKNOWN_TOPIC_OR_PARTITION
        assert fetch_partition(client, topic, 7).error_code == UNKNOWN_TOPIC_OR_PARTITION
        assert list_offset(client, topic, 7).error_code == UNKNOWN_TOPIC_OR_PARTITION
        assert list_offset(client, topic, 0).offset == 0
    assert_broker_healthy(broker)


def test_acks_3_is_invalid_required_acks(broker):
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client)
        answer = produce_partition(client, topic, 0, batch(b"x"), acks=3)
        assert answer.error_code == INVALID_REQUIRED_ACKS, answer
        assert list_offset(client, topic).offset == 0
    assert_broker_healthy(broker)


def test_unknown_election_type_is_invalid_request(broker):
    """Kafka knows election types 0 (preferred) and 1 (unclean); any other is refused, not guessed."""
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client, partitions=2)
        request = elect_leaders_v2.ElectLeadersRequest(
            election_type=i8(5),
            topic_partitions=(elect_leaders_v2.TopicPartitions(topic=topic, partitions=(i32(0), i32(1))),),
            timeout=timedelta(seconds=5),
        )
        answer = client.request(43, 2, request)
        assert answer.error_code == INVALID_REQUEST, answer
        (result,) = answer.replica_election_results
        assert result.topic == topic
        assert [(p.partition_id, p.error_code, p.error_message) for p in result.partition_result] == [
            (0, INVALID_REQUEST, "Unknown election type 5"),
            (1, INVALID_REQUEST, "Unknown election type 5"),
        ]
        request = elect_leaders_v2.ElectLeadersRequest(
            election_type=i8(0),
            topic_partitions=(elect_leaders_v2.TopicPartitions(topic=topic, partitions=(i32(0),)),),
            timeout=timedelta(seconds=5),
        )
        (result,) = client.request(43, 2, request).replica_election_results
        assert result.partition_result[0].error_code == ELECTION_NOT_NEEDED
    assert_broker_healthy(broker)


@pytest.mark.parametrize(
    "partitions, replication_factor, configs, error_code",
    [
        (1, 3, {}, INVALID_REPLICATION_FACTOR),
        (1, 1, {"no.such.config": "1"}, INVALID_CONFIG),
        (0, 1, {}, INVALID_PARTITIONS),
    ],
    ids=["replication-factor-3", "unknown-config", "zero-partitions"],
)
def test_create_topics_rejects_bad_settings(broker, partitions, replication_factor, configs, error_code):
    name = f"bad-settings-{uuid.uuid4().hex[:8]}"
    with WireClient(broker.bootstrap_servers) as client:
        result = create_topics(client, name, partitions, replication_factor, configs)
        assert result.error_code == error_code, result
        assert result.error_message
        metadata = client.request(
            3,
            12,
            metadata_v12.MetadataRequest(
                topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
            ),
        )
        assert name not in {t.name for t in metadata.topics}
    assert_broker_healthy(broker)


# --- bodies that decode badly inside kio -------------------------------------------------------


def _metadata_v12_frame(body: bytes, correlation_id: int = 1) -> bytes:
    header = struct.pack(">hhih", 3, 12, correlation_id, 4) + b"test" + b"\x00"
    return struct.pack(">i", len(header) + len(body)) + header + body


def test_huge_array_length_closes_the_connection_not_the_broker(start_broker):
    broker = start_broker()
    # Metadata v12 whose topics array claims 4294967294 entries and then ends.
    assert_closed_with_one_log_line(broker, _metadata_v12_frame(bytes.fromhex("ffffffff0f")), "undecodable metadata")


def test_unknown_tagged_field_is_ignored(start_broker):
    broker = start_broker()
    # Metadata v12: topics null, allow_auto_topic_creation false, include_topic_authorized_operations
    # false, then one tagged field (tag 99, two bytes) that this version does not define.
    body = b"\x00" + b"\x00" + b"\x00" + b"\x01" + b"\x63" + b"\x02" + b"hi"
    with WireClient(broker.bootstrap_servers) as client:
        client.send_raw(_metadata_v12_frame(body, correlation_id=42))
        frame = client.recv_frame()
        assert struct.unpack_from(">i", frame, 0)[0] == 42
    assert_broker_healthy(broker)
