"""Exactly-once processing survives crashes: a consume-transform-produce application (read
`input`, write `output`, commit its offsets inside the transaction) is killed with SIGKILL at
random points, and the broker too, and every input record ends up in `output` exactly once for
a read_committed consumer. The seed is printed; ODRADEK_EOS_SEED replays it."""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from .clients import Record, produce

WORKER = Path(__file__).with_name("eos_worker.py")
INPUTS = 2000
ROUNDS = 20
BROKER_KILLS = (7, 14)  # rounds in which the broker is killed too


def _create(bootstrap: str, *topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, 3, 1) for t in topics])
    for future in futures.values():
        future.result(30)


def _worker(bootstrap: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), bootstrap, "input", "output", "eos", "eos-app", str(INPUTS)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _written(bootstrap: str) -> int:
    """Offsets taken in `output` so far: records of committed and aborted transactions, and markers."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-peek"})
    try:
        return sum(consumer.get_watermark_offsets(confluent_kafka.TopicPartition("output", p), timeout=10)[1] for p in range(3))
    finally:
        consumer.close()


def _read_committed(bootstrap: str, expected: int, timeout_s: float = 60) -> list[bytes]:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": "eos-check", "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })
    consumer.subscribe(["output"])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
        elif len(values) >= expected and message is None:
            break
    consumer.close()
    return values


def test_killed_application_and_broker_still_process_each_record_once(start_broker):
    seed = int(os.environ.get("ODRADEK_EOS_SEED", random.randrange(1 << 30)))
    print(f"ODRADEK_EOS_SEED={seed}")
    rng = random.Random(seed)
    broker = start_broker(**{"group.initial.rebalance.delay.ms": 0})
    _create(broker.bootstrap_servers, "input", "output")
    inputs = [Record(f"k{i}".encode(), f"v{i:05d}".encode(), partition=i % 3) for i in range(INPUTS)]
    produce("confluent", broker.bootstrap_servers, "input", inputs, acks="all", idempotent=True)

    for round_number in range(ROUNDS):
        worker = _worker(broker.bootstrap_servers)
        time.sleep(rng.uniform(0.5, 3.0))  # a random point in its run: start-up, mid-transaction, committing
        worker.kill()
        worker.wait()
        if round_number in BROKER_KILLS:
            broker.kill()
            broker.start()

    assert _written(broker.bootstrap_servers) > 0, "the killed workers never got as far as writing"
    worker = _worker(broker.bootstrap_servers)
    output, _ = worker.communicate(timeout=180)
    assert worker.returncode == 0, output.decode(errors="replace")

    values = _read_committed(broker.bootstrap_servers, INPUTS)
    counts = collections.Counter(values)
    expected = {record.value.upper() for record in inputs}
    assert set(counts) == expected, f"missing {sorted(expected - set(counts))[:5]}, unexpected {sorted(set(counts) - expected)[:5]}"
    duplicated = {value: count for value, count in counts.items() if count > 1}
    assert not duplicated, f"{len(duplicated)} records were written more than once, e.g. {list(duplicated.items())[:3]}"
