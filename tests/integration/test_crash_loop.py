"""Crash loop: heavy acks=all produce, kill -9 at a random moment, restart, verify.

Each round produces small messages as fast as confluent-kafka can into two partitions of a
topic with 256 KiB segments (so kills also land around segment rolls), kills the broker 0.2-1.5 s
after producing starts, restarts it and checks the whole log against what the producer was told:
- every acknowledged message (delivery callback without error) is present exactly once, at
  the offset its acknowledgement reported, and in the order it was sent;
- nothing is present twice, acknowledged or not (retries are off, so each message was sent once);
- offsets are continuous from the log start (0) to the high watermark; librdkafka checks every
  batch's CRC (check.crcs), so a torn or partial batch served after recovery fails the test.
"""

from __future__ import annotations

import random
import threading
import time

import confluent_kafka
import pytest

from .clients import create_topic

ROUNDS = 20
PARTITIONS = 2
KILL_DELAY_S = (0.2, 1.5)
MAX_MESSAGES_PER_ROUND = 80_000
SEGMENT_BYTES = 256 * 1024
VERIFY_TIMEOUT_S = 60.0

pytestmark = pytest.mark.slow


def produce_until_killed(bootstrap: str, topic: str, round_: int, broker, delay_s: float) -> dict[int, list[tuple[bytes, int]]]:
    """Produce until the broker is killed `delay_s` after the first message; the acknowledged
    (value, offset) pairs per partition, in send order."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "retries": 0,
            "linger.ms": 2,
            "batch.num.messages": 500,
            "message.timeout.ms": 10_000,
            "socket.timeout.ms": 2_000,
            "reconnect.backoff.max.ms": 200,
        }
    )
    sent: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    acknowledged: dict[bytes, int] = {}

    def on_delivery(err, msg) -> None:
        if err is None:
            acknowledged[msg.value()] = msg.offset()

    killed = threading.Event()

    def kill_later() -> None:
        time.sleep(delay_s)
        broker.kill()
        killed.set()

    killer = threading.Thread(target=kill_later, daemon=True)
    seq = 0
    killer.start()
    while not killed.is_set() and seq < MAX_MESSAGES_PER_ROUND:
        partition = seq % PARTITIONS
        value = f"r{round_:02d}-{seq:07d}".encode()
        try:
            producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.01)
            continue
        sent[partition].append(value)
        seq += 1
        if seq % 100 == 0:
            producer.poll(0)
    killer.join()
    # Messages still queued were never sent; in-flight ones have an unknown outcome. Neither
    # counts as acknowledged. Delivery reports for everything the broker answered were already
    # received or arrive now.
    producer.poll(0.2)
    producer.purge(in_queue=True, in_flight=True, blocking=False)
    producer.flush(5)
    return {p: [(v, acknowledged[v]) for v in sent[p] if v in acknowledged] for p in range(PARTITIONS)}


def read_partition(bootstrap: str, topic: str, partition: int, start: int = 0) -> list[tuple[int, bytes]]:
    """Every (offset, value) of the partition from `start` to its high watermark."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "crash-loop-verifier",
            "enable.auto.commit": False,
            "check.crcs": True,
            "enable.partition.eof": True,
            "fetch.max.bytes": 8 * 1024 * 1024,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, partition), timeout=10)
        assert low == 0, f"partition {partition}: log start offset {low}, expected 0 (nothing deletes)"
        assert high >= start, f"partition {partition}: high watermark {high} fell below {start}, verified before"
        consumer.assign([confluent_kafka.TopicPartition(topic, partition, start)])
        found: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + VERIFY_TIMEOUT_S
        while high > start and (not found or found[-1][0] < high - 1):
            assert time.monotonic() < deadline, f"partition {partition}: read {len(found)} of {high - start} in time"
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"partition {partition}: consumer error {err}")
                found.append((msg.offset(), msg.value()))
        return found
    finally:
        consumer.close()


def check_log(where: str, log: list[tuple[int, bytes]], start: int, acknowledged: list[tuple[bytes, int]]) -> None:
    """`log` read from offset `start`: continuous, no duplicate, in send order, and holding every
    acknowledged (value, offset) at or above `start` at exactly its offset."""
    offsets = [offset for offset, _ in log]
    assert offsets == list(range(start, start + len(log))), f"{where}: offsets are not continuous from {start}"
    values = [value for _, value in log]
    assert len(set(values)) == len(values), f"{where}: a message is present twice"
    # One producer per round, no retries, values numbered in send order: offset order is send order.
    assert values == sorted(values), f"{where}: messages out of send order"
    at = dict(zip(values, offsets))
    expected = [(v, o) for v, o in acknowledged if o >= start]
    missing = [(v, o) for v, o in expected if v not in at]
    assert not missing, f"{where}: {len(missing)} acknowledged messages lost, first {missing[:3]}"
    moved = [(v, o, at[v]) for v, o in expected if at[v] != o]
    assert not moved, f"{where}: acknowledged messages not at their acknowledged offsets: {moved[:3]}"


def test_acknowledged_records_survive_kill_9_loop(start_broker):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    broker = start_broker(**{"log.segment.bytes": SEGMENT_BYTES})
    topic = "crash-loop"
    create_topic(broker.bootstrap_servers, topic, partitions=PARTITIONS)
    acknowledged: dict[int, list[tuple[bytes, int]]] = {p: [] for p in range(PARTITIONS)}
    # Per partition, the last verified (offset, value): each round re-reads from there, so the
    # anchor proves nothing before it moved, and the end of the test re-reads everything.
    anchors: dict[int, tuple[int, bytes] | None] = {p: None for p in range(PARTITIONS)}
    for round_ in range(ROUNDS):
        delay_s = rng.uniform(*KILL_DELAY_S)
        got = produce_until_killed(broker.bootstrap_servers, topic, round_, broker, delay_s)
        for partition, pairs in got.items():
            acknowledged[partition].extend(pairs)
        broker.start()
        for partition in range(PARTITIONS):
            where = f"round {round_} (seed {seed}, kill after {delay_s:.2f} s), partition {partition}"
            anchor = anchors[partition]
            start = 0 if anchor is None else anchor[0]
            log = read_partition(broker.bootstrap_servers, topic, partition, start)
            if anchor is not None:
                assert log[:1] == [anchor], f"{where}: offset {anchor[0]} changed from {anchor[1]!r} to {log[:1]}"
            check_log(where, log, start, acknowledged[partition])
            if log:
                anchors[partition] = log[-1]
    total = 0
    for partition in range(PARTITIONS):
        log = read_partition(broker.bootstrap_servers, topic, partition)
        check_log(f"after {ROUNDS} rounds (seed {seed}), partition {partition}", log, 0, acknowledged[partition])
        total += len(acknowledged[partition])
    assert total > ROUNDS * 100, f"only {total} messages were acknowledged in {ROUNDS} rounds"
