"""The soak (issue 15): a long mixed workload against one broker process, then proof that nothing
was lost and that the broker's memory and descriptors stayed flat.

    .venv/bin/python tests/soak/workload.py --seconds 10800 --report-dir DIR   # or: make soak

It starts its own broker (`python -m odradek server` through conftest.BrokerProcess) with
BROKER_SETTINGS, which make retention and the cleaner run every second. For the given time:

- verified producers, one per codec (confluent-kafka: none, gzip, snappy, lz4, zstd; and one
  kafka-python gzip producer), idempotent, acks=all, keyed, at a steady rate into the verified
  topics (no retention); each acknowledgement is remembered in a `ProducerLedger`;
- a consumer group on the verified topics; every MEMBER_CHURN_S a new member joins and the
  oldest leaves (a rebalance each), offsets auto-committed; afterwards the group must catch up;
- a churn producer overwriting the keys of a compacted topic (with tombstones) and appending to
  a topic with a retention of seconds, so the cleaner and retention always have work;
- an admin loop: list topics, describe configs, describe the group, list its offsets, create a
  topic, produce a little to it, delete it;
- a sampler (sampler.py) once a second: broker RSS, open descriptors, probe round trip.

Then: every verified partition is read from the beginning by a fresh consumer and every
acknowledged record must be there exactly once, at its acknowledged offset, with its key and
value; the group must have seen every acknowledged record; the compacted topic must hold the
last acknowledged value of every key; retention must have moved the log start offsets; memory
and descriptors must be flat after warm-up (sampler.judge_flatness); the broker's log must hold
no Traceback and no ERROR line, and the broker must exit with 0 on SIGTERM. The report
(report.md, soak.png, broker.log) goes to the report dir; the CLI exits with 1 on any problem.
The CI slice is tests/soak/test_soak.py.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
sys.path[:0] = [p for p in (str(TESTS), str(REPO)) if p not in sys.path]

import confluent_kafka  # noqa: E402
from confluent_kafka import ConsumerGroupTopicPartitions  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType  # noqa: E402

from conftest import BrokerProcess  # noqa: E402
from soak.report import write_report  # noqa: E402
from soak.sampler import MiB, Flatness, Sample, Sampler, judge_flatness  # noqa: E402

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
KAFKA_PYTHON_CODEC = "gzip"
VERIFIED_TOPICS = ("soak-verified-a", "soak-verified-b")
VERIFIED_PARTITIONS = 3
COMPACTED_TOPIC = "soak-compacted"
RETENTION_TOPIC = "soak-retention"
CHURN_PARTITIONS = 2
GROUP = "soak-group"

# Broker-wide: retention checks and cleaner passes every second instead of every 5 min / 15 s,
# deleted segment files gone after a second (not a minute), and an offsets topic whose segments
# roll often enough for its own compaction to matter in a run of hours.
BROKER_SETTINGS = {
    "log.retention.check.interval.ms": "1000",
    "log.cleaner.backoff.ms": "1000",
    "log.segment.delete.delay.ms": "1000",
    "offsets.topic.segment.bytes": "262144",
}
COMPACTED_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "2000",
    "segment.bytes": "65536",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "2000",
}
RETENTION_MS = 3000
RETENTION_CONFIG = {
    "cleanup.policy": "delete",
    "retention.ms": str(RETENTION_MS),
    "segment.ms": "1000",
    "segment.bytes": "65536",
}

# Rates are per producer and steady, so a run's load does not depend on the machine's speed;
# ~1,100 records a second in all leaves a shared two-core machine room for the broker.
VERIFIED_RATE_PER_S = 150
KAFKA_PYTHON_RATE_PER_S = 100
CHURN_RATE_PER_S = 150
COMPACTED_KEYS = 400
TOMBSTONE_EVERY = 10
VERIFIED_KEYS = 1000
TICK_S = 0.05
MEMBERS = 3
MEMBER_CHURN_S = 5.0
ADMIN_INTERVAL_S = 1.0
ADMIN_TEMP_RECORDS = 20
REQUEST_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_MS = 120_000
FLUSH_TIMEOUT_S = DELIVERY_TIMEOUT_MS / 1000 + 30
CATCH_UP_TIMEOUT_S = 60.0
READ_BACK_TIMEOUT_S = 120.0  # plus a second per READ_BACK_RECORDS_PER_S records expected
READ_BACK_RECORDS_PER_S = 10_000
KEPT_FAILURES = 100
KEPT_EXAMPLES = 5

# The flatness rule's slack (sampler.judge_flatness): relative, absolute. Measured: after
# warm-up the broker's RSS (~52 MiB) moves by under 1 MiB a minute and its descriptors (~260)
# by +-15 as clients and segments come and go. 16 MiB covers a few 1 MiB-per-partition fetch
# responses in flight and a step of the allocator; 10% covers caches bounded by a count that a
# long run fills slowly (fetch sessions, producer ids). For descriptors 16 is about one
# member's and one admin cycle's connections plus a few segments being rolled and deleted.
RSS_SLACK = (0.10, 16 * MiB)
FDS_SLACK = (0.10, 16)

FILLER = b"odradek soak record, compressible but not trivially so; " * 8


# --- shared state --------------------------------------------------------------------------------


class Soak:
    """What the workload threads share: the broker's address, the stop signal, the failures.

    `fail` is thread-safe; it keeps the first KEPT_FAILURES messages and counts the rest.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.failure_count = 0
        self.client_errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def fail(self, message: str) -> None:
        with self._lock:
            self.failure_count += 1
            if len(self.failures) < KEPT_FAILURES:
                self.failures.append(message)

    def client_error(self, who: str, error: object) -> None:
        """A non-fatal error a client reported (and retried): counted for the report, not a failure."""
        with self._lock:
            key = f"{who}: {error}"
            self.client_errors[key] = self.client_errors.get(key, 0) + 1

    def on_client_error(self, who: str) -> Callable[[confluent_kafka.KafkaError], None]:
        """An error_cb for confluent-kafka: fatal errors are failures, the rest are counted."""

        def error_cb(error: confluent_kafka.KafkaError) -> None:
            if error.fatal():
                self.fail(f"{who}: fatal client error {error}")
            else:
                self.client_error(who, error)

        return error_cb


