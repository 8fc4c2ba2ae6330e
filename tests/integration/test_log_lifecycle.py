"""Log lifecycle over the wire: retention, DeleteRecords, compaction, tombstones.

The broker runs LogManager.run_retention every log.retention.check.interval.ms and
LogCleaner.clean_once every log.cleaner.backoff.ms in a worker thread; the tests shorten both.
"""

from __future__ import annotations

import time
import urllib.request

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition as KafkaTopicPartition
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port

from .clients import CLIENTS, DeliveryFailed, Record, consume, create_topic, produce

WAIT_S = 20.0
# Topics here use tiny segments; a produce batch larger than segment.bytes is refused
# (RECORD_LIST_TOO_LARGE, as in Kafka), so producers keep batches small.
SMALL_BATCHES = {"batch.size": 1000}


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "lifecycle-watermarks"})
    try:
        return consumer.get_watermark_offsets(KafkaTopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, partition: int = 0) -> list[confluent_kafka.Message]:
    """Everything from the earliest offset to the high watermark (confluent, auto.offset.reset=earliest)."""
    low, high = watermarks(bootstrap, topic, partition)
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "lifecycle-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    messages = []
    try:
        consumer.assign([KafkaTopicPartition(topic, partition, confluent_kafka.OFFSET_BEGINNING)])
        deadline = time.monotonic() + WAIT_S
        reached_end = False
        while not reached_end and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        reached_end = msg.offset() >= high
                        continue
                    raise AssertionError(f"consumer error {msg.error()}")
                messages.append(msg)
        assert reached_end, f"did not reach the high watermark {high} within {WAIT_S} s"
    finally:
        consumer.close()
    return messages


