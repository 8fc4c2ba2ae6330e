"""Many partitions on one broker, Apache Kafka beside odradek: same machine, same client (librdkafka).

For each broker in turn (Kafka first), with its default settings (but no initial rebalance delay for
the group, as bench/brokers.py gives Kafka) and a fresh data directory:
  - create the partitions as topics of at most 1,000 (Kafka in KRaft mode refuses to create more
    than about 10,000 records in one operation: POLICY_VIOLATION), timed until Metadata lists a
    leader for every partition;
  - Metadata for one of those topics and for all topics (median of 5 requests each);
  - produce one record to every partition (acks=1) and wait for every acknowledgement;
  - a consumer group subscribed to the topic reads all of them;
  - the broker's resident memory and open descriptors then, and (odradek) the time of a scrape of
    its Prometheus /metrics;
  - a clean restart on the same data: time from process start to the first acknowledged produce,
    and memory and descriptors once idle.
Run: `.venv/bin/python bench/partitions.py [--partitions 10000] [--only odradek]`. Prints a table;
never fails on speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
import kafka_dist  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "wide"
PER_TOPIC = 1000


def topics_for(partitions: int) -> dict[str, int]:
    """wide-0, wide-1, ...: PER_TOPIC partitions each, the last one the rest."""
    names, left = {}, partitions
    while left > 0:
        names[f"{TOPIC}-{len(names)}"] = min(left, PER_TOPIC)
        left -= PER_TOPIC
    return names


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def create(bootstrap: str, topics: dict[str, int]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, count in topics.items():
        admin.create_topics([NewTopic(name, count, 1)], request_timeout=600)[name].result(600)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        listed = admin.list_topics(timeout=60).topics
        if all(name in listed and len(listed[name].partitions) == count
               and all(p.leader >= 0 for p in listed[name].partitions.values()) for name, count in topics.items()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the {sum(topics.values())} partitions did not all get a leader")


def metadata_latency(bootstrap: str, topic: str | None) -> float:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.list_topics(timeout=60)  # connected first
    return statistics.median(timed(lambda: admin.list_topics(topic, timeout=60)) for _ in range(5))


def produce_to_every_partition(bootstrap: str, topics: dict[str, int]) -> None:
    acknowledged = []
    total = sum(topics.values())
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1,
                         "queue.buffering.max.messages": 2 * total})
    for name, count in topics.items():
        for partition in range(count):
            producer.produce(name, value=b"x" * 100, partition=partition,
                             on_delivery=lambda error, message: acknowledged.append(error))
            producer.poll(0)
    if producer.flush(600) != 0 or any(error is not None for error in acknowledged):
        raise RuntimeError(f"{sum(e is not None for e in acknowledged)} of {total} records not acknowledged")


def group_reads_all(bootstrap: str, topics: dict[str, int]) -> None:
    total = sum(topics.values())
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "wide-readers", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe(list(topics))
    seen = 0
    deadline = time.monotonic() + 600
    try:
        while seen < total and time.monotonic() < deadline:
            seen += sum(1 for message in consumer.consume(10_000, 1.0) if message.error() is None)
    finally:
        consumer.close()
    if seen < total:
        raise RuntimeError(f"the group read {seen} of {total} records")


def measure(broker: brokers.Broker, partitions: int) -> dict[str, float]:
    row: dict[str, float] = {}
    topics = topics_for(partitions)
    broker.extra_config["group.initial.rebalance.delay.ms"] = "0"  # Kafka's bench config says so too
    metrics_url = None
    if isinstance(broker, brokers.OdradekBroker):  # Kafka has no /metrics of its own (it needs a JMX exporter)
        port = brokers.free_port()
        broker.extra_config["metrics.listener"] = f"http://127.0.0.1:{port}"
        metrics_url = f"http://127.0.0.1:{port}/metrics"
    broker.start()
    try:
        row["create_s"] = timed(lambda: create(broker.bootstrap, topics))
        row["metadata_topic_ms"] = metadata_latency(broker.bootstrap, next(iter(topics))) * 1000
        row["metadata_all_ms"] = metadata_latency(broker.bootstrap, None) * 1000
        row["produce_all_s"] = timed(lambda: produce_to_every_partition(broker.bootstrap, topics))
        row["group_read_all_s"] = timed(lambda: group_reads_all(broker.bootstrap, topics))
        if metrics_url is not None:
            row["scrape_ms"] = statistics.median(
                timed(lambda: urllib.request.urlopen(metrics_url, timeout=120).read()) for _ in range(3)) * 1000
        row["rss_mib"] = broker.memory()["VmRSS"] / 2**20
        row["descriptors"] = open_descriptors(broker.pid)
    finally:
        broker.stop()
    broker.prepare = lambda: None  # the same data, as it was left
    broker.start(timeout=600)
    try:
        row["restart_s"] = broker.startup_s
        time.sleep(2.0)
        row["idle_rss_mib"] = broker.memory()["VmRSS"] / 2**20
        row["idle_descriptors"] = open_descriptors(broker.pid)
    finally:
        broker.stop()
    return row


ROWS = (
    ("create_s", "create the topics, until every partition has a leader (s)", "{:.1f}"),
    ("metadata_topic_ms", "Metadata for one topic of 1,000 partitions (ms, median of 5)", "{:.0f}"),
    ("metadata_all_ms", "Metadata for all topics (ms, median of 5)", "{:.0f}"),
    ("produce_all_s", "one record to every partition, all acknowledged (s)", "{:.1f}"),
    ("group_read_all_s", "a consumer group reads them all (s)", "{:.1f}"),
    ("scrape_ms", "scrape of /metrics (ms, median of 3; odradek only)", "{:.0f}"),
    ("rss_mib", "resident memory after that (MiB)", "{:.0f}"),
    ("descriptors", "open descriptors after that", "{:,.0f}"),
    ("restart_s", "restart: process start to first acknowledged produce (s)", "{:.2f}"),
    ("idle_rss_mib", "restarted, idle: resident memory (MiB)", "{:.0f}"),
    ("idle_descriptors", "restarted, idle: open descriptors", "{:,.0f}"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=10_000)
    ap.add_argument("--only", choices=("kafka", "odradek"))
    args = ap.parse_args(argv)
    targets = []
    if args.only != "odradek":
        version = kafka_dist.newest_4x()
        targets.append((f"Apache Kafka {version}", lambda wd: brokers.KafkaBroker(wd, kafka_dist.ensure_kafka(version), version)))
    if args.only != "kafka":
        targets.append(("odradek", lambda wd: brokers.OdradekBroker(wd)))
    rows: dict[str, dict[str, float]] = {}
    for name, make in targets:
        print(f"{name}: {args.partitions:,} partitions ...", file=sys.stderr, flush=True)
        try:
            rows[name] = measure(make(brokers.make_workdir()), args.partitions)
        except Exception as error:  # report and go on: a benchmark never fails the build
            print(f"{name} failed: {error}", file=sys.stderr)
    names = list(rows)
    print(f"| {args.partitions:,} partitions on one broker ({len(topics_for(args.partitions))} topics), librdkafka | " + " | ".join(names)
          + (" | odradek / Kafka |" if len(names) == 2 else " |"))
    print("| --- |" + " ---: |" * (len(names) + (len(names) == 2)))
    for key, label, fmt in ROWS:
        cells = [fmt.format(rows[n][key]) if key in rows[n] else "-" for n in names]
        if len(names) == 2:
            cells.append(f"{rows[names[1]][key] / rows[names[0]][key]:.2f}"
                         if rows[names[0]].get(key) and key in rows[names[1]] else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
