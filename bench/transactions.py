"""Transactional produce against Apache Kafka and odradek, same machine, same client (librdkafka).

One transactional producer writes TRANSACTIONS transactions of RECORDS records of SIZE bytes each,
spread over a 6-partition topic, and commits each: throughput (records and MB per second over the
whole run, commits included) and the latency of commit_transaction (p50, p99). A warm-up of 20
transactions is not timed. A read_committed count afterwards checks every committed record is
there. Both brokers are single nodes with one-replica internal topics.
Run: `.venv/bin/python bench/transactions.py [--only odradek]`. Prints a table; never fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
import kafka_dist  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TRANSACTIONS = 1000
RECORDS = 100
SIZE = 1024
PARTITIONS = 6
WARMUP = 20


def run_transactions(bootstrap: str) -> dict[str, float]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("txn-bench", PARTITIONS, 1)])["txn-bench"].result(60)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "bench", "linger.ms": 5})
    producer.init_transactions(60)
    payload = b"x" * SIZE

    def one_transaction() -> float:
        producer.begin_transaction()
        for i in range(RECORDS):
            producer.produce("txn-bench", value=payload, partition=i % PARTITIONS)
        started = time.perf_counter()
        producer.commit_transaction(60)
        return time.perf_counter() - started

    for _ in range(WARMUP):
        one_transaction()
    started = time.perf_counter()
    commits = [one_transaction() for _ in range(TRANSACTIONS)]
    elapsed = time.perf_counter() - started
    commits.sort()
    records = TRANSACTIONS * RECORDS
    return {
        "records_per_s": records / elapsed,
        "mb_per_s": records * SIZE / elapsed / 1e6,
        "commit_p50_ms": statistics.median(commits) * 1000,
        "commit_p99_ms": commits[int(len(commits) * 0.99) - 1] * 1000,
        "committed": committed_count(bootstrap),
        "expected": (TRANSACTIONS + WARMUP) * RECORDS,
    }


def committed_count(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-check", "isolation.level": "read_committed"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition("txn-bench", p), timeout=10)[1] for p in range(PARTITIONS))
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("kafka", "odradek"))
    args = ap.parse_args(argv)
    targets = []
    if args.only != "odradek":
        version = kafka_dist.newest_4x()
        targets.append(("Apache Kafka", lambda wd: brokers.KafkaBroker(wd, kafka_dist.ensure_kafka(version), version)))
    if args.only != "kafka":
        targets.append(("odradek", lambda wd: brokers.OdradekBroker(wd)))
    rows: dict[str, dict[str, float]] = {}
    for name, make in targets:
        broker = make(brokers.make_workdir())
        broker.prepare()
        broker.start()
        try:
            rows[name] = run_transactions(broker.bootstrap)
        finally:
            broker.stop()
    print(f"| {TRANSACTIONS} transactions of {RECORDS} x {SIZE} B, librdkafka | " + " | ".join(rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    for key, label, fmt in (("records_per_s", "records/s", "{:,.0f}"), ("mb_per_s", "MB/s", "{:.1f}"),
                            ("commit_p50_ms", "commit p50 (ms)", "{:.1f}"), ("commit_p99_ms", "commit p99 (ms)", "{:.1f}")):
        print(f"| {label} | " + " | ".join(fmt.format(rows[n][key]) for n in rows) + " |")
    for name, row in rows.items():
        # the markers take offsets too: the read_committed end counts records plus one marker per partition per transaction
        print(f"{name}: read_committed end offsets sum {row['committed']:,} for {row['expected']:,} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