def wait_until(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting until {what}"
        time.sleep(0.2)


def values(count: int, prefix: str, size: int = 100) -> list[Record]:
    return [Record(key=f"{prefix}{i}".encode(), value=f"{prefix}{i}".encode().ljust(size, b".")) for i in range(count)]


def test_retention_ms_deletes_old_segments_and_consumers_start_at_new_log_start(start_broker):
    broker = start_broker(**{"log.retention.check.interval.ms": 500})
    topic = "retained"
    create_topic(
        broker.bootstrap_servers, topic, config={"retention.ms": "1000", "segment.bytes": "2048", "file.delete.delay.ms": "0"}
    )
    produce("confluent", broker.bootstrap_servers, topic, values(200, "old"), acks="all", extra=SMALL_BATCHES)
    wait_until(lambda: watermarks(broker.bootstrap_servers, topic)[0] > 0, "the log start offset moves")
    produce("confluent", broker.bootstrap_servers, topic, values(5, "new"), acks="all", extra=SMALL_BATCHES)
    low, high = watermarks(broker.bootstrap_servers, topic)
    messages = read_all(broker.bootstrap_servers, topic)
    assert messages[0].offset() == low
    assert [m.offset() for m in messages] == list(range(low, high))
    assert messages[-1].value().startswith(b"new4")
    # Whole segments only: the new start is a segment base offset on disk.
    partition_dir = broker.log_dir / f"{topic}-0"
    assert f"{low:020d}.log" in {p.name for p in partition_dir.iterdir()}


def test_retention_bytes_keeps_the_newest_segments(start_broker):
    broker = start_broker(**{"log.retention.check.interval.ms": 500})
    topic = "size-retained"
    create_topic(
        broker.bootstrap_servers, topic, config={"retention.bytes": "4096", "segment.bytes": "1024", "file.delete.delay.ms": "0"}
    )
    produce("confluent", broker.bootstrap_servers, topic, values(200, "m"), acks="all", extra=SMALL_BATCHES)
    wait_until(lambda: watermarks(broker.bootstrap_servers, topic)[0] > 0, "the log start offset moves")
    partition_dir = broker.log_dir / f"{topic}-0"
    wait_until(lambda: not any(p.name.endswith(".deleted") for p in partition_dir.iterdir()), "deleted files are removed")
    size = sum(p.stat().st_size for p in partition_dir.glob("*.log"))
    assert 4096 <= size <= 4096 + 2 * 1024
    low, high = watermarks(broker.bootstrap_servers, topic)
    assert [m.offset() for m in read_all(broker.bootstrap_servers, topic)] == list(range(low, high))


def test_delete_records_moves_log_start_and_survives_restart(start_broker):
    broker = start_broker()
    topic = "delete-records"
    create_topic(broker.bootstrap_servers, topic, config={"segment.bytes": "2048"})
    produce("confluent", broker.bootstrap_servers, topic, values(100, "r"), acks="all", extra=SMALL_BATCHES)
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    futures = admin.delete_records([KafkaTopicPartition(topic, 0, 60)], request_timeout=10)
    result = list(futures.values())[0].result(timeout=10)
    assert result.low_watermark == 60
    assert watermarks(broker.bootstrap_servers, topic) == (60, 100)
    messages = read_all(broker.bootstrap_servers, topic)
    assert [m.offset() for m in messages] == list(range(60, 100))
    assert messages[0].key() == b"r60"
    # Whole segments below the new start are gone from disk (renamed .deleted first).
    partition_dir = broker.log_dir / f"{topic}-0"
    bases = sorted(int(p.name[:20]) for p in partition_dir.glob("*.log"))
    assert bases[0] <= 60 and (len(bases) == 1 or bases[1] > 60)
    assert broker.stop() == 0
    broker.start()
    assert watermarks(broker.bootstrap_servers, topic) == (60, 100)


def test_fetch_below_log_start_resets_by_auto_offset_reset(start_broker):
    broker = start_broker()
    topic = "reset-after-delete"
    create_topic(broker.bootstrap_servers, topic)
    produce("confluent", broker.bootstrap_servers, topic, values(20, "x"), acks="all")
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    list(admin.delete_records([KafkaTopicPartition(topic, 0, 15)]).values())[0].result(timeout=10)
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": "reset", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.assign([KafkaTopicPartition(topic, 0, 3)])  # below the log start: OFFSET_OUT_OF_RANGE
        got = []
        deadline = time.monotonic() + WAIT_S
        while len(got) < 5 and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() is None:
                    got.append(msg.offset())
        assert got == [15, 16, 17, 18, 19]
    finally:
        consumer.close()


KEYS = 1_000
UPDATES = 100  # 100,000 records over 1,000 keys, as the issue asks


def test_compaction_keeps_latest_per_key_and_drops_tombstones_after_delete_retention(start_broker):
    broker = start_broker(**{"log.cleaner.backoff.ms": 500})
    topic = "compacted"
    create_topic(
        broker.bootstrap_servers,
        topic,
        config={
            "cleanup.policy": "compact",
            "segment.bytes": "65536",
            "min.cleanable.dirty.ratio": "0.01",
            # long enough for the checks below to see the tombstones, short enough to wait for
            "delete.retention.ms": "10000",
            "file.delete.delay.ms": "0",
        },
    )
    model: dict[bytes, bytes] = {}
    records = []
    for update in range(UPDATES):
        for key in range(KEYS):
            k = f"key-{key:04d}".encode()
            if update == UPDATES - 1 and key % 10 == 0:
                records.append(Record(key=k, value=None))
                model.pop(k, None)
            else:
                v = f"{k.decode()}-v{update}".encode()
                records.append(Record(key=k, value=v))
                model[k] = v
    # Enough filler after the last update that every update sits in a closed, cleanable segment.
    for i in range(400):
        k, v = f"filler-{i:03d}".encode(), b"f" * 200
        records.append(Record(key=k, value=v))
        model[k] = v
    produce("confluent", broker.bootstrap_servers, topic, records, acks="all", extra={"batch.size": 16384})
    produced = len(records)

    def view(messages) -> dict[bytes, bytes]:
        state: dict[bytes, bytes] = {}
        for m in messages:
            if m.value() is None:
                state.pop(m.key(), None)
            else:
                state[m.key()] = m.value()
        return state

    wait_until(lambda: len(read_all(broker.bootstrap_servers, topic)) < produced // 2, "the cleaner compacts")
    messages = read_all(broker.bootstrap_servers, topic)
    assert view(messages) == model
    offsets = [m.offset() for m in messages]
    assert offsets == sorted(set(offsets))
    assert watermarks(broker.bootstrap_servers, topic)[1] == produced  # offsets kept: gaps, no renumbering

    for client in CLIENTS:
        consumed = consume(client, broker.bootstrap_servers, topic, [0], len(messages))
        state: dict[bytes, bytes] = {}
        for m in consumed:
            if m.value is None:
                state.pop(m.key, None)
            else:
                state[m.key] = m.value
        assert state == model, client

    def tombstones() -> int:
        return sum(1 for m in read_all(broker.bootstrap_servers, topic) if m.value() is None)

    assert tombstones() == KEYS // 10
    wait_until(lambda: tombstones() == 0, "tombstones are dropped after delete.retention.ms", timeout_s=30)
    assert view(read_all(broker.bootstrap_servers, topic)) == model


def test_compacted_topic_rejects_records_without_key(start_broker):
    broker = start_broker()
    topic = "compacted-keys-required"
    create_topic(broker.bootstrap_servers, topic, config={"cleanup.policy": "compact"})
    with pytest.raises(DeliveryFailed) as failed:
        produce("confluent", broker.bootstrap_servers, topic, [Record(key=None, value=b"no key")], acks="all", timeout_s=5)
    assert failed.value.errors == [(0, "INVALID_RECORD")]
    produce("confluent", broker.bootstrap_servers, topic, [Record(key=b"k", value=b"keyed")], acks="all")
    assert watermarks(broker.bootstrap_servers, topic) == (0, 1)


def test_a_corrupt_record_stops_cleaning_of_its_partition_only_with_one_line_and_a_metric(start_broker):
    """A bit flip on disk in a compacted topic: the cleaner says so once (Kafka's KIP-346 marks the
    partition uncleanable), keeps cleaning the others, and the operator's alert has a gauge to fire on."""
    port = free_port()
    broker = start_broker(**{"log.cleaner.enable": "false", "log.cleaner.backoff.ms": 200,
                             "metrics.listener": f"http://127.0.0.1:{port}"})
    config = {"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"}
    for topic in ("damaged", "healthy"):
        create_topic(broker.bootstrap_servers, topic, config=config)
        records = [Record(key=f"k-{i % 10}".encode(), value=b"v" * 20) for i in range(1000)]
        produce("confluent", broker.bootstrap_servers, topic, records, acks="all", extra=SMALL_BATCHES)
    assert broker.stop() == 0

    # The first record of the first batch claims a key of 60 bytes, more than the record holds.
    segment = broker.log_dir / "damaged-0" / "00000000000000000000.log"
    data = bytearray(segment.read_bytes())
    first_record = 61  # after the batch header
    assert data[first_record] < 0x80 and data[first_record] >> 1 < 60  # a one-byte length, and short
    data[first_record + 4] = 2 * 60  # the key length, after length, attributes, timestamp and offset deltas
    segment.write_bytes(bytes(data))
    broker.overrides["log.cleaner.enable"] = "true"
    broker.start()

    wait_until(lambda: len(read_all(broker.bootstrap_servers, "healthy")) < 500, "the healthy topic is cleaned")
    wait_until(lambda: "cannot clean damaged-0" in broker.output(), "the cleaner reports the damaged partition")
    time.sleep(1.0)  # five more passes of the cleaner
    output = broker.output()
    assert output.count("cannot clean damaged-0") == 1 and "runs past" in output
    assert "Traceback" not in output
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    gauges = {(s.name, s.labels.get("logdirectory")): s.value
              for family in text_string_to_metric_families(text) for s in family.samples}
    assert gauges[("kafka_log_logcleanermanager_uncleanable_partitions_count", str(broker.log_dir))] == 1
    assert gauges[("kafka_log_logcleanermanager_uncleanable_bytes", str(broker.log_dir))] > 0
    # The damaged partition is left as it was, and still served from its first offset.
    assert watermarks(broker.bootstrap_servers, "damaged") == (0, 1000)
