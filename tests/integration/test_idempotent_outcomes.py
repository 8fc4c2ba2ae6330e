"""Idempotent-producer outcomes over the wire, including after a broker restart (state loaded from
the producer snapshot written at shutdown, or rebuilt from the log after kill -9).

As in Kafka, a snapshot keeps each producer's last batch only: after a clean restart a retry of
that batch is recognised as a duplicate; the four before it no longer are."""

from __future__ import annotations

import pytest

from integration.test_bad_input import list_offset, new_topic, produce_partition
from integration.wire import WireClient
from odradek.protocol.records import Record, encode_batch

NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59


def idempotent_batch(sequence: int, count: int = 2, epoch: int = 0, producer_id: int = 4242) -> bytes:
    records = [Record(i, 1_700_000_000_000 + i, b"k", b"value-%d" % (sequence + i)) for i in range(count)]
    return encode_batch(records, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


@pytest.mark.parametrize("restart", ["no restart", "clean restart", "kill -9"])
def test_duplicate_batch_gets_its_original_offset(start_broker, restart: str) -> None:
    broker = start_broker()
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client)
        first = produce_partition(client, topic, 0, idempotent_batch(0))
        second = produce_partition(client, topic, 0, idempotent_batch(2))
        assert (first.error_code, first.base_offset) == (NONE, 0)
        assert (second.error_code, second.base_offset) == (NONE, 2)
    if restart == "clean restart":
        broker.stop()
        broker.start()
    elif restart == "kill -9":
        broker.kill()
        broker.start()
    with WireClient(broker.bootstrap_servers) as client:
        retry = produce_partition(client, topic, 0, idempotent_batch(2))
        assert (retry.error_code, retry.base_offset) == (NONE, 2), "a retried batch must not be written twice"
        if restart != "clean restart":
            retry = produce_partition(client, topic, 0, idempotent_batch(0))
            assert (retry.error_code, retry.base_offset) == (NONE, 0), "a retried batch must not be written twice"
        assert list_offset(client, topic).offset == 4
        gap = produce_partition(client, topic, 0, idempotent_batch(7))
        assert gap.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
        next_batch = produce_partition(client, topic, 0, idempotent_batch(4))
        assert (next_batch.error_code, next_batch.base_offset) == (NONE, 4)


def test_fenced_epoch_and_unknown_producer(broker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        topic = new_topic(client)
        assert produce_partition(client, topic, 0, idempotent_batch(0, epoch=3)).error_code == NONE
        assert produce_partition(client, topic, 0, idempotent_batch(2, epoch=2)).error_code == INVALID_PRODUCER_EPOCH
        assert produce_partition(client, topic, 0, idempotent_batch(5, producer_id=99)).error_code == UNKNOWN_PRODUCER_ID
        assert list_offset(client, topic).offset == 2, "refused batches must not be appended"