class Worker(threading.Thread):
    """A workload thread: `work()` until the soak's stop. An exception is recorded as a failure
    and ends the workload early (the checks still run), rather than dying unnoticed."""

    def __init__(self, soak: Soak, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.soak = soak

    def run(self) -> None:
        try:
            self.work()
        except Exception as error:  # noqa: BLE001 - reported with the soak's other failures
            self.soak.fail(f"{self.name}: {error!r}")
            self.soak.stop.set()

    def work(self) -> None:
        raise NotImplementedError


class Pacer:
    """A steady rate: each `due()` waits one tick and says how many records are due by now.

    After a stall (a slow broker, a paused machine) at most one second's worth is due at once:
    the soak keeps a steady load rather than catching up in a burst.
    """

    def __init__(self, rate_per_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.started = time.monotonic()
        self.sent = 0

    def due(self, stop: threading.Event) -> int:
        stop.wait(TICK_S)
        target = int((time.monotonic() - self.started) * self.rate_per_s)
        self.sent = max(self.sent, target - int(self.rate_per_s))
        count, self.sent = target - self.sent, target
        return count


# --- verified records ----------------------------------------------------------------------------


def verified_record(producer: int, seq: int) -> tuple[str, bytes, bytes]:
    """Record `seq` of verified producer `producer`: (topic, key, value), a pure function."""
    topic = VERIFIED_TOPICS[seq % len(VERIFIED_TOPICS)]
    key = b"key-%d" % (seq % VERIFIED_KEYS)
    value = b"%d|%d|" % (producer, seq) + FILLER[: (seq * 7919) % len(FILLER)]
    return topic, key, value


class ProducerLedger:
    """Where one verified producer's acknowledged records landed, and who read them back.

    Record `seq` is a pure function of (producer, seq) (`verified_record`), so the ledger keeps
    11 bytes a record instead of the record: its partition and offset (-1 until acknowledged)
    and how often the group and the final read saw it (saturating at 255). A three-hour run of
    ~10 M records fits in ~110 MB. One thread appends (the producing one); an entry's partition
    and offset are written once, by the client's delivery callback; the group's members only set
    bytes of `group_seen`.
    """

    def __init__(self, index: int, name: str) -> None:
        self.index = index
        self.name = name
        self.partitions = array("b")
        self.offsets = array("q")
        self.group_seen = bytearray()
        self.final_seen = bytearray()
        self.acknowledged = 0

    @property
    def sent(self) -> int:
        return len(self.offsets)

    def next_seq(self) -> int:
        self.partitions.append(-1)
        self.offsets.append(-1)
        self.group_seen.append(0)
        self.final_seen.append(0)
        return len(self.offsets) - 1

    def acknowledge(self, seq: int, partition: int, offset: int) -> None:
        self.partitions[seq] = partition
        self.offsets[seq] = offset
        self.acknowledged += 1


class Ledgers:
    """All verified producers' ledgers, and the check that a consumed record is one of theirs."""

    def __init__(self, names: Iterable[str]) -> None:
        self.by_index = [ProducerLedger(i, name) for i, name in enumerate(names)]

    def locate(self, topic: str, key: bytes | None, value: bytes | None) -> tuple[ProducerLedger, int] | None:
        """The ledger and seq of a consumed record; None unless topic, key and value are exactly
        what `verified_record` makes for the producer and seq its value names."""
        try:
            producer, seq = (int(part) for part in (value or b"").split(b"|", 2)[:2])
            ledger = self.by_index[producer]
        except (ValueError, IndexError):
            return None
        if seq >= ledger.sent or verified_record(producer, seq) != (topic, key, value):
            return None
        return ledger, seq


# --- producers -----------------------------------------------------------------------------------


class ConfluentVerifiedProducer(Worker):
    """One confluent-kafka producer with one codec, writing verified records at a steady rate."""

    def __init__(self, soak: Soak, ledger: ProducerLedger, codec: str) -> None:
        super().__init__(soak, f"producer {ledger.name}")
        self.ledger = ledger
        self.codec = codec

    def work(self) -> None:
        producer = confluent_kafka.Producer({
            "bootstrap.servers": self.soak.bootstrap,
            "client.id": f"soak-{self.ledger.name.replace('/', '-')}",
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": self.codec,
            "linger.ms": 5,
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            "error_cb": self.soak.on_client_error(self.name),
        })
        pacer = Pacer(VERIFIED_RATE_PER_S)
        while not self.soak.stop.is_set():
            for _ in range(pacer.due(self.soak.stop)):
                seq = self.ledger.next_seq()
                topic, key, value = verified_record(self.ledger.index, seq)
                produce_patiently(producer, topic, key, value, self._delivered)
            producer.poll(0)
        remaining = producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            self.soak.fail(f"{self.name}: {remaining} records still unacknowledged {FLUSH_TIMEOUT_S:.0f} s after the stop")

    def _delivered(self, error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        seq = int(message.value().split(b"|", 2)[1])
        if error is not None:
            self.soak.fail(f"{self.name}: record {seq} not delivered: {error}")
        else:
            self.ledger.acknowledge(seq, message.partition(), message.offset())


def produce_patiently(producer: confluent_kafka.Producer, topic: str, key: bytes | None, value: bytes | None,
                      on_delivery: Callable) -> None:
    """produce(), waiting for room when librdkafka's queue is full (a stalled broker)."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.1)


class KafkaPythonVerifiedProducer(Worker):
    """A second client implementation: kafka-python's idempotent producer, writing verified records."""

    def __init__(self, soak: Soak, ledger: ProducerLedger, codec: str) -> None:
        super().__init__(soak, f"producer {ledger.name}")
        self.ledger = ledger
        self.codec = codec

    def work(self) -> None:
        import kafka

        producer = kafka.KafkaProducer(
            bootstrap_servers=self.soak.bootstrap,
            client_id=f"soak-{self.ledger.name.replace('/', '-')}",
            enable_idempotence=True,
            acks="all",
            compression_type=self.codec,
            linger_ms=5,
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            max_block_ms=DELIVERY_TIMEOUT_MS,
        )
        try:
            pacer = Pacer(KAFKA_PYTHON_RATE_PER_S)
            while not self.soak.stop.is_set():
                for _ in range(pacer.due(self.soak.stop)):
                    seq = self.ledger.next_seq()
                    topic, key, value = verified_record(self.ledger.index, seq)
                    future = producer.send(topic, key=key, value=value)
                    future.add_callback(self._delivered, seq).add_errback(self._failed, seq)
            producer.flush(timeout=FLUSH_TIMEOUT_S)
        finally:
            producer.close(timeout=10)

    def _delivered(self, seq: int, metadata) -> None:
        self.ledger.acknowledge(seq, metadata.partition, metadata.offset)

    def _failed(self, seq: int, error: BaseException) -> None:
        self.soak.fail(f"{self.name}: record {seq} not delivered: {error!r}")


# --- the consumer group --------------------------------------------------------------------------


class GroupMember(Worker):
    """One confluent-kafka consumer of the group, on its own thread until told to leave.

    Offsets are auto-committed every second and on close. Every record it gets must be a
    verified record (else a failure) and is marked as seen by the group.
    """

    def __init__(self, soak: Soak, ledgers: Ledgers, number: int) -> None:
        super().__init__(soak, f"group member {number}")
        self.ledgers = ledgers
        self.number = number
        self.leave = threading.Event()
        self.consumed = 0
        self.assignments = 0

    def work(self) -> None:
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": self.soak.bootstrap,
            "group.id": GROUP,
            "client.id": f"soak-member-{self.number}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "error_cb": self.soak.on_client_error(self.name),
        })
        consumer.subscribe(list(VERIFIED_TOPICS), on_assign=self._assigned)
        try:
            while not self.leave.is_set():
                for message in consumer.consume(num_messages=500, timeout=0.2):
                    self._note(message)
        finally:
            consumer.close()

    def _assigned(self, consumer: confluent_kafka.Consumer, partitions: list) -> None:
        self.assignments += 1

    def _note(self, message: confluent_kafka.Message) -> None:
        if message.error() is not None:
            if message.error().fatal():
                self.soak.fail(f"{self.name}: fatal consumer error {message.error()}")
            else:
                self.soak.client_error(self.name, message.error())
            return
        found = self.ledgers.locate(message.topic(), message.key(), message.value())
        if found is None:
            self.soak.fail(f"{self.name}: not a verified record at {message.topic()}-{message.partition()} "
                           f"offset {message.offset()}: key {message.key()!r}, value {message.value()[:40]!r}")
            return
        ledger, seq = found
        ledger.group_seen[seq] = 1
        self.consumed += 1


class Group(Worker):
    """The soak's consumer group: MEMBERS members; every MEMBER_CHURN_S a new member joins and
    then the oldest leaves, until the stop. `catch_up` then waits for the committed offsets to
    reach the high watermarks and closes the remaining members."""

    def __init__(self, soak: Soak, ledgers: Ledgers) -> None:
        super().__init__(soak, "group churn")
        self.ledgers = ledgers
        self.members: list[GroupMember] = []
        self.closed: list[GroupMember] = []
        self.started = 0

    def work(self) -> None:
        for _ in range(MEMBERS):
            self._start_member()
        while not self.soak.stop.wait(MEMBER_CHURN_S):
            self._start_member()
            self._close(self.members[0])

    def _start_member(self) -> None:
        self.started += 1
        member = GroupMember(self.soak, self.ledgers, self.started)
        self.members.append(member)
        member.start()

    def _close(self, member: GroupMember) -> None:
        member.leave.set()
        member.join(REQUEST_TIMEOUT_S)
        if member.is_alive():
            self.soak.fail(f"{member.name} did not close within {REQUEST_TIMEOUT_S:.0f} s")
        self.members.remove(member)
        self.closed.append(member)

    def catch_up(self, timeout_s: float) -> float | None:
        """Seconds until the group's committed offsets reached the verified partitions' high
        watermarks (None if they did not within `timeout_s`); then every member leaves."""
        started = time.monotonic()
        admin = AdminClient({"bootstrap.servers": self.soak.bootstrap})
        watermarks = confluent_kafka.Consumer({"bootstrap.servers": self.soak.bootstrap, "group.id": "soak-watermarks"})
        caught_up_after = None
        try:
            ends = {(t, p): watermarks.get_watermark_offsets(confluent_kafka.TopicPartition(t, p), REQUEST_TIMEOUT_S)[1]
                    for t in VERIFIED_TOPICS for p in range(VERIFIED_PARTITIONS)}
            while time.monotonic() - started < timeout_s:
                if committed_offsets(admin, GROUP) == ends:
                    caught_up_after = time.monotonic() - started
                    break
                time.sleep(0.5)
        finally:
            watermarks.close()
            for member in list(self.members):
                self._close(member)
        return caught_up_after

    @property
    def all_members(self) -> list[GroupMember]:
        return self.closed + self.members


def committed_offsets(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=REQUEST_TIMEOUT_S)
    partitions = result[group].result(REQUEST_TIMEOUT_S).topic_partitions
    return {(tp.topic, tp.partition): tp.offset for tp in partitions}


# --- churn: compaction and retention -------------------------------------------------------------


class ChurnWriter(Worker):
    """Keeps the cleaner and retention busy: overwrites COMPACTED_KEYS keys of the compacted
    topic (every TOMBSTONE_EVERY-th write a tombstone) and appends unkeyed records to the
    retention topic, CHURN_RATE_PER_S each. Remembers the last acknowledged value of every key,
    by offset (callbacks of different partitions arrive in any order)."""

    def __init__(self, soak: Soak) -> None:
        super().__init__(soak, "churn writer")
        self.last_acked: dict[bytes, tuple[int, bytes | None]] = {}
        self.compacted_acknowledged = 0
        self.tombstones = 0
        self.retention_acknowledged = 0

    def work(self) -> None:
        producer = confluent_kafka.Producer({
            "bootstrap.servers": self.soak.bootstrap,
            "client.id": "soak-churn",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 5,
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            "error_cb": self.soak.on_client_error(self.name),
        })
        rng = random.Random(15)
        pacer = Pacer(CHURN_RATE_PER_S)
        written = 0
        while not self.soak.stop.is_set():
            for _ in range(pacer.due(self.soak.stop)):
                written += 1
                key = b"compacted-%d" % rng.randrange(COMPACTED_KEYS)
                value = None if written % TOMBSTONE_EVERY == 0 else b"%s=%d|" % (key, written) + FILLER[: written % 200]
                produce_patiently(producer, COMPACTED_TOPIC, key, value, self._compacted_delivered)
                produce_patiently(producer, RETENTION_TOPIC, None, b"r%d|" % written + FILLER, self._retention_delivered)
            producer.poll(0)
        remaining = producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            self.soak.fail(f"{self.name}: {remaining} records still unacknowledged {FLUSH_TIMEOUT_S:.0f} s after the stop")

    def _compacted_delivered(self, error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        if error is not None:
            self.soak.fail(f"{self.name}: {COMPACTED_TOPIC} record not delivered: {error}")
            return
        self.compacted_acknowledged += 1
        self.tombstones += message.value() is None
        previous = self.last_acked.get(message.key())
        if previous is None or previous[0] < message.offset():
            self.last_acked[message.key()] = (message.offset(), message.value())

    def _retention_delivered(self, error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        if error is not None:
            self.soak.fail(f"{self.name}: {RETENTION_TOPIC} record not delivered: {error}")
        else:
            self.retention_acknowledged += 1


# --- admin ---------------------------------------------------------------------------------------


class AdminLoop(Worker):
    """Admin calls in a loop, as operators' tools make them, plus a short-lived topic per cycle:
    created, written a little by a fresh producer (a new connection each time), deleted."""

    def __init__(self, soak: Soak) -> None:
        super().__init__(soak, "admin loop")
        self.calls = 0
        self.topics_created = 0
        self.topics_deleted = 0
        self.records = 0

    def work(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.soak.bootstrap, "error_cb": self.soak.on_client_error(self.name)})
        cycle = 0
        while not self.soak.stop.wait(ADMIN_INTERVAL_S):
            cycle += 1
            self._inspect(admin)
            self._temporary_topic(admin, f"soak-temp-{cycle}", CODECS[cycle % len(CODECS)])

    def _inspect(self, admin: AdminClient) -> None:
        admin.list_topics(timeout=REQUEST_TIMEOUT_S)
        resource = ConfigResource(ResourceType.TOPIC, COMPACTED_TOPIC)
        configs = admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource].result(REQUEST_TIMEOUT_S)
        if configs["cleanup.policy"].value != "compact":
            self.soak.fail(f"{self.name}: {COMPACTED_TOPIC} has cleanup.policy={configs['cleanup.policy'].value}")
        admin.describe_consumer_groups([GROUP], request_timeout=REQUEST_TIMEOUT_S)[GROUP].result(REQUEST_TIMEOUT_S)
        committed_offsets(admin, GROUP)
        self.calls += 4

    def _temporary_topic(self, admin: AdminClient, topic: str, codec: str) -> None:
        futures = admin.create_topics([NewTopic(topic, 2, 1)], operation_timeout=REQUEST_TIMEOUT_S,
                                      request_timeout=REQUEST_TIMEOUT_S)
        futures[topic].result(REQUEST_TIMEOUT_S)
        self.topics_created += 1
        self.calls += 1
        producer = confluent_kafka.Producer({
            "bootstrap.servers": self.soak.bootstrap,
            "client.id": "soak-admin-producer",
            "acks": "all",
            "compression.type": codec,
            "message.timeout.ms": int(REQUEST_TIMEOUT_S * 1000),
        })
        failed: list[str] = []

        def delivered(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
            if error is not None:
                failed.append(str(error))

        for n in range(ADMIN_TEMP_RECORDS):
            producer.produce(topic, key=b"%d" % n, value=b"temporary %d" % n, on_delivery=delivered)
        remaining = producer.flush(REQUEST_TIMEOUT_S)
        if remaining or failed:
            self.soak.fail(f"{self.name}: {topic}: {remaining} unacknowledged, failures {failed[:3]}")
        self.records += ADMIN_TEMP_RECORDS - remaining - len(failed)
        futures = admin.delete_topics([topic], operation_timeout=REQUEST_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S)
        futures[topic].result(REQUEST_TIMEOUT_S)
        self.topics_deleted += 1
        self.calls += 1


# --- verification --------------------------------------------------------------------------------


def read_from_beginning(bootstrap: str, topics: dict[str, int], on_message: Callable[[confluent_kafka.Message], None],
                        timeout_s: float = READ_BACK_TIMEOUT_S) -> None:
    """Every record of the given topics' partitions ({topic: partitions}) as it is now, through a
    fresh consumer with manual assignment; each partition is done at its end-of-partition event."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "soak-read-back",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    pending = {(t, p) for t, count in topics.items() for p in range(count)}
    try:
        consumer.assign([confluent_kafka.TopicPartition(t, p, confluent_kafka.OFFSET_BEGINNING) for t, p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"reading back: {sorted(pending)} not read to their end in {timeout_s:.0f} s")
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                error = message.error()
                if error is None:
                    on_message(message)
                elif error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    pending.discard((message.topic(), message.partition()))
                else:
                    raise AssertionError(f"reading back {message.topic()}-{message.partition()}: {error}")
    finally:
        consumer.close()


@dataclass
class VerifiedCheck:
    """The final read of the verified topics against the ledgers."""

    read: int = 0
    lost: int = 0
    duplicated: int = 0
    misplaced: int = 0
    corrupt: int = 0
    unacknowledged: int = 0
    group_missed: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def example(self, kind: str, text: str) -> None:
        kept = self.examples.setdefault(kind, [])
        if len(kept) < KEPT_EXAMPLES:
            kept.append(text)


def check_verified(bootstrap: str, ledgers: Ledgers) -> VerifiedCheck:
    """Every acknowledged record exactly once, at its offset, with its key and value; and
    whether the group saw each (at least once)."""
    check = VerifiedCheck()

    def note(message: confluent_kafka.Message) -> None:
        check.read += 1
        where = f"{message.topic()}-{message.partition()}@{message.offset()}"
        found = ledgers.locate(message.topic(), message.key(), message.value())
        if found is None:
            check.corrupt += 1
            check.example("corrupt", f"{where}: key {message.key()!r}, value {(message.value() or b'')[:40]!r}")
            return
        ledger, seq = found
        ledger.final_seen[seq] = min(255, ledger.final_seen[seq] + 1)
        if ledger.offsets[seq] < 0:
            check.unacknowledged += 1
            check.example("unacknowledged", f"{where}: {ledger.name} record {seq}")
        elif (ledger.partitions[seq], ledger.offsets[seq]) != (message.partition(), message.offset()):
            check.misplaced += 1
            check.example("misplaced", f"{where}: {ledger.name} record {seq} was acknowledged at "
                                       f"partition {ledger.partitions[seq]} offset {ledger.offsets[seq]}")

    expected = sum(ledger.acknowledged for ledger in ledgers.by_index)
    read_from_beginning(bootstrap, {t: VERIFIED_PARTITIONS for t in VERIFIED_TOPICS}, note,
                        READ_BACK_TIMEOUT_S + expected / READ_BACK_RECORDS_PER_S)
    for ledger in ledgers.by_index:
        for seq, (offset, final, group) in enumerate(zip(ledger.offsets, ledger.final_seen, ledger.group_seen)):
            if offset < 0:
                continue
            described = f"{ledger.name} record {seq} (partition {ledger.partitions[seq]} offset {offset})"
            if final == 0:
                check.lost += 1
                check.example("lost", described)
            elif final > 1:
                check.duplicated += 1
                check.example("duplicated", f"{described}: read {final} times")
            if not group:
                check.group_missed += 1
                check.example("group_missed", described)
    return check


@dataclass
class CompactedOutcome:
    topic: str
    acknowledged: int
    keys: int
    tombstones: int
    read: int
    violations: list[str]


def check_compacted(bootstrap: str, writer: ChurnWriter) -> CompactedOutcome:
    """Compaction's promise: reading from the beginning, the last record of every key is the
    last one acknowledged for it (or, for a tombstone, nothing or the tombstone)."""
    last_read: dict[bytes, bytes | None] = {}
    read = 0

    def note(message: confluent_kafka.Message) -> None:
        nonlocal read
        read += 1
        last_read[message.key()] = message.value()

    read_from_beginning(bootstrap, {COMPACTED_TOPIC: CHURN_PARTITIONS}, note)
    violations = []
    for key, (offset, value) in sorted(writer.last_acked.items()):
        seen = last_read.pop(key, None)
        if seen != value:
            violations.append(f"{key!r}: last acknowledged {value!r} at offset {offset}, last read {seen!r}")
    violations += [f"{key!r}: read {value!r}, never acknowledged" for key, value in last_read.items()]
    return CompactedOutcome(COMPACTED_TOPIC, writer.compacted_acknowledged, len(writer.last_acked),
                            writer.tombstones, read, violations)


@dataclass
class RetentionOutcome:
    topic: str
    retention_ms: int
    acknowledged: int
    log_start_offsets: dict[int, int]
    high_watermarks: dict[int, int]


def check_retention(bootstrap: str, writer: ChurnWriter) -> RetentionOutcome:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-watermarks"})
    try:
        marks = {p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(RETENTION_TOPIC, p), REQUEST_TIMEOUT_S)
                 for p in range(CHURN_PARTITIONS)}
    finally:
        consumer.close()
    return RetentionOutcome(RETENTION_TOPIC, RETENTION_MS, writer.retention_acknowledged,
                            {p: low for p, (low, _) in marks.items()}, {p: high for p, (_, high) in marks.items()})


def broker_log_problems(path: Path, context_lines: int = 20, kept: int = 5) -> tuple[list[str], int]:
    """The broker log's Traceback and ERROR lines (the first `kept` with the lines after them),
    and how many WARNING lines it has."""
    lines = path.read_text(errors="replace").splitlines()
    problems, warnings = [], 0
    for number, line in enumerate(lines):
        if " WARNING " in line:
            warnings += 1
        if "Traceback" in line or " ERROR " in line:
            if len(problems) < kept:
                problems.append("\n".join(lines[number : number + context_lines]))
            else:
                problems.append(line)
    return problems, warnings


# --- the run -------------------------------------------------------------------------------------


@dataclass
class GroupOutcome:
    name: str
    member_churn_s: float
    members_started: int
    members_closed: int
    assignments: int
    consumed: int
    missed: int
    caught_up: bool
    catch_up_s: float


@dataclass
class AdminOutcome:
    calls: int
    topics_created: int
    topics_deleted: int
    records: int


@dataclass
class SoakResult:
    """Everything a soak measured and checked; `problems()` lists what failed, in sentences."""

    report_dir: Path
    started_at: str
    commit: str
    python: str
    seconds_requested: float
    workload_s: float
    total_s: float
    stopped_early: str
    broker_settings: dict[str, str]
    verified_topics: tuple[str, ...]
    sent: dict[str, int]
    acknowledged: dict[str, int]
    verified: VerifiedCheck
    group: GroupOutcome
    compacted: CompactedOutcome
    retention: RetentionOutcome
    admin: AdminOutcome
    samples: list[Sample]
    rss: Flatness
    fds: Flatness
    rss_slack: tuple[float, float]
    fds_slack: tuple[float, float]
    failures: list[str]
    failure_count: int
    client_errors: dict[str, int]
    broker_log_problems: list[str]
    broker_log_warnings: int
    broker_exit_code: int | None

    def problems(self) -> list[str]:
        v = self.verified
        checks = [
            (self.failure_count == 0, f"{self.failure_count} workload failures, e.g. {self.failures[:3]}"),
            (v.lost == 0, f"{v.lost} acknowledged records lost, e.g. {v.examples.get('lost')}"),
            (v.duplicated == 0, f"{v.duplicated} records duplicated, e.g. {v.examples.get('duplicated')}"),
            (v.misplaced == 0, f"{v.misplaced} records at another offset than acknowledged, e.g. {v.examples.get('misplaced')}"),
            (v.corrupt == 0, f"{v.corrupt} records with a wrong key or value, e.g. {v.examples.get('corrupt')}"),
            (v.unacknowledged == 0, f"{v.unacknowledged} records present but never acknowledged, e.g. {v.examples.get('unacknowledged')}"),
            (v.group_missed == 0, f"{v.group_missed} acknowledged records no group member saw, e.g. {v.examples.get('group_missed')}"),
            (self.group.caught_up, f"the group did not catch up within {CATCH_UP_TIMEOUT_S:.0f} s"),
            (not self.compacted.violations, f"compaction broke its promise for {len(self.compacted.violations)} keys, "
                                            f"e.g. {self.compacted.violations[:3]}"),
            (self.compacted.read < self.compacted.acknowledged,
             f"compaction removed nothing: {self.compacted.read} of {self.compacted.acknowledged} records left"),
            (all(self.retention.log_start_offsets.values()),
             f"retention deleted nothing: log start offsets {self.retention.log_start_offsets}"),
            (self.rss.flat, self.rss.describe()),
            (self.fds.flat, self.fds.describe()),
            (not self.broker_log_problems, f"{len(self.broker_log_problems)} Traceback/ERROR lines in the broker's log, "
                                           f"first:\n{self.broker_log_problems[0] if self.broker_log_problems else ''}"),
            (self.broker_exit_code == 0, f"the broker exited with {self.broker_exit_code} on SIGTERM"),
        ]
        return [message for ok, message in checks if not ok]


def create_topics(bootstrap: str) -> None:
    topics = [NewTopic(t, VERIFIED_PARTITIONS, 1, config={"retention.ms": "-1"}) for t in VERIFIED_TOPICS]
    topics += [
        NewTopic(COMPACTED_TOPIC, CHURN_PARTITIONS, 1, config=COMPACTED_CONFIG),
        NewTopic(RETENTION_TOPIC, CHURN_PARTITIONS, 1, config=RETENTION_CONFIG),
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(topics, operation_timeout=REQUEST_TIMEOUT_S).values():
        future.result(REQUEST_TIMEOUT_S)


def producer_names() -> list[str]:
    return [f"confluent/{codec}" for codec in CODECS] + [f"kafka-python/{KAFKA_PYTHON_CODEC}"]


def run_workload(soak: Soak, ledgers: Ledgers, broker: BrokerProcess, seconds: float) -> tuple[Group, ChurnWriter, AdminLoop, float, str]:
    """Run every workload thread for `seconds` (less if the broker dies or a thread fails), then
    stop them and let the group catch up. Returns the threads, the workload's length and why it
    stopped early ("" if it did not)."""
    producers: list[Worker] = [ConfluentVerifiedProducer(soak, ledgers.by_index[i], codec) for i, codec in enumerate(CODECS)]
    producers.append(KafkaPythonVerifiedProducer(soak, ledgers.by_index[len(CODECS)], KAFKA_PYTHON_CODEC))
    group, churn, admin = Group(soak, ledgers), ChurnWriter(soak), AdminLoop(soak)
    started = time.monotonic()
    for worker in [*producers, group, churn, admin]:
        worker.start()
    stopped_early = ""
    while time.monotonic() - started < seconds and not soak.stop.is_set():
        if not broker.running:
            stopped_early = f"the broker exited with {broker.process.returncode} after {time.monotonic() - started:.0f} s"
            soak.fail(stopped_early)
            break
        soak.stop.wait(min(1.0, seconds - (time.monotonic() - started)))
    if soak.stop.is_set() and not stopped_early:
        stopped_early = f"a workload thread failed after {time.monotonic() - started:.0f} s"
    workload_s = time.monotonic() - started
    soak.stop.set()
    for worker in [*producers, group, churn, admin]:
        worker.join(FLUSH_TIMEOUT_S + 30)
        if worker.is_alive():
            soak.fail(f"{worker.name} did not stop within {FLUSH_TIMEOUT_S + 30:.0f} s")
    return group, churn, admin, workload_s, stopped_early


def run_soak(broker: BrokerProcess, seconds: float, report_dir: Path) -> SoakResult:
    """The whole soak against a started broker, which it stops at the end (SIGTERM); writes the
    report into `report_dir` and returns the result to assert on."""
    assert broker.process is not None and broker.running, f"{broker!r} is not running"
    started_at = datetime.datetime.now().isoformat(timespec="seconds")
    started = time.monotonic()
    soak = Soak(broker.bootstrap_servers)
    ledgers = Ledgers(producer_names())
    create_topics(soak.bootstrap)
    sampler = Sampler(broker.process.pid, broker.host, broker.port, started_wall_s=time.time())
    try:
        group, churn, admin, workload_s, stopped_early = run_workload(soak, ledgers, broker, seconds)
        catch_up_s = group.catch_up(CATCH_UP_TIMEOUT_S)
        verified = check_verified(soak.bootstrap, ledgers)
        compacted = check_compacted(soak.bootstrap, churn)
        retention = check_retention(soak.bootstrap, churn)
    finally:
        samples = sampler.stop()
        exit_code = broker.stop()
    report_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(broker.output_path, report_dir / "broker.log")
    log_problems, log_warnings = broker_log_problems(broker.output_path)
    members = group.all_members
    result = SoakResult(
        report_dir=report_dir,
        started_at=started_at,
        commit=_commit(),
        python=platform.python_version(),
        seconds_requested=seconds,
        workload_s=workload_s,
        total_s=time.monotonic() - started,
        stopped_early=stopped_early,
        broker_settings={k: v for k, v in broker.overrides.items()},
        verified_topics=VERIFIED_TOPICS,
        sent={ledger.name: ledger.sent for ledger in ledgers.by_index},
        acknowledged={ledger.name: ledger.acknowledged for ledger in ledgers.by_index},
        verified=verified,
        group=GroupOutcome(GROUP, MEMBER_CHURN_S, group.started, len(group.closed), sum(m.assignments for m in members),
                           sum(m.consumed for m in members), verified.group_missed, catch_up_s is not None,
                           catch_up_s or 0.0),
        compacted=compacted,
        retention=retention,
        admin=AdminOutcome(admin.calls, admin.topics_created, admin.topics_deleted, admin.records),
        samples=samples,
        rss=judge_flatness(samples, lambda s: s.rss_bytes, workload_s, *RSS_SLACK, metric="RSS", unit="MiB",
                           unit_divisor=MiB),
        fds=judge_flatness(samples, lambda s: s.fds, workload_s, *FDS_SLACK, metric="open descriptors"),
        rss_slack=RSS_SLACK,
        fds_slack=FDS_SLACK,
        failures=soak.failures,
        failure_count=soak.failure_count,
        client_errors=soak.client_errors,
        broker_log_problems=log_problems,
        broker_log_warnings=log_warnings,
        broker_exit_code=exit_code,
    )
    write_report(result, report_dir)
    return result


def _commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10800, help="length of the workload (default 3 h)")
    parser.add_argument("--report-dir", type=Path, required=True, help="where report.md, soak.png and broker.log go")
    parser.add_argument("--keep-data", action="store_true", help="keep the broker's log dir even when the soak passed")
    args = parser.parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="odradek-soak-"))
    broker = BrokerProcess(work_dir, BROKER_SETTINGS)
    print(f"soak: {args.seconds:.0f} s against a broker in {work_dir}; report to {args.report_dir}", flush=True)
    broker.start()
    try:
        result = run_soak(broker, args.seconds, args.report_dir)
    finally:
        broker.stop()
    problems = result.problems()
    for problem in problems:
        print(f"FAIL: {problem}")
    print(f"{'FAILED' if problems else 'passed'}; report in {args.report_dir / 'report.md'}")
    if problems or args.keep_data:
        print(f"the broker's data is kept in {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
