"""Transactions on a 3-broker cluster: the transaction coordinator's broker is killed with SIGKILL,
another broker takes over its `__transaction_state` partition, and transactions end cleanly: an
exactly-once application keeps every input exactly once, and a transaction left open by the
crash is aborted (invisible to read_committed, not blocking the partition)."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path

import confluent_kafka

from odradek.coordinator.group_records import partition_for_group
from integration.clients import Record, produce

from .load import wait_for
from .test_replication import create_replicated_topic

WORKER = Path(__file__).resolve().parents[1] / "integration" / "eos_worker.py"
TRANSACTION_STATE_PARTITIONS = 50
OFFSETS_PARTITIONS = 50


def coordinator_of(brokers, transactional_id: str) -> int:
    """The broker leading the transactional id's `__transaction_state` partition."""
    partition = partition_for_group(transactional_id, TRANSACTION_STATE_PARTITIONS)
    return brokers.partition_state("__transaction_state", partition)["leader"]


def group_led_away_from_the_transaction_coordinator(brokers, transactional_id: str) -> str:
    """A consumer group whose coordinator is not on the transactional id's coordinator broker.

    librdkafka 2.10 and later hang in send_offsets_to_transaction, past its timeout, when the
    group coordinator it has cached is a broker that left the cluster's metadata
    (confluentinc/librdkafka#5511, #5456; Apache Kafka triggers it the same way). Killing the
    broker that coordinates both the transaction and the group would test that client bug, not
    the failover of the transaction coordinator, so the group is placed elsewhere. Both internal
    topics are created first: a transactional producer initialises the id (the application's own
    start-up then bumps its epoch, as a restart does), and a group's offsets are looked up.
    """
    bootstrap = brokers.bootstrap_servers
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(60)
    del producer
    probe = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-probe"})
    try:
        probe.committed([confluent_kafka.TopicPartition("input", 0)], timeout=60)
    finally:
        probe.close()
    avoided = coordinator_of(brokers, transactional_id)
    for candidate in (f"eos-{n}" for n in range(100)):
        partition = partition_for_group(candidate, OFFSETS_PARTITIONS)
        if brokers.partition_state("__consumer_offsets", partition)["leader"] != avoided:
            return candidate
    raise AssertionError(f"every group tried is coordinated by broker {avoided}")


def _wait(process: subprocess.Popen, deadline: float) -> int | None:
    """The process's exit code, or None if it is still running at the deadline."""
    try:
        return process.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        return None


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "peek"})
    try:
        return sum(consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        consumer.close()


def read_committed(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 60) -> list[bytes]:
    """Every record a read_committed consumer gets, assigning the partitions itself (no group)."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(partitions)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
        elif message is None and len(values) >= expected:
            break
    consumer.close()
    return values


def test_exactly_once_survives_the_loss_of_the_transaction_coordinator(cluster, tmp_path):
    brokers = cluster(3)
    bootstrap = brokers.bootstrap_servers
    create_replicated_topic(bootstrap, "input", 3)
    create_replicated_topic(bootstrap, "output", 3, **{"min.insync.replicas": "2"})
    inputs = [Record(f"k{i}".encode(), f"v{i:05d}".encode(), partition=i % 3) for i in range(3000)]
    produce("confluent", bootstrap, "input", inputs, acks="all", idempotent=True)

    group = group_led_away_from_the_transaction_coordinator(brokers, "eos-app")
    command = [sys.executable, str(WORKER), bootstrap, "input", "output", group, "eos-app", str(len(inputs))]
    # The worker's output goes to a file, shown if it fails (a pipe nobody reads would block it
    # once full).
    worker_log = tmp_path / "eos-worker.log"
    output = worker_log.open("ab")
    worker = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: high_watermarks(bootstrap, "output", 3) > 300, 60, "the application committed some transactions")
        victim = coordinator_of(brokers, "eos-app")
        brokers.broker(victim).kill()
        survivors = ",".join(b.bootstrap_servers for n, b in brokers.brokers.items() if n != victim)
        brokers.wait_for(lambda: coordinator_of(brokers, "eos-app") != victim, 30,
                         "another broker leads the transaction coordinator's partition")
        deadline = time.monotonic() + 240
        while (returncode := _wait(worker, deadline)) != 0:
            # librdkafka may give up on a transaction during the failover (a fatal error): the
            # application restarts, as it would in production, from its committed offsets.
            assert returncode is not None and time.monotonic() < deadline, (
                "the application never finished; it said:\n" + worker_log.read_text(errors="replace")[-5000:])
            worker = subprocess.Popen([*command[:2], survivors, *command[3:]], stdout=output, stderr=subprocess.STDOUT)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        output.close()

    values = read_committed(survivors, "output", 3, len(inputs))
    counts = collections.Counter(values)
    assert set(counts) == {record.value.upper() for record in inputs}
    assert max(counts.values()) == 1, "a record was written twice"
    brokers.broker(victim).start()


def test_a_transaction_left_open_by_a_crashed_coordinator_is_aborted(cluster):
    brokers = cluster(3)
    bootstrap = brokers.bootstrap_servers
    create_replicated_topic(bootstrap, "orders", 1, **{"min.insync.replicas": "2"})

    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": "orders-app"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("orders", value=b"left open")
    producer.flush(30)
    victim = coordinator_of(brokers, "orders-app")
    brokers.broker(victim).kill()
    survivors = ",".join(b.bootstrap_servers for n, b in brokers.brokers.items() if n != victim)

    # The application restarts: its new producer fences the old one, whose transaction is aborted
    # by the new coordinator (found in __transaction_state, Ongoing).
    successor = confluent_kafka.Producer({"bootstrap.servers": survivors, "transactional.id": "orders-app"})
    successor.init_transactions(60)
    successor.begin_transaction()
    successor.produce("orders", value=b"committed")
    successor.commit_transaction(60)

    assert read_committed(survivors, "orders", 1, 1) == [b"committed"]
    brokers.broker(victim).start()
