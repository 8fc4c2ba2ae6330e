"""Until transactions are built, a transactional producer fails at once, with a message that
says why, in every client (it used to retry for 60-120 s, then fail with "Unexpected error").
An idempotent producer on the same broker is unaffected."""

from __future__ import annotations

import asyncio
import time

import aiokafka
import aiokafka.errors
import confluent_kafka
import kafka
import kafka.errors
import pytest

from .clients import Record, produce

FAIL_FAST_S = 10


def test_librdkafka_init_transactions_fails_at_once_and_says_why(broker):
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers, "transactional.id": "refused-txn"})
    started = time.monotonic()
    with pytest.raises(confluent_kafka.KafkaException) as refused:
        producer.init_transactions(60)
    assert time.monotonic() - started < FAIL_FAST_S
    error = refused.value.args[0]
    assert error.fatal() and not error.retriable()
    assert "transactions are not supported by odradek" in error.str()
    assert "refused-txn" in broker.output()


def test_kafka_python_init_transactions_fails_at_once(broker):
    producer = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap_servers, transactional_id="refused-txn-kp")
    started = time.monotonic()
    try:
        with pytest.raises(kafka.errors.TransactionalIdAuthorizationFailedError):
            producer.init_transactions()
    finally:
        producer.close(timeout=5)
    assert time.monotonic() - started < FAIL_FAST_S


def test_aiokafka_transactional_producer_fails_at_once(broker):
    async def run() -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, transactional_id="refused-txn-aio")
        try:
            await producer.start()
            async with producer.transaction():
                await producer.send_and_wait("never-written", b"x")
        finally:
            await producer.stop()

    started = time.monotonic()
    with pytest.raises(aiokafka.errors.TransactionalIdAuthorizationFailed):
        asyncio.run(asyncio.wait_for(run(), 30))
    assert time.monotonic() - started < FAIL_FAST_S


def test_idempotent_producer_still_works_beside_a_refused_transactional_one(broker):
    with pytest.raises(confluent_kafka.KafkaException):
        confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers, "transactional.id": "t"}).init_transactions(30)
    produce("confluent", broker.bootstrap_servers, "idempotent-beside-txn", [Record(key=None, value=b"once")], idempotent=True, acks="all")
