"""KIP-890 part 1: a transactional batch for a partition that is not in the producer's open
transaction (a zombie's late write, after its transaction was aborted) is refused with
INVALID_TXN_STATE and leaves the log unchanged, instead of opening a transaction no marker would
ever end and blocking read_committed consumers. Sent with odradek's own client, since no real
client sends it on purpose. With transaction version 2 (Produce v12+) the same write adds the
partition to the open transaction instead."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from odradek.client.connection import BrokerConnection
from odradek.protocol.errors import ErrorCode
from odradek.protocol.records import Record, encode_batch

RETRIABLE = {ErrorCode.coordinator_not_available, ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator,
             ErrorCode.concurrent_transactions}


async def _until_answered(send):
    for _ in range(100):
        response = await send()
        if ErrorCode(int(response.error_code)) not in RETRIABLE:
            return response
        await asyncio.sleep(0.1)
    raise AssertionError("the coordinator never answered")


async def _produce(connection, producer_id: int, epoch: int, sequence: int, version: int = 11):
    batch = encode_batch([Record(0, 1_700_000_000_000, None, b"late")], producer_id=producer_id, producer_epoch=epoch,
                         base_sequence=sequence, transactional=True)
    response = await connection.request(0, {
        "transactional_id": "late-writer", "acks": -1, "timeout": timedelta(seconds=5),
        "topic_data": [{"name": "orders", "partition_data": [{"index": 0, "records": batch}]}],
    }, max_version=version, min_version=version)  # v12+ is transaction version 2, where the broker adds the partition itself
    return ErrorCode(int(response.responses[0].partition_responses[0].error_code))


async def _scenario(host: str, port: int) -> tuple[ErrorCode, ErrorCode]:
    connection = await BrokerConnection(host, port).connect(10)
    try:
        await connection.request(10, {"key": "late-writer", "key_type": 1}, max_version=3)  # creates __transaction_state
        init = await _until_answered(lambda: connection.request(22, {
            "transactional_id": "late-writer", "transaction_timeout": timedelta(seconds=60),
            "producer_id": -1, "producer_epoch": -1,
        }))
        producer_id, epoch = init.producer_id, init.producer_epoch
        refused = await _produce(connection, producer_id, epoch, 0)
        added = await connection.request(24, {
            "v3_and_below_transactional_id": "late-writer", "v3_and_below_producer_id": producer_id,
            "v3_and_below_producer_epoch": epoch,
            "v3_and_below_topics": [{"name": "orders", "partitions": [0]}],
        }, max_version=3)
        assert added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == ErrorCode.none
        accepted = await _produce(connection, producer_id, epoch, 0)
        return refused, accepted
    finally:
        await connection.close()


def test_a_transactional_write_outside_the_open_transaction_is_refused(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(30)
    refused, accepted = asyncio.run(_scenario(broker.host, broker.port))
    assert refused == ErrorCode.invalid_txn_state
    assert accepted == ErrorCode.none, "once AddPartitionsToTxn put the partition in the transaction"

    ends = {}
    for isolation in ("read_uncommitted", "read_committed"):
        consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "peek",
                                             "isolation.level": isolation})
        ends[isolation] = consumer.get_watermark_offsets(confluent_kafka.TopicPartition("orders", 0), timeout=10)[1]
        consumer.close()
    assert ends == {"read_uncommitted": 1, "read_committed": 0}, "only the accepted batch is there, still uncommitted"


async def _version_2_scenario(host: str, port: int):
    connection = await BrokerConnection(host, port).connect(10)
    try:
        await connection.request(10, {"key": "late-writer", "key_type": 1}, max_version=3)
        init = await _until_answered(lambda: connection.request(22, {
            "transactional_id": "late-writer", "transaction_timeout": timedelta(seconds=60),
            "producer_id": -1, "producer_epoch": -1,
        }))
        written = await _produce(connection, init.producer_id, init.producer_epoch, 0, version=12)
        ended = await connection.request(26, {
            "transactional_id": "late-writer", "producer_id": init.producer_id,
            "producer_epoch": init.producer_epoch, "committed": True,
        }, min_version=5)
        return init, written, ended
    finally:
        await connection.close()


def test_transaction_version_2_adds_partitions_on_produce_and_bumps_the_epoch_at_the_end(broker):
    """KIP-890 part 2, as the Java client 4.x and franz-go use it once ApiVersions finalizes
    transaction.version 2: no AddPartitionsToTxn (Produce v12 adds the partition), and EndTxn v5
    answers the next epoch."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(30)
    init, written, ended = asyncio.run(_version_2_scenario(broker.host, broker.port))
    assert written == ErrorCode.none
    assert (ended.error_code, ended.producer_id, ended.producer_epoch) == (ErrorCode.none, init.producer_id, init.producer_epoch + 1)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "peek",
                                         "isolation.level": "read_committed"})
    assert consumer.get_watermark_offsets(confluent_kafka.TopicPartition("orders", 0), timeout=10)[1] == 2
    consumer.close()
