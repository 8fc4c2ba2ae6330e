"""Fetch long-polls: a waiting consumer is woken by an append, and an empty wait ends on time."""

import json
import threading
import time

import confluent_kafka
import pytest

from .clients import CLIENTS, Record, consume, create_topic, produce

LONG_WAIT_MS = 5000
WAKE_WITHIN_S = 1.0


def long_poll_config(client: str) -> dict[str, object]:
    """Consumer config that parks each empty fetch for LONG_WAIT_MS on the broker."""
    if client == "confluent":
        return {"fetch.wait.max.ms": LONG_WAIT_MS, "fetch.min.bytes": 1}
    return {"fetch_max_wait_ms": LONG_WAIT_MS, "fetch_min_bytes": 1}


@pytest.mark.parametrize("client", CLIENTS)
def test_waiting_consumer_receives_message_produced_later_within_a_second(broker, client):
    topic = f"long-poll-{client}"
    create_topic(broker.bootstrap_servers, topic)
    acknowledged_at: list[float] = []
    producer_failures: list[BaseException] = []

    def produce_later() -> None:
        time.sleep(1.5)  # the consumer has long since sent a fetch that is now parked
        try:
            produce("confluent", broker.bootstrap_servers, topic, [Record(key=b"k", value=b"wake up", partition=0)])
        except BaseException as failure:  # noqa: BLE001 - re-raised in the test's thread
            producer_failures.append(failure)
        acknowledged_at.append(time.monotonic())

    producer = threading.Thread(target=produce_later)
    producer.start()
    try:
        (message,) = consume(client, broker.bootstrap_servers, topic, [0], 1, timeout_s=20, **long_poll_config(client))
        received_at = time.monotonic()
    finally:
        producer.join()
        if producer_failures:
            raise producer_failures[0]

    assert message.value == b"wake up"
    latency_s = received_at - acknowledged_at[0]
    assert latency_s < WAKE_WITHIN_S, f"message reached the consumer {latency_s:.2f} s after it was acknowledged"


def test_fetch_on_empty_topic_returns_after_max_wait_without_error(broker):
    create_topic(broker.bootstrap_servers, "empty")
    statistics: list[dict] = []
    errors: list[confluent_kafka.KafkaError] = []
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "odradek-fetch-wait",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 500,
            "statistics.interval.ms": 1000,
            "stats_cb": lambda raw: statistics.append(json.loads(raw)),
            "error_cb": errors.append,
        }
    )
    try:
        consumer.assign([confluent_kafka.TopicPartition("empty", 0, confluent_kafka.OFFSET_BEGINNING)])
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                assert msg.error() is None, msg.error()
                pytest.fail(f"empty topic returned a message at offset {msg.offset()}")
    finally:
        consumer.close()

    assert errors == []
    assert statistics, "librdkafka sent no statistics"
    brokers = [b for b in statistics[-1]["brokers"].values() if b["nodeid"] >= 0]
    fetches = sum(b["req"].get("Fetch", 0) for b in brokers)
    # ~3 s of fetching with a 500 ms wait: a handful of fetches, each one answered. Far more
    # means the broker answers empty fetches at once instead of waiting.
    assert 2 <= fetches <= 15, f"{fetches} fetch requests in ~3 s with fetch.wait.max.ms=500"


def test_fetch_of_no_partitions_is_answered_at_once(broker):
    """Found by the fuzzer: a Fetch naming no partition with a long max_wait was parked for all of
    it (nothing could ever wake it); Kafka answers it at once."""
    from datetime import timedelta

    from odradek.protocol.schemas import request_class

    from .wire import WireClient

    request = request_class(1, 12)(
        cluster_id=None, replica_id=-1, max_wait=timedelta(seconds=60), min_bytes=1, max_bytes=1 << 20,
        isolation_level=0, session_id=0, session_epoch=-1, topics=(), forgotten_topics_data=(), rack_id="",
    )
    client = WireClient(broker.bootstrap_servers, timeout_s=10)
    started = time.monotonic()
    response = client.request(1, 12, request)
    assert time.monotonic() - started < 2 and response.responses == ()


def test_sigterm_is_not_held_up_by_a_parked_fetch(broker):
    create_topic(broker.bootstrap_servers, "empty")
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "odradek-parked",
            "fetch.wait.max.ms": 4000,
        }
    )
    try:
        consumer.assign([confluent_kafka.TopicPartition("empty", 0, confluent_kafka.OFFSET_BEGINNING)])
        deadline = time.monotonic() + 1.5  # long enough for a fetch to be parked on the broker
        while time.monotonic() < deadline:
            assert consumer.poll(0.1) is None
        started = time.monotonic()
        assert broker.stop() == 0
        stop_s = time.monotonic() - started
    finally:
        consumer.close()
    assert stop_s < 2.0, f"shutdown took {stop_s:.1f} s with one parked fetch"


def test_a_client_gone_while_its_fetch_was_parked_is_forgotten_quietly(broker):
    """Found by the --workers cluster test: a follower killed while its Fetch was parked; the
    answer then went to a closed connection and the broker logged a traceback."""
    import socket
    import struct
    from datetime import timedelta

    from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic

    from .wire import WireClient, encode_request

    create_topic(broker.bootstrap_servers, "parked")
    request = FetchRequest(
        cluster_id=None, replica_id=-1, max_wait=timedelta(seconds=1), min_bytes=1 << 20, max_bytes=1 << 20,
        isolation_level=0, session_id=0, session_epoch=-1, rack_id="", forgotten_topics_data=(),
        topics=(FetchTopic(topic="parked", partitions=(FetchPartition(
            partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1, log_start_offset=-1,
            partition_max_bytes=1 << 20),)),),
    )
    client = WireClient(broker.bootstrap_servers)
    client.send_raw(encode_request(request, client.next_correlation_id(), version=12))
    time.sleep(0.3)  # parked: nothing to read, a megabyte wanted
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()  # a reset, as when the process dies
    time.sleep(1.5)  # the wait ends and the answer finds no one
    produce("confluent", broker.bootstrap_servers, "parked", [Record(key=b"k", value=b"still serving", partition=0)])
    assert "Traceback" not in broker.output()
    assert "unexpected error" not in broker.output()
